"""Where one training step's time goes: torch.profiler over the rollout and the update of the demo task.

    PYTHONPATH=. python benchmarks/profile_step.py                       # demo base, examples/demo.yaml
    PYTHONPATH=. python benchmarks/profile_step.py --set rollout.hf.compile=true --set trainer.compile=true
    PYTHONPATH=. python benchmarks/profile_step.py --shape 256,8,768      # a ~10x larger random-init model

It builds what `rlvr train` builds (policy, engine, sampler, reward scorer) with the loop's own functions, runs
``--warmup`` steps untimed (compiles, allocator, thread pools), then profiles ``--steps`` steps, each phase in its
own profiler: rollout (engine.generate through the loop's sample_groups, scoring excluded), update
(prepare + update_policy). It prints the wall time per phase and the top operators of each, by self CPU time,
with their share of the phase: the breakdown docs/performance.md quotes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def top_ops(prof, total_us: float, rows: int) -> list[tuple[str, float, float]]:
    """[(op name, self CPU ms, share of the phase)] of the ``rows`` largest aten ops by self CPU time."""
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [(e.key, e.self_cpu_time_total / 1e3, e.self_cpu_time_total / total_us) for e in events[:rows]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rows", type=int, default=8, help="operators listed per phase")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--shape", default="", help="H,L[,I]: a random Llama of this shape instead of the base")
    args = parser.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    from rlvr.config import load_config
    from rlvr.data.sampler import PromptSampler
    from rlvr.demo.pretrain import build_base
    from rlvr.rewards import RewardScorer
    from rlvr.rollout import make_engine
    from rlvr.trainer.batch import build_batch
    from rlvr.trainer.loop import load_data, render_prompts, sample_groups
    from rlvr.trainer.optim import make_optimizer
    from rlvr.trainer.policy import load_policy, load_tokenizer, resolve_device, resolve_dtype
    from rlvr.trainer.update import UpdateRuntime, prepare, update_policy

    base = build_base()
    with tempfile.TemporaryDirectory() as folder:
        if args.shape:
            sys.path.insert(0, str(ROOT / "benchmarks"))
            from trl_side_by_side import _random_model

            base = _random_model(base, args.shape, folder)
        cfg = load_config(ROOT / "examples" / "demo.yaml", [
            f"model.path={base['model_path']}", f"data.source={base['train_path']}", "data.eval_source=",
            f"output_dir={folder}/run", *args.overrides])
        torch.manual_seed(0)
        device = resolve_device(cfg.model.device)
        dtype = resolve_dtype(cfg.model.dtype, device)
        examples, _ = load_data(cfg)
        tokenizer = load_tokenizer(cfg.model)
        render_prompts(cfg, tokenizer, examples)
        model = load_policy(cfg.model, device, dtype)
        engine = make_engine(cfg, model, tokenizer, device, dtype, [ex.prompt for ex in examples])
        sampler = PromptSampler(examples, cfg.rollout.prompts_per_step, seed=0)
        t, a = cfg.trainer, cfg.algorithm
        optimizer, scheduler = make_optimizer(model.parameters(), t, 1000)
        runtime = UpdateRuntime.from_config(cfg, model)  # trainer.compile / packing / reuse, as the loop builds it
        times: dict[str, list[float]] = {"rollout": [], "reward": [], "update": []}
        profiles: dict[str, list] = {"rollout": [], "update": []}

        def phase(name, fn, record):
            if not record:
                return fn()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                start = time.perf_counter()
                out = fn()
                times[name].append(time.perf_counter() - start)
            profiles[name].append(prof)
            return out

        with RewardScorer(cfg.reward.components, cfg.reward.timeout_s, cfg.reward.num_workers,
                          memory_limit_mb=cfg.reward.memory_limit_mb) as scorer:
            for step in range(args.warmup + args.steps):
                record = step >= args.warmup
                ex, groups, results, m = phase("rollout", lambda: sample_groups(cfg, sampler, engine, scorer, step), record)
                if record:  # sample_groups timed scoring apart: take it out of the rollout phase
                    times["reward"].append(m["time/reward_s"])
                    times["rollout"][-1] -= m["time/reward_s"]
                batch = build_batch(ex, groups, results, tokenizer.pad_token_id, a.group_key)

                def update():
                    adv, pg_mask, loss_mask, _ = prepare(model, None, batch, a, 0.0, t, cfg.rollout.temperature,
                                                         device, runtime=runtime)
                    update_policy(model, optimizer, scheduler, batch, adv, pg_mask, loss_mask, a, 0.0, t,
                                  cfg.rollout.temperature, cfg.rollout.max_new_tokens, device,
                                  torch.Generator().manual_seed(step), runtime)

                phase("update", update, record)
                engine.sync_weights(model)

    print(f"torch threads {torch.get_num_threads()}, {cfg.rollout.prompts_per_step} x {cfg.rollout.n} completions,"
          f" max {cfg.rollout.max_new_tokens} new tokens, {args.steps} profiled steps after {args.warmup} warm-up"
          f"{', ' + ' '.join(args.overrides) if args.overrides else ''}{', shape ' + args.shape if args.shape else ''}")
    print(f"median s per step: rollout {statistics.median(times['rollout']):.3f}, scoring "
          f"{statistics.median(times['reward']):.3f}, update {statistics.median(times['update']):.3f} "
          "(profiler overhead included)")
    for name in ("rollout", "update"):
        prof = profiles[name][-1]
        total = sum(e.self_cpu_time_total for e in prof.key_averages())
        print(f"\n{name}: top operators by self CPU time (last profiled step)")
        for op, ms, share in top_ops(prof, total, args.rows):
            print(f"  {op:48s}{ms:9.1f} ms {100 * share:6.1f}%")


if __name__ == "__main__":
    main()
