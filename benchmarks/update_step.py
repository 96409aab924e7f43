"""Time of one policy update (prepare + update_policy) for the speed options of issue 18: eager (the default),
trainer.compile, trainer.packing, both, and (epochs 2) reuse of the rollout's log-probs as old_logp.

    PYTHONPATH=. python benchmarks/update_step.py                          # demo + 10x model, both length mixes
    PYTHONPATH=. python benchmarks/update_step.py --models demo --repeats 5

A synthetic batch of 128 rows (16 prompts x 8 completions): prompts of 15..25 tokens, responses of uniform
length in 55..64 (the demo's) or 8..256 (varying). Models: the demo's tiny Llama (hidden 128, 4 layers, MLP 256)
and a ~20x larger one (hidden 512, 8 layers, MLP 1024), random init. Each setting runs one untimed update
(compiles; the reuse check) and then ``--repeats`` timed ones with the same runtime, as the loop would; the
table gives the median (and min) over repeats run interleaved across the settings (so that load from other
processes hits all alike), the ratio to the eager baseline of the same model, mix and epochs measured in this
run, and the tokens one forward pass computes (padding included) against the real ones. "compile s" is the
first update's time with compilation; torch's compile caches persist in the process, so only the first
compiled setting pays the full compile.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from rlvr.config import AlgorithmConfig, TrainerConfig  # noqa: E402
from rlvr.demo.tiny import build_char_tokenizer, build_tiny_llama  # noqa: E402
from rlvr.trainer.batch import RolloutBatch  # noqa: E402
from rlvr.trainer.update import UpdateRuntime, _logprobs_of, prepare, update_policy  # noqa: E402

MODELS = {"demo": dict(hidden=128, layers=4, intermediate=256, heads=4),
          "big": dict(hidden=512, layers=8, intermediate=1024, heads=8)}
MIXES = {"uniform": (55, 64), "varying": (8, 256)}
# name: (compile, packing, reuse, epochs)
MODES = {"eager": (False, False, False, 1), "compile": (True, False, False, 1), "packing": (False, True, False, 1),
         "compile+packing": (True, True, False, 1), "eager ep2": (False, False, False, 2),
         "reuse ep2": (False, False, True, 2), "reuse+packing ep2": (False, True, True, 2)}


def make_batch(rows: int, vocab: int, lo: int, hi: int, seed: int = 0) -> RolloutBatch:
    g = torch.Generator().manual_seed(seed)
    prompt_len = torch.randint(15, 26, (rows,), generator=g)
    resp_len = torch.randint(lo, hi + 1, (rows,), generator=g)
    lp, t = int(prompt_len.max()), int(resp_len.max())
    prompt_mask = torch.arange(lp).flip(0).unsqueeze(0) < prompt_len.unsqueeze(1)
    response_mask = torch.arange(t).unsqueeze(0) < resp_len.unsqueeze(1)
    ids = lambda shape: torch.randint(4, vocab, shape, generator=g)  # noqa: E731
    return RolloutBatch(
        prompt_ids=torch.where(prompt_mask, ids((rows, lp)), 0), prompt_mask=prompt_mask,
        response_ids=torch.where(response_mask, ids((rows, t)), 0), response_mask=response_mask,
        rewards=torch.rand(rows, generator=g), group_ids=torch.arange(rows) // 8, truncated=resp_len == hi,
    )


def computed_tokens(batch: RolloutBatch, runtime: UpdateRuntime, micro: int) -> int:
    """Tokens one forward pass over the batch computes (padding included), as the update groups them."""
    total = 0
    for rows, pack in runtime.micro_batches(batch, torch.arange(len(batch)), micro, "cpu"):
        if pack is not None:
            total += pack.input_ids.numel()
        else:
            ids, _, _ = batch.model_inputs(rows, "cpu")
            total += ids.numel()
    return total


def one_update(model, opt, sched, batch, runtime, trainer, algo, seed) -> float:
    b = RolloutBatch(**{k: getattr(batch, k) for k in ("prompt_ids", "prompt_mask", "response_ids",
                                                       "response_mask", "rewards", "group_ids", "truncated",
                                                       "rollout_logp")})
    t0 = time.perf_counter()
    adv, pg_mask, loss_mask, _ = prepare(model, None, b, algo, 0.0, trainer, 1.0, "cpu", runtime=runtime)
    update_policy(model, opt, sched, b, adv, pg_mask, loss_mask, algo, 0.0, trainer, 1.0, 256, "cpu",
                  torch.Generator().manual_seed(seed), runtime)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,big")
    parser.add_argument("--mixes", default="uniform,varying")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--micro", default="demo=128,big=32", help="micro_batch_size per model")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    micro_of = dict(kv.split("=") for kv in args.micro.split(","))
    tokenizer = build_char_tokenizer()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'model':6} {'mix':8} {'mode':18} {'median s':>9} {'vs eager':>9} {'min s':>7} {'vs eager':>8} "
          f"{'computed tok':>13} "
          f"{'real tok':>9} {'compile s':>9}")
    for model_name in args.models.split(","):
        shape = MODELS[model_name]
        micro = int(micro_of.get(model_name, 128))
        for mix in args.mixes.split(","):
            batch = make_batch(args.rows, len(tokenizer), *MIXES[mix])
            real = int(batch.prompt_mask.sum() + batch.response_mask.sum())
            settings = {}
            for mode in args.modes.split(","):  # build and warm every setting first (compiles, reuse check)
                compile_, packing, reuse, epochs = MODES[mode]
                torch.manual_seed(0)
                model = build_tiny_llama(tokenizer, **shape)
                model.train()
                b = make_batch(args.rows, len(tokenizer), *MIXES[mix])
                if reuse:  # stand-in for the HF engine's sampled-token log-probs: the policy's own
                    b.rollout_logp, _ = _logprobs_of(model, b, [torch.arange(len(b))], "cpu", 1.0, 1024, False)
                trainer = TrainerConfig(micro_batch_size=micro, epochs=epochs, mini_batches=1)
                opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
                sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
                runtime = UpdateRuntime(compile=compile_, packing=packing, reuse=reuse)
                setting = (model, opt, sched, b, runtime, trainer, AlgorithmConfig())
                settings[mode] = (setting, one_update(*setting, 0), [])
            for i in range(args.repeats):  # interleaved, so that a noisy moment hits every setting alike
                for mode, (setting, _, times) in settings.items():
                    times.append(one_update(*setting, i + 1))
            baseline = {}
            for mode, (setting, t_first, times) in settings.items():
                compile_, packing, reuse, epochs = MODES[mode]
                runtime = setting[4]
                med = statistics.median(times)
                key = "ep2" if epochs == 2 else "ep1"
                baseline.setdefault(key, (med, min(times)))
                comp = f"{runtime.forward.compile_s:.1f}" if compile_ and runtime.forward.enabled else \
                    ("failed" if compile_ else "")
                if reuse and not runtime.reuse:
                    mode += " (refused)"
                print(f"{model_name:6} {mix:8} {mode:18} {med:9.3f} {baseline[key][0] / med:8.2f}x "
                      f"{min(times):7.3f} {baseline[key][1] / min(times):7.2f}x "
                      f"{computed_tokens(batch, runtime, micro):13d} {real:9d} {comp:>9}  "
                      f"(first {t_first:.1f} s; runs {', '.join(f'{t:.2f}' for t in times)})", flush=True)

if __name__ == "__main__":
    main()
