"""Run the whole `rlvr demo` from scratch (a fresh cache: data, warm-up, base eval, GRPO, final eval).

    OMP_NUM_THREADS=2 PYTHONPATH=. python benchmarks/demo.py [--steps N] [--output-dir runs/demo_bench]

Prints the wall time of each stage and the before/after held-out accuracy. The target on an idle 2-core CPU:
everything within 10 minutes and greedy pass@1 up by >= 25 points.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="GRPO steps (default: examples/demo.yaml)")
    parser.add_argument("--output-dir", default="runs/demo_bench")
    parser.add_argument("--quick", action="store_true", help="the --quick demo (a smoke test of this script)")
    args = parser.parse_args()

    import torch

    with tempfile.TemporaryDirectory(prefix="rlvr-demo-bench-") as cache:
        os.environ["RLVR_CACHE"] = cache  # nothing cached: the base is built from scratch
        from rlvr.demo.run import run_demo

        start = time.perf_counter()
        summary = run_demo(steps=args.steps, output_dir=args.output_dir, quick=args.quick)
        total = time.perf_counter() - start
    print()
    print(f"torch threads        {torch.get_num_threads()}  (cores seen: {os.cpu_count()})")
    print(f"wall time            {total:.1f} s  (GRPO {summary['train_seconds']:.1f} s, "
          f"{summary['steps']} steps x {summary['completions_per_step']} completions)")
    print(f"base warm-up steps   {summary['base_warmup_steps']}")
    print(f"greedy pass@1        {100 * summary['base_pass1']:.1f}% -> {100 * summary['final_pass1']:.1f}% "
          f"({100 * (summary['final_pass1'] - summary['base_pass1']):+.1f} pts)")
    print(f"pass@8 (T=1)         {100 * summary['base_pass8']:.1f}% -> {100 * summary['final_pass8']:.1f}% "
          f"({100 * (summary['final_pass8'] - summary['base_pass8']):+.1f} pts)")
    print(f"targets              wall <= 600 s: {'met' if total <= 600 else 'MISSED'}; "
          f"pass@1 +25 pts: {'met' if summary['final_pass1'] - summary['base_pass1'] >= 0.25 else 'MISSED'}")


if __name__ == "__main__":
    main()
