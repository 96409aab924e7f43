"""Many rollouts per prompt (BroRL): peak memory and step time of `rlvr train` as rollout.n grows, chunks fixed.

    PYTHONPATH=. python benchmarks/many_rollouts.py                     # N = 16, 64, 256, 512 on the demo task
    PYTHONPATH=. python benchmarks/many_rollouts.py --n 16 512 --steps 2

The defaults (4 prompts, chunks of 64) fill every chunk already at N = 16, so the comparison is at fixed chunk
sizes (with 2 prompts x 16 = 32 rows the N = 16 run would use half-empty chunks and look smaller).

Each N runs in its own subprocess: `rlvr.trainer.train` on examples/demo.yaml with the cached demo base
(built by rlvr.demo.pretrain.build_base if missing), ``--prompts`` prompts x N completions per step, generation
in chunks of ``--gen-chunk`` completions (rollout.batch_size) and the update in micro-batches of
``--micro`` (trainer.micro_batch_size), so the chunk sizes, not N, bound the activations. Reported per N:
  peak RSS     the subprocess's ru_maxrss (the reward worker process is separate and not included)
  step s       median step_time_s over the steps after the first
  rollout s / update s   medians of time/rollout_s and time/update_s
  zero-var     mean frac_reward_zero_std: the share of groups whose N rewards are all equal (they teach nothing;
               BroRL's observation is that it falls as N grows)
and the ratio peak RSS(N max) / peak RSS(N min) (issue 18's goal: <= 1.3 from N = 16 to 512).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def child(n: int, args: argparse.Namespace, out: str) -> None:
    from rlvr.config import load_config
    from rlvr.demo.pretrain import build_base, cache_root
    from rlvr.trainer import train

    build_base()
    cache = cache_root()
    cfg = load_config(ROOT / "examples" / "demo.yaml", [
        f"model.path={cache / 'base'}", f"data.source={cache / 'train.jsonl'}", "data.eval_source=",
        f"rollout.prompts_per_step={args.prompts}", f"rollout.n={n}", f"rollout.batch_size={args.gen_chunk}",
        f"trainer.micro_batch_size={args.micro}", f"trainer.steps={args.steps}", "trainer.warmup_steps=0",
        "eval.every=0", "checkpoint.every=0", "checkpoint.save_final=false", "logging.progress=false",
        "logging.log_completions=false", f"output_dir={out}/run"])
    train(cfg)
    rows = [json.loads(line) for line in (Path(out) / "run" / "metrics.jsonl").read_text().splitlines()]
    later = rows[1:] or rows
    med = lambda key: statistics.median(r[key] for r in later)  # noqa: E731
    result = {"n": n, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "step_s": med("step_time_s"), "rollout_s": med("time/rollout_s"), "update_s": med("time/update_s"),
              "zero_var": statistics.mean(r["frac_reward_zero_std"] for r in rows),
              "completions_per_s": med("completions_per_s")}
    Path(out, "result.json").write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[16, 64, 256, 512])
    parser.add_argument("--prompts", type=int, default=4, help="prompts per step (P)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--gen-chunk", type=int, default=64, help="rollout.batch_size (completions per generate)")
    parser.add_argument("--micro", type=int, default=64, help="trainer.micro_batch_size")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args, args.out)
        return
    from rlvr.demo.pretrain import build_base

    build_base()  # once, before the timed children
    results = []
    for n in args.n:
        with tempfile.TemporaryDirectory() as out:
            cmd = [sys.executable, __file__, "--child", str(n), "--out", out, "--prompts", str(args.prompts),
                   "--steps", str(args.steps), "--gen-chunk", str(args.gen_chunk), "--micro", str(args.micro)]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            results.append(json.loads(Path(out, "result.json").read_text()))
        r = results[-1]
        print(f"N={r['n']:4d}  peak RSS {r['peak_rss_mib']:7.0f} MiB  step {r['step_s']:6.2f} s  (rollout "
              f"{r['rollout_s']:.2f} s, update {r['update_s']:.2f} s)  {r['completions_per_s']:6.1f} completions/s  "
              f"zero-variance groups {r['zero_var']:.2f}", flush=True)
    ratio = results[-1]["peak_rss_mib"] / results[0]["peak_rss_mib"]
    print(f"peak RSS N={results[-1]['n']} / N={results[0]['n']} = {ratio:.2f}  (goal <= 1.3)")
    print(json.dumps({"prompts": args.prompts, "gen_chunk": args.gen_chunk, "micro": args.micro,
                      "results": results, "rss_ratio": ratio}))


if __name__ == "__main__":
    main()
