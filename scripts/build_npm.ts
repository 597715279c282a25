/**
 * Builds the npm package into `npm/`: ESM JavaScript bundled by esbuild,
 * `.d.ts` files emitted by TypeScript, a package.json, README and LICENSE,
 * which is what dnt would produce (dnt itself is a JSR package and JSR is not
 * reachable from our machines).
 *
 * Usage: deno run -A scripts/build_npm.ts [--pack]
 *
 * @module
 */

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const BIN = `${ROOT}/node_modules/.bin`;
const OUT = `${ROOT}/npm`;

/** The runtimes the package is tested on, and so declares (Node before 26.9: with --experimental-ffi). */
export const ENGINES = { deno: ">=2.0.0", bun: ">=1.3.4", node: ">=26.1.0" } as const;

async function run(command: string, args: string[], cwd = ROOT): Promise<string> {
  const output = await new Deno.Command(command, { args, cwd, stderr: "inherit" }).output();
  const text = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    console.error(text);
    throw new Error(`Cannot build the npm package: ${command} ${args.join(" ")} failed`);
  }
  return text;
}

function rewriteImports(dir: string): void {
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) rewriteImports(path);
    else if (entry.name.endsWith(".d.ts")) {
      const text = Deno.readTextFileSync(path);
      // Relative ".ts" specifiers name the sibling ".d.ts" files as ".js".
      Deno.writeTextFileSync(
        path,
        text.replace(/(from\s+["']\.{1,2}\/[^"']+)\.ts(["'])/g, "$1.js$2"),
      );
    }
  }
}

const config = JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`)) as { version: string };

try {
  Deno.removeSync(OUT, { recursive: true });
} catch {
  // nothing to remove
}
Deno.mkdirSync(`${OUT}/esm`, { recursive: true });

// Both entry points share one copy of the library (one symbol table, one set
// of tracked regions and cleanups): split chunks, never two bundles.
await run(`${BIN}/esbuild`, [
  "mod.ts",
  "raw.ts",
  "--bundle",
  "--splitting",
  "--chunk-names=chunks/[name]-[hash]",
  "--format=esm",
  "--platform=neutral",
  "--target=es2022",
  "--external:bun:ffi",
  "--external:node:*",
  "--legal-comments=none",
  `--outdir=${OUT}/esm`,
]);

await run(`${BIN}/tsc`, [
  "mod.ts",
  "raw.ts",
  "--declaration",
  "--emitDeclarationOnly",
  "--outDir",
  `${OUT}/types`,
  "--allowImportingTsExtensions",
  "--target",
  "es2022",
  "--module",
  "nodenext",
  "--moduleResolution",
  "nodenext",
  "--strict",
  "--exactOptionalPropertyTypes",
  "--noUncheckedIndexedAccess",
  "--lib",
  "es2024,esnext.disposable,dom",
  "--types",
  "",
  "--skipLibCheck",
]);
rewriteImports(`${OUT}/types`);

const pkg = {
  name: "shmkit",
  version: config.version,
  description:
    "Shared memory (mmap, POSIX shm, memfd, System V), posix_spawn and process-shared locks for Deno, Bun and Node, through libc FFI",
  license: "MIT",
  type: "module",
  exports: {
    ".": { types: "./types/mod.d.ts", import: "./esm/mod.js", default: "./esm/mod.js" },
    "./raw": { types: "./types/raw.d.ts", import: "./esm/raw.js", default: "./esm/raw.js" },
  },
  types: "./types/mod.d.ts",
  module: "./esm/mod.js",
  sideEffects: true,
  engines: ENGINES,
  os: ["linux", "darwin"],
  keywords: [
    "shared-memory",
    "mmap",
    "shm",
    "memfd",
    "sysv",
    "posix_spawn",
    "ffi",
    "deno",
    "bun",
    "node",
  ],
  files: ["esm/", "types/", "README.md", "LICENSE"],
};
Deno.writeTextFileSync(`${OUT}/package.json`, JSON.stringify(pkg, null, 2) + "\n");
Deno.copyFileSync(`${ROOT}/README.md`, `${OUT}/README.md`);
Deno.copyFileSync(`${ROOT}/LICENSE`, `${OUT}/LICENSE`);

if (Deno.args.includes("--pack")) {
  const name = (await run("npm", ["pack", "--silent"], OUT)).trim().split("\n").pop()!;
  console.log(`${OUT}/${name}`);
} else {
  console.log(`built ${OUT}`);
}
