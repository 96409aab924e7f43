"""rlvr vs TRL's GRPOTrainer on the demo task, in one run: same base, prompts, group size, lengths, lr, steps.

    pip install trl                      # the `bench` extra; TRL is used by this script only
    OMP_NUM_THREADS=2 PYTHONPATH=. python benchmarks/trl_side_by_side.py --steps 30
    PYTHONPATH=. python benchmarks/trl_side_by_side.py --repeats 3 --set rollout.hf.compile=true
    PYTHONPATH=. python benchmarks/trl_side_by_side.py --shape 256,8,768     # a ~10x larger, randomly initialised model

Both sides start from the cached demo base (rlvr.demo.pretrain.build_base) and train on the same train.jsonl
with P=16 prompts x G=8 completions per step, max 64 new tokens, temperature 1, lr from examples/demo.yaml,
no KL, PPO clip 0.2, group-normalised advantages, token-mean loss (TRL: loss_type="dapo"), one policy update per
batch, constant lr, grad-norm clip 1.0. Each side runs in its own subprocess, which reports:
  completions/s  = steps x P x G / (wall time of training, model load included for both)
  peak RSS       = the subprocess's own ru_maxrss (rlvr's reward worker process is not included)
  held-out pass@1 = greedy pass@1 of the trained policy on the demo's held-out problems
and the parent prints them side by side with rlvr/TRL ratios (with ``--repeats R``: every run, then the medians).
``--set KEY=VALUE`` (repeatable) overrides rlvr's side only (e.g. its speed options); ``--shape H,L[,I]`` replaces
the demo base by a randomly initialised Llama of hidden size H, L layers and MLP width I (default 4H) with the demo
tokenizer, for both sides: its accuracy means nothing (about 0), its throughput shows whether a speed-up is only
per-call overhead on a toy (the demo base is hidden 128, 4 layers, MLP 256: 0.67M parameters; 256,8,768 is 6.8M).
Differences left in: TRL samples a new prompt
order with its own sampler (same seed value, different stream), so the two runs see different prompts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _config(base: dict, steps: int, out: str, overrides: list[str] = ()):
    from rlvr.config import load_config

    return load_config(ROOT / "examples" / "demo.yaml", [
        f"model.path={base['model_path']}", f"data.source={base['train_path']}",
        f"data.eval_source={base['dev_path']}", f"output_dir={out}",
        f"trainer.steps={steps}", "eval.every=0", "checkpoint.every=0", "checkpoint.resume=never",
        "logging.progress=false", "logging.log_completions=false", *overrides,
    ])


def run_rlvr(base: dict, steps: int, workdir: str, overrides: list[str]) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.demo.evaluate import evaluate
    from rlvr.demo.task import read_jsonl
    from rlvr.trainer import train
    from rlvr.trainer.state import list_checkpoints

    cfg = _config(base, steps, workdir, overrides)
    start = time.perf_counter()
    train(cfg)
    seconds = time.perf_counter() - start
    final = list_checkpoints(workdir)[-1]
    model, tok = AutoModelForCausalLM.from_pretrained(final), AutoTokenizer.from_pretrained(final)
    pass1 = evaluate(model, tok, read_jsonl(base["heldout_path"]), max_new_tokens=cfg.rollout.max_new_tokens)["pass@1"]
    return {"seconds": seconds, "completions": steps * cfg.rollout.prompts_per_step * cfg.rollout.n, "pass1": pass1}


def run_trl(base: dict, steps: int, workdir: str, overrides: list[str]) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from rlvr.demo.evaluate import evaluate
    from rlvr.demo.task import is_correct, read_jsonl, render_prompt

    cfg = _config(base, steps, workdir)
    r, t = cfg.rollout, cfg.trainer
    rows = read_jsonl(base["train_path"])
    dataset = Dataset.from_list([{"prompt": render_prompt(x["question"]), "answer": x["answer"]} for x in rows])

    def exact_answer(completions, answer, **_):
        return [1.0 if is_correct(c, a) else 0.0 for c, a in zip(completions, answer)]

    args = GRPOConfig(
        output_dir=workdir, max_steps=steps, learning_rate=t.lr, lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=t.weight_decay, adam_beta1=t.betas[0], adam_beta2=t.betas[1], max_grad_norm=t.max_grad_norm,
        per_device_train_batch_size=r.prompts_per_step * r.n, gradient_accumulation_steps=1,
        num_generations=r.n, max_completion_length=r.max_new_tokens, temperature=r.temperature, top_p=1.0, top_k=0,
        beta=0.0, epsilon=cfg.algorithm.clip_low, epsilon_high=cfg.algorithm.clip_high, num_iterations=1,
        scale_rewards="group", loss_type="dapo", use_cpu=True, seed=t.seed, save_strategy="no", report_to="none",
        logging_steps=max(1, steps // 5), disable_tqdm=True, bf16=False,
    )
    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(base["model_path"])
    model = AutoModelForCausalLM.from_pretrained(base["model_path"])
    trainer = GRPOTrainer(model=model, reward_funcs=exact_answer, args=args, train_dataset=dataset,
                          processing_class=tok)
    trainer.train()
    seconds = time.perf_counter() - start
    trainer.model.eval()
    pass1 = evaluate(trainer.model, tok, read_jsonl(base["heldout_path"]), max_new_tokens=r.max_new_tokens)["pass@1"]
    return {"seconds": seconds, "completions": steps * r.prompts_per_step * r.n, "pass1": pass1}


def _random_model(base: dict, shape: str, folder: str) -> dict:
    """The demo base's files with its model replaced by a random Llama of ``shape`` = "H,L[,I]"."""
    from transformers import AutoTokenizer

    from rlvr.demo.tiny import build_tiny_llama

    hidden, layers, *rest = (int(x) for x in shape.split(","))
    tok = AutoTokenizer.from_pretrained(base["model_path"])
    model = build_tiny_llama(tok, hidden=hidden, layers=layers, intermediate=rest[0] if rest else 0)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return {**base, "model_path": folder}


def child(side: str, steps: int, result_path: str, overrides: list[str], model_path: str) -> None:
    from rlvr.demo.pretrain import build_base

    base = build_base()  # cached by the parent
    if model_path:
        base = {**base, "model_path": model_path}
    with tempfile.TemporaryDirectory(prefix=f"bench-{side}-") as workdir:
        result = (run_rlvr if side == "rlvr" else run_trl)(base, steps, workdir, overrides)
    result["peak_rss_mib"] = _peak_rss_mib()
    result["completions_per_s"] = result["completions"] / result["seconds"]
    Path(result_path).write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description="rlvr vs TRL GRPOTrainer on the demo task")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=1, help="runs per side (alternating); medians are printed")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="an rlvr config override for rlvr's side (repeatable)")
    parser.add_argument("--shape", default="", help="H,L[,I]: a random Llama of this shape instead of the base")
    parser.add_argument("--side", choices=["rlvr", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--model-path", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        child(args.side, args.steps, args.result, args.overrides, args.model_path)
        return

    import statistics

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.demo.evaluate import evaluate
    from rlvr.demo.pretrain import build_base
    from rlvr.demo.task import read_jsonl

    base = build_base()
    with tempfile.TemporaryDirectory(prefix="bench-model-") as folder:
        if args.shape:
            base = _random_model(base, args.shape, folder)
        model = AutoModelForCausalLM.from_pretrained(base["model_path"])
        tok = AutoTokenizer.from_pretrained(base["model_path"])
        params = sum(p.numel() for p in model.parameters())
        base_pass1 = evaluate(model, tok, read_jsonl(base["heldout_path"]), max_new_tokens=64)["pass@1"]
        del model
        runs: dict[str, list[dict]] = {"rlvr": [], "trl": []}
        for repeat in range(args.repeats):
            for side in ("rlvr", "trl"):
                with tempfile.NamedTemporaryFile(suffix=".json") as f:
                    cmd = [sys.executable, __file__, "--side", side, "--steps", str(args.steps), "--result", f.name,
                           "--model-path", base["model_path"] if args.shape else ""]
                    cmd += [f"--set={o}" for o in args.overrides]
                    print(f"running {side} ({args.steps} steps, run {repeat + 1}/{args.repeats}) ...", flush=True)
                    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
                    runs[side].append(json.loads(Path(f.name).read_text()))
    print()
    print(f"torch threads {torch.get_num_threads()}, model {params / 1e6:.2f}M parameters"
          f"{' (random init ' + args.shape + ')' if args.shape else ''}, {args.steps} steps x "
          f"{runs['rlvr'][0]['completions'] // args.steps} completions, base held-out greedy pass@1 "
          f"{100 * base_pass1:.1f}%{', rlvr overrides: ' + ' '.join(args.overrides) if args.overrides else ''}")
    if args.repeats > 1:
        for i, (a, b) in enumerate(zip(runs["rlvr"], runs["trl"])):
            print(f"run {i + 1}: completions/s rlvr {a['completions_per_s']:.1f}  TRL {b['completions_per_s']:.1f}  "
                  f"ratio {a['completions_per_s'] / b['completions_per_s']:.2f}   held-out pass@1 rlvr "
                  f"{100 * a['pass1']:.1f}%  TRL {100 * b['pass1']:.1f}%")
    med = {side: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for side, rs in runs.items()}
    a, b = med["rlvr"], med["trl"]
    print(f"{'median' if args.repeats > 1 else '':22s}{'rlvr':>12s}{'TRL':>12s}{'rlvr/TRL':>12s}")
    print(f"{'completions/s':22s}{a['completions_per_s']:12.1f}{b['completions_per_s']:12.1f}"
          f"{a['completions_per_s'] / b['completions_per_s']:12.2f}")
    print(f"{'train wall s':22s}{a['seconds']:12.1f}{b['seconds']:12.1f}{a['seconds'] / b['seconds']:12.2f}")
    print(f"{'peak RSS MiB':22s}{a['peak_rss_mib']:12.0f}{b['peak_rss_mib']:12.0f}"
          f"{a['peak_rss_mib'] / b['peak_rss_mib']:12.2f}")
    print(f"{'held-out pass@1':22s}{100 * a['pass1']:11.1f}%{100 * b['pass1']:11.1f}%")


if __name__ == "__main__":
    main()
