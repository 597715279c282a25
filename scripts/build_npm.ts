/**
 * Builds the npm package into `npm/`: ESM JavaScript bundled by esbuild,
 * `.d.ts` files emitted by TypeScript, a package.json, README, LICENSE,
 * docs/ and BENCHMARKS.md (the README links to them: every relative link in
 * the shipped Markdown is checked to exist in the package), and the
 * `shmkit` bin (bin/shmkit.js, from cli/_npm_bin.mjs), which is what dnt would
 * produce (dnt itself is a JSR package and JSR is not reachable from our
 * machines).
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

const config = JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`)) as {
  version: string;
  exports: Record<string, string>;
};
// One list of entry points, deno.json's: JSR and npm expose the same subpaths.
const ENTRIES = Object.entries(config.exports).map(([subpath, file]) => ({
  subpath,
  source: file.replace(/^\.\//, ""),
  stem: file.replace(/^\.\//, "").replace(/\.ts$/, ""),
}));
const CLI_SOURCE = "cli/main.ts";
const devPackage = JSON.parse(Deno.readTextFileSync(`${ROOT}/package.json`)) as {
  repository?: unknown;
};

/** Relative links in a Markdown text (not URLs, not in-page anchors). */
function relativeLinks(markdown: string): string[] {
  return [...markdown.matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1]!.split("#")[0]!)
    .filter((target) => target !== "" && !/^[a-z]+:/i.test(target));
}

try {
  Deno.removeSync(OUT, { recursive: true });
} catch {
  // nothing to remove
}
Deno.mkdirSync(`${OUT}/esm`, { recursive: true });

// Both entry points share one copy of the library (one symbol table, one set
// of tracked regions and cleanups): split chunks, never two bundles.
await run(`${BIN}/esbuild`, [
  ...ENTRIES.map((e) => e.source),
  // Not an export: spawnScript preloads it into supervised children (spawn/script.ts).
  "spawn/_lifeline.ts",
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

const tscOptions = (types: string): string[] => [
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
  types,
  "--skipLibCheck",
];
// The library is checked without Node's types; the CLI uses node:fs and node:process.
await run(`${BIN}/tsc`, [
  ...ENTRIES.map((e) => e.source).filter((source) => source !== CLI_SOURCE),
  ...tscOptions(""),
]);
await run(`${BIN}/tsc`, [CLI_SOURCE, ...tscOptions("node")]);
rewriteImports(`${OUT}/types`);

const pkg = {
  name: "shmkit",
  version: config.version,
  description:
    "Shared memory (mmap, POSIX shm, memfd, System V), posix_spawn and process-shared locks for Deno, Bun and Node, through libc FFI",
  license: "MIT",
  type: "module",
  exports: Object.fromEntries(ENTRIES.map(({ subpath, stem }) => [subpath, {
    types: `./types/${stem}.d.ts`,
    import: `./esm/${stem}.js`,
    default: `./esm/${stem}.js`,
  }])),
  bin: { shmkit: "./bin/shmkit.js" },
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
  files: ["esm/", "types/", "bin/", "docs/", "README.md", "BENCHMARKS.md", "LICENSE"],
  // Only a real, public URL: none is known yet, so none is invented.
  ...(devPackage.repository === undefined ? {} : { repository: devPackage.repository }),
};
Deno.writeTextFileSync(`${OUT}/package.json`, JSON.stringify(pkg, null, 2) + "\n");
Deno.copyFileSync(`${ROOT}/README.md`, `${OUT}/README.md`);
Deno.copyFileSync(`${ROOT}/BENCHMARKS.md`, `${OUT}/BENCHMARKS.md`);
Deno.copyFileSync(`${ROOT}/LICENSE`, `${OUT}/LICENSE`);
Deno.mkdirSync(`${OUT}/docs`);
for (const entry of Deno.readDirSync(`${ROOT}/docs`)) {
  if (entry.isFile && entry.name.endsWith(".md")) {
    Deno.copyFileSync(`${ROOT}/docs/${entry.name}`, `${OUT}/docs/${entry.name}`);
  }
}
Deno.mkdirSync(`${OUT}/bin`);
// The launcher (cli/_npm_bin.mjs says why it is one).
Deno.copyFileSync(`${ROOT}/cli/_npm_bin.mjs`, `${OUT}/bin/shmkit.js`);
Deno.chmodSync(`${OUT}/bin/shmkit.js`, 0o755);

// A link the package doesn't ship is dead on npm: refuse to build it.
const markdown = [
  "README.md",
  "BENCHMARKS.md",
  ...[...Deno.readDirSync(`${OUT}/docs`)].map((e) => `docs/${e.name}`),
];
const dead: string[] = [];
for (const file of markdown) {
  const base = new URL(file, `file://${OUT}/`);
  for (const link of relativeLinks(Deno.readTextFileSync(`${OUT}/${file}`))) {
    const target = decodeURIComponent(new URL(link, base).pathname);
    try {
      Deno.statSync(target);
    } catch {
      dead.push(`${file}: ${link}`);
    }
  }
}
if (dead.length > 0) {
  throw new Error(
    `Cannot build the npm package: links to files it doesn't ship:\n${dead.join("\n")}`,
  );
}

if (Deno.args.includes("--pack")) {
  const name = (await run("npm", ["pack", "--silent"], OUT)).trim().split("\n").pop()!;
  console.log(`${OUT}/${name}`);
} else {
  console.log(`built ${OUT}`);
}
