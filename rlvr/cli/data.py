"""`rlvr data filter | select | stats`: the data recipes that run before training (docs/data.md).

    rlvr data filter --model runs/base --data train.jsonl --n 8 --keep "0.1<=pass<=0.9" -o train.mid.jsonl
    rlvr data select runs/full --by accuracy_variance --top 1 -o pick.jsonl
    rlvr data stats train.jsonl --tokenizer runs/base

Settings come from the flags, else from --config (model / data / prompt / rollout / reward sections), else the
defaults, as in `rlvr eval`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from rlvr.cli.eval import _fail, _load_problems, apply_flags, model_fingerprint, open_engine

console = Console()
data_app = typer.Typer(no_args_is_help=True, help="Data recipes: difficulty filter, 1-shot selection, statistics.")


def _config(config: Optional[str], overrides: Optional[list[str]]):
    from rlvr.config import ConfigError, load_config

    try:
        return load_config(config, list(overrides or []))
    except ConfigError as err:
        _fail(f"config: {err}")


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(row, default=str) + "\n" for row in rows), encoding="utf-8")
    tmp.replace(path)


@data_app.command("filter")
def filter_command(
    model: Optional[str] = typer.Option(None, "--model", help="model folder; overrides model.path"),
    data: Optional[str] = typer.Option(None, "--data", help="problems (as data.source); default data.source"),
    output: str = typer.Option(..., "-o", "--output", help="the JSONL file of kept rows"),
    keep: str = typer.Option("0.1<=pass<=0.9", "--keep", help="pass-rate range kept, e.g. '0<pass<1', 'pass>=0.2'"),
    n: int = typer.Option(8, "--n", help="samples per problem"),
    config: Optional[str] = typer.Option(None, "--config", help="YAML RunConfig whose sections are reused"),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="default rollout.temperature"),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", help="default rollout.max_new_tokens"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="completions per call (0 = 16 problems)"),
    limit: Optional[int] = typer.Option(None, "--limit", help="only the first N problems"),
    verifier: Optional[str] = typer.Option(None, "--verifier", help="verifier of rows without their own"),
    template: Optional[str] = typer.Option(None, "--template", help="prompt template (prompt.template)"),
    seed: int = typer.Option(0, "--seed", help="sampling seed"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="rich progress bar"),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="dotted config override, repeatable"),
) -> None:
    """Sample n completions per problem, score them, and keep the rows whose pass rate is in --keep (each with its
    measured pass_rate); a pass-rate histogram goes next to the output (.hist.txt, .hist.png). The sampling is
    resumable: a killed filter continues from <output>.eval/."""
    from rlvr.data.filter import filtered_rows, histogram_text, parse_keep, plot_histogram

    try:
        keep_range = parse_keep(keep)
    except ValueError as err:
        _fail(str(err))
    if n < 1:
        _fail(f"--n must be >= 1, got {n}")
    cfg = _config(config, overrides)
    apply_flags(cfg, model=model, verifier=verifier, template=template)
    if data is None and not cfg.data.source:
        _fail("no problems: pass --data SOURCE (or data.source in --config)")
    cfg.data.eval_source = ""  # filter the training source, not the held-out one
    temperature = cfg.rollout.temperature if temperature is None else temperature
    if temperature == 0 and n > 1:
        _fail(f"--n {n} samples at temperature 0 are identical (pass rate 0 or 1 only): use --temperature > 0")
    max_new_tokens = max_new_tokens or cfg.rollout.max_new_tokens
    batch_size = cfg.rollout.batch_size if batch_size is None else batch_size
    examples, data_cfg, _ = _load_problems(cfg, data, limit)

    from rlvr.eval.results import run_eval
    from rlvr.rewards import RewardScorer

    engine = open_engine(cfg, examples, max_new_tokens)
    out = Path(output)
    settings = {"model": cfg.model.path, "model_fingerprint": model_fingerprint(cfg.model.path),
                "data": dataclasses.asdict(data_cfg), "prompt": dataclasses.asdict(cfg.prompt),
                "reward": dataclasses.asdict(cfg.reward), "n": n, "temperature": temperature,
                "top_p": cfg.rollout.top_p, "top_k": cfg.rollout.top_k, "max_new_tokens": max_new_tokens,
                "seed": seed, "dtype": cfg.model.dtype}
    r = cfg.reward
    scorer = RewardScorer(r.components, r.timeout_s, r.num_workers, memory_limit_mb=r.memory_limit_mb)
    try:
        result = run_eval(engine, scorer, examples, out.with_name(out.name + ".eval"), settings=settings, ks=[1],
                          plot=False, n=n, temperature=temperature, top_p=cfg.rollout.top_p, top_k=cfg.rollout.top_k,
                          max_new_tokens=max_new_tokens, batch_size=batch_size, greedy=False,
                          correct_threshold=r.correct_threshold, seed=seed, progress=progress)
    finally:
        scorer.close()
        engine.close()
    records = {rec["key"]: rec for rec in result.problems}
    rows, rates = filtered_rows(examples, records, keep_range, data_cfg)
    _write_jsonl(out, rows)
    text = histogram_text(rates, n, keep_range)
    stem = out.with_suffix("")
    stem.with_name(stem.name + ".hist.txt").write_text(text + "\n", encoding="utf-8")
    png = plot_histogram(rates, n, keep_range, stem.with_name(stem.name + ".hist.png"),
                         title=f"{Path(cfg.model.path).name}: kept {len(rows)} of {len(rates)} ({keep_range})")
    console.print(text, highlight=False)
    console.print(f"kept {len(rows)} of {len(rates)} problems ({keep_range}); wrote {out}, {png}")


@data_app.command("select")
def select_command(
    run_dir: str = typer.Argument(..., help="an earlier training run's output_dir (its completions.jsonl)"),
    output: str = typer.Option(..., "-o", "--output", help="the JSONL file of picked rows"),
    by: str = typer.Option("accuracy_variance", "--by", help="ranking: accuracy_variance (1-shot RLVR)"),
    top: int = typer.Option(1, "--top", help="how many examples to pick"),
    show: int = typer.Option(10, "--show", help="ranks printed with their accuracy histories"),
    config: Optional[str] = typer.Option(None, "--config", help="the run's config (default RUN_DIR/config.yaml)"),
) -> None:
    """Rank the training examples of a run by the variance of their per-visit training accuracy (one visit per
    epoch with the uniform sampler), print the top ranks with their histories, and write the top rows."""
    from rlvr.data import DataError, load_examples
    from rlvr.data.filter import source_row
    from rlvr.data.select import accuracy_histories, rank_by_variance, read_rows
    from rlvr.logging import COMPLETIONS_FILE

    if by != "accuracy_variance":
        _fail(f"--by {by!r}: the ranking available is accuracy_variance")
    if top < 1:
        _fail(f"--top must be >= 1, got {top}")
    run = Path(run_dir)
    completions = run / COMPLETIONS_FILE
    if not completions.is_file():
        _fail(f"{completions} not found: select reads a training run's completions (logging.log_completions: true)")
    config_path = Path(config) if config else run / "config.yaml"
    if not config_path.is_file():
        _fail(f"{config_path} not found: pass --config with the run's YAML (it names the data the indices refer to)")
    cfg = _config(str(config_path), [])
    ranked = rank_by_variance(accuracy_histories(read_rows(completions), cfg.reward.correct_threshold))
    if not ranked:
        _fail(f"{completions} holds no completions")
    try:
        report = load_examples(cfg.data)
    except (DataError, ValueError) as err:
        _fail(f"data of the run: {err}")
    by_key = {(ex.origin, ex.index): ex for ex in report.examples}
    table = Table(title=f"{run}: {len(ranked)} examples ranked by accuracy variance")
    for column in ("rank", "source", "index", "variance", "visits", "accuracy per visit"):
        table.add_column(column, justify="right" if column in ("rank", "index", "variance", "visits") else "left")
    for rank, (key, variance, history) in enumerate(ranked[: max(show, top)], start=1):
        table.add_row(str(rank), key[0] or "-", str(key[1]), "-" if math.isnan(variance) else f"{variance:.4f}",
                      str(len(history)), " ".join(f"{a:.2f}" for a in history))
    console.print(table)
    picked = []
    for key, variance, history in ranked[:top]:
        if key not in by_key:
            _fail(f"example {key} of {completions} is not in the run's data any more (the data changed?)")
        picked.append({**source_row(by_key[key], cfg.data), "accuracy_variance": variance,
                       "accuracy_history": history})
    _write_jsonl(Path(output), picked)
    console.print(f"wrote {len(picked)} rows to {output}")


@data_app.command("stats")
def stats_command(
    source: str = typer.Argument(..., help="a data source (as data.source)"),
    tokenizer_path: Optional[str] = typer.Option(None, "--tokenizer", help="count prompt tokens with this tokenizer"),
    config: Optional[str] = typer.Option(None, "--config", help="YAML RunConfig (data fields, prompt template)"),
    as_json: bool = typer.Option(False, "--json", help="print the statistics as JSON"),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="dotted config override, repeatable"),
) -> None:
    """Counts, fields, answer types, verifiers, duplicates, prompt lengths in tokens, and the rows that would be
    rejected with their reasons."""
    from rlvr.data import DataError, load_examples
    from rlvr.data.stats import source_stats

    cfg = _config(config, overrides)
    data_cfg = dataclasses.replace(cfg.data, source=source, sources=[])
    try:
        report = load_examples(data_cfg)
    except (DataError, ValueError) as err:
        _fail(f"data: {err}")
    tokenizer = None
    if tokenizer_path:
        from transformers import AutoTokenizer

        from rlvr.trainer.policy import model_path

        tokenizer = AutoTokenizer.from_pretrained(model_path(tokenizer_path))
    stats = source_stats(report, tokenizer, cfg.prompt if tokenizer is not None else None)
    if as_json:
        typer.echo(json.dumps(stats, indent=2, default=str))
        return
    table = Table(title=f"{source}", show_header=False)
    for key, value in stats.items():
        if value in ({}, []):
            continue
        shown = ", ".join(f"{k}: {v:g}" if isinstance(v, float) else f"{k}: {v}" for k, v in value.items()) \
            if isinstance(value, dict) else "; ".join(value) if isinstance(value, list) else str(value)
        table.add_row(key, shown)
    console.print(table)
