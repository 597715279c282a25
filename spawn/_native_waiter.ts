/**
 * Bun only: a native thread that blocks in `epoll_wait(2)` and hands each
 * readiness to the JS thread through a thread-safe `JSCallback`, compiled at
 * run time by `bun:ffi`'s `cc` (TinyCC, built into Bun: no C toolchain
 * needed). The waiting thread runs no JS: no Worker event loop, no
 * `postMessage` copy. Against the Worker, in alternating rounds at load
 * 10-15: 20-110 us less CPU per spawn + wait of /bin/true.
 *
 * Used on Bun's main thread only: a Worker's callback would outlive its JS
 * context. Anything missing (memfd, `cc`, a callback) returns undefined and
 * the caller keeps the Worker.
 *
 * @module
 */
import { backend, unsafeLibc } from "../ffi/libc.ts";
import { nodeBuiltin, setTimerRef } from "../core/_runtime.ts";
import { platform } from "../platform/mod.ts";
import { cString } from "../ffi/pointer.ts";

/** The part of `bun:ffi` used here. */
interface BunCc {
  cc(options: {
    source: string;
    flags: string[];
    symbols: Record<string, { args: string[]; returns: string }>;
  }): { symbols: Record<string, (...args: unknown[]) => number> };
  JSCallback: new (
    fn: (...args: number[]) => void,
    definition: { args: string[]; returns: string; threadsafe: boolean },
  ) => { readonly ptr: unknown };
}

// The loop: signals blocked (they belong to the runtime's threads), each
// event's 64-bit data handed over as two 32-bit halves. It names no outside
// symbol: libc's functions come as pointers (calls[]), so TinyCC links
// nothing (with -lc it fails where libc's dev files are missing).
const SOURCE = `
typedef unsigned long thread_id;
typedef int (*create_fn)(thread_id *, const void *, void *(*)(void *), void *);
typedef int (*detach_fn)(thread_id);
typedef int (*mask_fn)(int, const void *, void *);
typedef int (*wait_fn)(int, void *, int, int);
static void (*notify)(unsigned, unsigned, unsigned);
static mask_fn set_mask;
static wait_fn wait_events;
static int epfd, size, events_at, data_at, block_how;
static void *run(void *unused) {
  unsigned long all[16];
  unsigned char events[64 * 16];
  int failures = 0, i, n;
  for (i = 0; i < 16; i++) all[i] = ~0UL;
  set_mask(block_how, all, 0);
  while (failures < 1000) {
    n = wait_events(epfd, events, 64, -1);
    if (n <= 0) { failures++; continue; }
    failures = 0;
    for (i = 0; i < n; i++) {
      unsigned char *e = events + i * size;
      notify(*(unsigned *)(e + data_at), *(unsigned *)(e + data_at + 4),
             *(unsigned *)(e + events_at));
    }
  }
  return unused;
}
int shmkit_start_waiter(int fd, void *callback, int event_size, int at, int data, int how,
                        void **calls) {
  thread_id thread;
  if (notify != 0) return -1;
  epfd = fd; size = event_size; events_at = at; data_at = data; block_how = how;
  set_mask = (mask_fn)calls[2];
  wait_events = (wait_fn)calls[3];
  notify = (void (*)(unsigned, unsigned, unsigned))callback;
  if (((create_fn)calls[0])(&thread, 0, run, 0) != 0) { notify = 0; return -1; }
  ((detach_fn)calls[1])(thread);
  return 0;
}
`;

/** The addresses of the C functions the loop calls, in SOURCE's calls[] order; undefined if one is missing. */
function libcCalls(): BigUint64Array | undefined {
  const { dlopen, dlsym } = unsafeLibc;
  if (dlopen === undefined || dlsym === undefined) return undefined;
  const handle = dlopen(null, platform.constants.RTLD_LAZY);
  if (handle === 0) return undefined;
  const names = ["pthread_create", "pthread_detach", "pthread_sigmask", "epoll_wait"];
  const calls = new BigUint64Array(names.length);
  for (const [i, name] of names.entries()) {
    const address = dlsym(handle, cString(name, "symbol"));
    if (address === 0) return undefined;
    calls[i] = BigInt(address);
  }
  return calls;
}

const specifier = "bun:ffi";
const ffi: BunCc | undefined = backend.runtime === "bun"
  ? await import(specifier).then((m) => m as BunCc, () => undefined)
  : undefined;

/** Keeps the process alive while `ref`'d: what a Worker's ref() does on the Worker path. */
export interface NativeWaiter {
  ref(): void;
  unref(): void;
  readonly native: true;
}

let started = false;
let disabled = false;

/** For tests and the parts bench: never start the native waiter (the Worker path is used). */
export function disableNativeWaiterForTesting(value: boolean): void {
  disabled = value;
}

/** Whether this process has a native waiter running. */
export function nativeWaiterStarted(): boolean {
  return started;
}

/** Compiles the loop (a memfd holds the source: nothing is written to disk). */
function compile(): ((...args: unknown[]) => number) | undefined {
  if (ffi === undefined || unsafeLibc.memfd_create === undefined) return undefined;
  const C = platform.constants;
  const fd = unsafeLibc.memfd_create(new TextEncoder().encode("shmkit-waiter.c\0"), C.MFD_CLOEXEC);
  if (fd < 0) return undefined;
  try {
    const bytes = new TextEncoder().encode(SOURCE);
    if (unsafeLibc.write(fd, bytes, bytes.length) !== bytes.length) return undefined;
    const lib = ffi.cc({
      source: `/proc/self/fd/${fd}`,
      // Link nothing: without libc's dev files (libc.so), -lc fails.
      flags: ["-nostdlib"],
      symbols: {
        shmkit_start_waiter: {
          args: ["int", "ptr", "int", "int", "int", "int", "ptr"],
          returns: "int",
        },
      },
    });
    return lib.symbols.shmkit_start_waiter;
  } catch {
    return undefined; // no TinyCC in this build, or it refused the source
  } finally {
    unsafeLibc.close(fd);
  }
}

/**
 * Starts a native thread waiting on `epfd`, calling `onReady(key,
 * epollEvents)` on the JS thread for each event; false where it can't (no
 * `cc`, no callback, not Bun's main thread). Each call compiles its own copy
 * of the loop. The reactor starts one (below); the spawn bench starts one
 * more for its floor (raw posix_spawn + this thread, no spawn() code).
 */
export function startWaiterThread(
  epfd: number,
  onReady: (key: number, events: number) => void,
): boolean {
  if (ffi === undefined) return false;
  const threads = nodeBuiltin<{ isMainThread?: boolean }>("node:worker_threads");
  if (threads?.isMainThread !== true) return false;
  const event = platform.structs.epoll_event;
  const eventsAt = event.fields.events?.offset;
  const dataAt = event.fields["data.u64"]?.offset;
  const block = platform.constants.SIG_BLOCK;
  if (eventsAt === undefined || dataAt === undefined || event.size > 16 || block === undefined) {
    return false;
  }
  const calls = libcCalls();
  if (calls === undefined) return false;
  const start = compile();
  if (start === undefined) return false;
  let callback: { readonly ptr: unknown };
  try {
    callback = new ffi.JSCallback(
      (low, high, events) => onReady(low! + high! * 0x1_0000_0000, events!),
      { args: ["u32", "u32", "u32"], returns: "void", threadsafe: true },
    );
  } catch {
    return false;
  }
  if (start(epfd, callback.ptr, event.size, eventsAt, dataAt, block, calls) !== 0) {
    return false;
  }
  // The callback lives as long as the thread, i.e. the process.
  keep.push(callback);
  return true;
}

/**
 * Starts the one native thread waiting on `epfd` (the first call only),
 * calling `onReady(key, epollEvents)` on the JS thread for each event.
 * Undefined where it can't: the caller uses a Worker instead.
 */
export function startNativeWaiter(
  epfd: number,
  onReady: (key: number, events: number) => void,
): NativeWaiter | undefined {
  if (started || disabled || !startWaiterThread(epfd, onReady)) return undefined;
  started = true;
  // A long interval stands for the thread in the event loop's books.
  const alive = setInterval(() => {}, 0x7fff_ffff);
  setTimerRef(alive, false);
  return {
    ref: () => setTimerRef(alive, true),
    unref: () => setTimerRef(alive, false),
    native: true,
  };
}

const keep: unknown[] = [];
