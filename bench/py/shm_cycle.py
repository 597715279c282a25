"""Baseline for bench/shm_bench.ts: one POSIX shared memory object's whole
life per iteration through Python's multiprocessing.shared_memory: create
(shm_open + ftruncate + mmap), write one page, close, unlink. Prints the
median nanoseconds per cycle over several rounds, last on its line.

Usage: shm_cycle.py [size] [iterations per round] [rounds]
"""
import os
import statistics
import sys
import time
from multiprocessing import shared_memory


def main(argv):
    size = int(argv[1]) if len(argv) > 1 else 4096
    iterations = int(argv[2]) if len(argv) > 2 else 20000
    rounds = int(argv[3]) if len(argv) > 3 else 7
    name = f"shmkit-bench-py-{os.getpid()}"
    pages = [bytes([i]) * size for i in range(256)]

    def cycle(i):
        shm = shared_memory.SharedMemory(name=name, create=True, size=size)
        shm.buf[:size] = pages[i & 255]
        shm.close()
        shm.unlink()

    for i in range(iterations):
        cycle(i)
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for i in range(iterations):
            cycle(i)
        samples.append((time.perf_counter_ns() - start) / iterations)
    print(f"{statistics.median(samples):.1f}")


main(sys.argv)
