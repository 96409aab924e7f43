"""`rlvr demo`: build a weak tiny model, evaluate it, train it with GRPO, evaluate again, write a report.

    summary = run_demo(output_dir="runs/demo")            # the full demo (<= ~10 min on 2 idle CPU cores)
    summary = run_demo(output_dir="/tmp/d", quick=True)    # a handful of steps on a smaller model (tests)

Pipeline (every stage is the project's own code):
  1. rlvr.demo.pretrain.build_base   data files + supervised warm-up, cached (RLVR_CACHE, --rebuild)
  2. rlvr.demo.evaluate.evaluate      held-out greedy pass@1 and sampled pass@8 of the base
  3. rlvr.trainer.train               GRPO with examples/demo.yaml (paths pointed into the cache)
  4. rlvr.demo.evaluate.evaluate      the same held-out evaluation of the final checkpoint
  5. artifacts in output_dir: metrics.jsonl, completions.jsonl (written by the trainer), reward_curve.png,
     summary.json, report.md
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rlvr.demo import report as report_mod
from rlvr.demo.evaluate import evaluate, sample_table
from rlvr.demo.pretrain import PretrainConfig, build_base, cache_root
from rlvr.demo.task import read_jsonl

PASS_K = 8  # sampled pass@k of the before/after table

# The --quick variant: a smaller model, a few SFT steps and a few GRPO steps; same code path as the full demo.
QUICK_PRETRAIN = PretrainConfig(
    hidden=32, layers=1, heads=2, intermediate=64, n_train=256, n_test=8, n_dev=4, batch_size=16,
    max_steps=10, min_steps=10, eval_every=10, target=1.1, flawed_steps=4,
)
QUICK_OVERRIDES = [
    "trainer.steps=2", "rollout.prompts_per_step=2", "rollout.n=4", "rollout.max_new_tokens=24",
    "trainer.micro_batch_size=8", "eval.every=1", "data.eval_size=4", "reward.num_workers=1",
    "checkpoint.every=0", "trainer.warmup_steps=0",
]


def _steps_overrides(steps: int) -> list[str]:
    """--steps N: N GRPO steps, the lr warm-up shortened to fit (a tenth of N at most)."""
    return [f"trainer.steps={steps}", f"trainer.warmup_steps={min(10, steps // 10)}"]


def find_config() -> Path:
    """examples/demo.yaml of this checkout (or of the current directory)."""
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        path = base / "examples" / "demo.yaml"
        if path.is_file():
            return path
    raise FileNotFoundError("examples/demo.yaml not found (run from the rlvr checkout or pass config_path)")


@contextmanager
def _bar(console: Console, enabled: bool):
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"), console=console, disable=not enabled, transient=False,
    )
    with progress:
        yield progress


def _evaluate(model, tokenizer, rows, label: str, console: Console, progress: bool, max_new_tokens: int):
    """Greedy pass@1 and sampled pass@8 on ``rows``, with progress bars."""
    with _bar(console, progress) as bars:
        greedy_task = bars.add_task(f"{label}: greedy", total=len(rows), info="")
        greedy = evaluate(model, tokenizer, rows, n=1, temperature=0.0, max_new_tokens=max_new_tokens,
                          on_batch=lambda done: bars.update(greedy_task, completed=done))
        bars.update(greedy_task, info=f"pass@1 {greedy['pass@1']:.3f}")
        sampled_task = bars.add_task(f"{label}: {PASS_K} samples", total=len(rows), info="")
        sampled = evaluate(model, tokenizer, rows, n=PASS_K, temperature=1.0, max_new_tokens=max_new_tokens,
                           ks=(1, PASS_K), on_batch=lambda done: bars.update(sampled_task, completed=done))
        bars.update(sampled_task, info=f"pass@{PASS_K} {sampled[f'pass@{PASS_K}']:.3f}")
    return greedy, sampled


def _load(path: str | Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path)
    model.eval()
    return model, AutoTokenizer.from_pretrained(path)


def _clean(output_dir: Path) -> None:
    """Remove the artifacts of a previous demo run in ``output_dir`` (the demo always starts from the base)."""
    for name in ("checkpoints",):
        shutil.rmtree(output_dir / name, ignore_errors=True)
    for name in ("metrics.jsonl", "completions.jsonl", "summary.json", "report.md", "reward_curve.png"):
        (output_dir / name).unlink(missing_ok=True)


def run_demo(
    *,
    steps: int | None = None,
    output_dir: str | Path = "runs/demo",
    rebuild: bool = False,
    quick: bool = False,
    config_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    overrides: list[str] | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run the whole demo and return summary.json's content (see the module docstring)."""
    from rlvr.config import load_config
    from rlvr.trainer import train

    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # no "Loading weights" bars between ours
    console = console or Console()
    start = time.perf_counter()
    out = Path(output_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    _clean(out)
    pre_cfg = replace(QUICK_PRETRAIN if quick else PretrainConfig(), seed=seed)
    name = ("quick" if quick else "") + (f"seed{seed}" if seed else "")  # one cached base per seed
    cache = Path(cache_dir).expanduser() if cache_dir else cache_root() / name

    # 1. the weak base model
    console.rule("[bold]1. base model (supervised warm-up, cached)")
    with _bar(console, progress) as bars:
        sft_task = bars.add_task("warm-up", total=None, info="")

        def on_step(step: int, loss: float, dev: float | None) -> None:
            info = f"loss {loss:.3f}" + (f"  dev pass@1 {dev:.2f}" if dev is not None else "")
            bars.update(sft_task, completed=step, info=info)

        base = build_base(cache, rebuild=rebuild, cfg=pre_cfg, on_step=on_step)
        bars.update(sft_task, completed=base["steps"], total=base["steps"],
                    info="cached" if base["cached"] else f"built in {base['seconds']:.0f}s")
    console.print(f"base: {base['model_path']} ({base['learn_steps']} + {pre_cfg.flawed_steps} warm-up steps, "
                  f"dev pass@1 {base['dev_pass1']:.2f})")
    heldout = read_jsonl(base["heldout_path"])

    # 2. evaluate the base
    cfg = load_config(config_path or find_config(), [
        f"model.path={base['model_path']}", f"data.source={base['train_path']}",
        f"data.eval_source={base['dev_path']}", f"output_dir={out}", "checkpoint.resume=never",
        f"trainer.seed={seed}",
        *(QUICK_OVERRIDES if quick else []), *(_steps_overrides(steps) if steps else []), *(overrides or []),
    ])
    max_new = cfg.rollout.max_new_tokens
    console.rule(f"[bold]2. evaluate the base on {len(heldout)} held-out problems")
    model, tokenizer = _load(base["model_path"])
    base_greedy, base_sampled = _evaluate(model, tokenizer, heldout, "base", console, progress, max_new)
    del model

    # 3. GRPO through the project's trainer
    console.rule(f"[bold]3. GRPO: {cfg.trainer.steps} steps x {cfg.rollout.prompts_per_step * cfg.rollout.n} completions")
    cfg = replace(cfg, logging=replace(cfg.logging, progress=progress))
    train_start = time.perf_counter()
    train(cfg)
    train_seconds = time.perf_counter() - train_start

    # 4. evaluate the final policy
    final_dir = _final_checkpoint(out, cfg.trainer.steps)
    console.rule(f"[bold]4. evaluate the trained policy ({final_dir.name})")
    model, tokenizer = _load(final_dir)
    final_greedy, final_sampled = _evaluate(model, tokenizer, heldout, "final", console, progress, max_new)

    # 5. artifacts
    metrics = report_mod.read_metrics(out / "metrics.jsonl")
    summary = {
        "base_pass1": base_greedy["pass@1"],
        "final_pass1": final_greedy["pass@1"],
        f"base_pass{PASS_K}": base_sampled[f"pass@{PASS_K}"],
        f"final_pass{PASS_K}": final_sampled[f"pass@{PASS_K}"],
        "base_sampled_pass1": base_sampled["pass@1"],
        "final_sampled_pass1": final_sampled["pass@1"],
        "steps": metrics[-1]["step"] if metrics else 0,
        "completions_per_step": cfg.rollout.prompts_per_step * cfg.rollout.n,
        "heldout_problems": len(heldout),
        "first_reward_mean": metrics[0].get("reward/mean") if metrics else None,
        "final_reward_mean": metrics[-1].get("reward/mean") if metrics else None,
        "base_warmup_steps": base["steps"],
        "base_learn_steps": base["learn_steps"],
        "seed": seed,
        "torch_threads": torch.get_num_threads(),
        "base_cached": base["cached"],
        "train_seconds": train_seconds,
        "wall_seconds": time.perf_counter() - start,
        "quick": quick,
        "output_dir": str(out),
    }
    report_mod.plot_curve(metrics, summary, out / "reward_curve.png")
    samples = {
        "base": sample_table(heldout, base_greedy["samples"]),
        "final": sample_table(heldout, final_greedy["samples"]),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "report.md").write_text(report_mod.markdown(summary, samples, cfg))
    console.print(before_after_table(summary))
    console.print(f"artifacts in {out}: metrics.jsonl completions.jsonl reward_curve.png summary.json report.md")
    return summary


def _final_checkpoint(out: Path, steps: int) -> Path:
    from rlvr.trainer.state import list_checkpoints

    found = list_checkpoints(out)
    if not found:
        raise RuntimeError(f"the trainer wrote no checkpoint under {out / 'checkpoints'}")
    return found[-1]


def before_after_table(summary: dict[str, Any]) -> Table:
    """The rich before/after table printed at the end of the demo."""
    table = Table(title=f"held-out accuracy ({summary['heldout_problems']} problems, {summary['steps']} GRPO steps)")
    table.add_column("metric")
    table.add_column("base", justify="right")
    table.add_column("after GRPO", justify="right")
    table.add_column("change", justify="right")
    for label, key in (("greedy pass@1", "pass1"), (f"pass@{PASS_K} (T=1)", f"pass{PASS_K}")):
        before, after = summary[f"base_{key}"], summary[f"final_{key}"]
        table.add_row(label, f"{100 * before:.1f}%", f"{100 * after:.1f}%", f"{100 * (after - before):+.1f} pts")
    table.caption = f"wall time {summary['wall_seconds']:.0f}s (GRPO {summary['train_seconds']:.0f}s)"
    return table
