/**
 * The end of a benchmark peer that called into shmkit.
 *
 * Deno 2.9.6's normal exit frees its FFI symbols' fast-call data while a
 * TurboFan job may still be reading it: a SIGSEGV after the last statement,
 * now and then, under load (docs/platform-facts.md, FFI). `Deno.exit()`
 * skips that teardown (strace: none of its ~130 munmaps), so a peer whose
 * work is done ends with it. Imports nothing: lifecycle_ab.ts loads another
 * tree's shmkit and must not load this one's.
 *
 * @module
 */

/** Exits with 0 now on Deno; elsewhere returns, and the runtime exits as usual. */
export function endPeer(): void {
  const deno = (globalThis as { Deno?: { exit(code: number): never } }).Deno;
  deno?.exit(0);
}
