"""Sandbox throughput: trivial Python programs per second (goal: >= 50/s on 2 cores).

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/sandbox.py --runs 200 --threads 2

Each run is a full sandbox cycle (uid slot, private dir, namespaces, fork/exec of the launcher + python -I -S,
output collection, teardown). Also reports the `code` verifier on 1-case and 20-case stdin/stdout problems, and the CPU
time per run (this process + the sandboxed programs; kernel work in kernel threads, e.g. namespace teardown, is
not counted): on a shared machine the wall-clock rate depends on the load, the CPU cost does not.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rlvr.rewards import VERIFIERS  # noqa: E402
from rlvr.sandbox import capabilities, run_program, sandbox_python  # noqa: E402


def cpu_seconds() -> float:
    """User + system CPU of this process and of all its waited-for descendants (the sandboxed programs)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def rate(fn, runs: int, threads: int) -> tuple[float, float, float]:
    """(runs per second, median seconds per run, CPU seconds per run)."""
    walls: list[float] = []
    cpu0 = cpu_seconds()

    def one(i: int) -> None:
        t = time.perf_counter()
        fn(i)
        walls.append(time.perf_counter() - t)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(runs)))
    elapsed = time.perf_counter() - start
    return runs / elapsed, sorted(walls)[len(walls) // 2], (cpu_seconds() - cpu0) / runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    caps = capabilities()
    print(f"isolation: uid={caps.setuid} netns={caps.netns} mountns={caps.mountns} pidns={caps.pidns}; "
          f"python {sandbox_python()}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}")

    def trivial(i: int) -> None:
        r = run_program(f"print({i})", timeout_s=10)
        assert r.stdout == f"{i}\n", r

    run_program("pass")  # warm-up: probes
    cores = os.cpu_count() or 1
    for threads in sorted({1, args.threads}):
        per_s, med, cpu = rate(trivial, args.runs, threads)
        print(f"run_program('print(i)')  threads={threads}: {per_s:6.1f} runs/s  (median {med * 1000:.1f} ms/run; "
              f"{cpu * 1000:.1f} CPU-ms/run -> at most ~{cores / cpu:.0f} runs/s on {cores} idle cores)")

    code = VERIFIERS.get("code")
    completion = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    tests = [{"input": "1 2", "output": "3"}]

    def verify(i: int) -> None:
        assert code(completion, tests, {}).score == 1.0

    per_s, med, cpu = rate(verify, args.runs // 2, args.threads)
    print(f"code verifier, 1 stdio case  threads={args.threads}: {per_s:6.1f} items/s  (median {med * 1000:.1f} ms; "
          f"{cpu * 1000:.1f} CPU-ms/item)")
    many = [{"input": f"{i} {i}", "output": str(2 * i)} for i in range(20)]

    def verify_many(i: int) -> None:
        assert code(completion, many, {}).score == 1.0

    per_s, med, cpu = rate(verify_many, args.runs // 4, args.threads)
    print(f"code verifier, 20 stdio cases threads={args.threads}: {per_s:6.1f} items/s  (median {med * 1000:.1f} ms; "
          f"{cpu * 1000:.1f} CPU-ms/item)")


if __name__ == "__main__":
    main()
