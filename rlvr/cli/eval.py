"""`rlvr eval` and `rlvr compare` (plain typer command functions; rlvr/cli/__init__.py registers them).

    rlvr eval --model runs/demo/final --data data/test.jsonl --n 16 --k 1,2,4,8,16 --output-dir runs/eval_rl
    rlvr eval --config examples/demo.yaml --model runs/demo/final --output-dir runs/eval_rl
    rlvr compare runs/eval_base runs/eval_rl --labels base,rl

Flags win over the YAML config, which wins over the built-in defaults. With --config the model, data, prompt
and reward sections are reused, and the eval section gives n, k, temperature and max_new_tokens (its defaults
are the greedy single-sample eval used during training: pass --n / --temperature for pass@k). n > 1 at
temperature 0 (n identical greedy samples) is refused, unless --temperature 0 is given explicitly (then a warning).
Which problems: --data (all rows, or --limit), else data.eval_source of the config, else data.source.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {escape(' '.join(str(message).split()))}", soft_wrap=True)  # one line
    raise typer.Exit(code=code)


def parse_ks(text: str) -> list[int]:
    """ "1,2,4" -> [1, 2, 4] (sorted, unique, every k >= 1)."""
    try:
        ks = sorted({int(part) for part in text.replace(" ", "").split(",") if part})
    except ValueError:
        raise ValueError(f"--k must be comma-separated integers like 1,2,4,8, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise ValueError(f"--k needs integers >= 1, got {text!r}")
    return ks


def default_ks(n: int, extra: list[int] | None = None) -> list[int]:
    """Powers of two up to n, plus n itself and any ``extra`` budgets <= n."""
    ks = {1, n} | {2**i for i in range(n.bit_length()) if 2**i <= n} | {k for k in (extra or []) if 1 <= k <= n}
    return sorted(ks)


def model_fingerprint(path: str) -> str:
    """Hash of the names, sizes and modification times of the files of a local model folder (so a checkpoint
    rewritten in place is not mistaken for the one an earlier, killed eval sampled from)."""
    p = Path(os.path.expanduser(path))
    if not p.is_dir():
        return path
    items = sorted((f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in p.iterdir() if f.is_file())
    return hashlib.sha1(repr(items).encode()).hexdigest()[:16]


def eval_command(
    model: Optional[str] = typer.Option(None, "--model", help="model folder (or hub id); overrides model.path"),
    data: Optional[str] = typer.Option(
        None, "--data", help="problems: .jsonl/.parquet/.csv, HF datasets folder, reasoning_gym:<name>"),
    config: Optional[str] = typer.Option(
        None, "--config", help="YAML RunConfig whose model/data/prompt/reward/eval sections are reused"),
    output_dir: Optional[str] = typer.Option(
        None, "--output-dir", "-o", help="where results go (default <output_dir>/eval with --config, else runs/eval)"),
    n: Optional[int] = typer.Option(None, "--n", help="samples per problem (default eval.n with --config, else 16)"),
    k: Optional[str] = typer.Option(
        None, "--k", help="budgets for pass@k / maj@k, e.g. 1,2,4,8,16 (default powers of 2 up to n)"),
    temperature: Optional[float] = typer.Option(
        None, "--temperature", help="sampling temperature (default 1.0; eval.temperature with --config)"),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="nucleus sampling (default rollout.top_p)"),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="top-k sampling, 0 = off (default rollout.top_k)"),
    max_new_tokens: Optional[int] = typer.Option(
        None, "--max-new-tokens", help="default eval.max_new_tokens, else rollout.max_new_tokens"),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", help="completions per generate call (0 = 16 problems at a time)"),
    greedy: bool = typer.Option(
        True, "--greedy/--no-greedy", help="also draw one greedy sample per problem (greedy pass@1)"),
    limit: Optional[int] = typer.Option(None, "--limit", help="evaluate only the first N problems"),
    verifier: Optional[str] = typer.Option(
        None, "--verifier", help="verifier of file rows without their own (data.verifier)"),
    template: Optional[str] = typer.Option(
        None, "--template", help="prompt template, e.g. '{question}' (prompt.template)"),
    token_entropy: str = typer.Option(
        "sampled", "--token-entropy", help="sampled (surprisal of the sampled tokens) | forward (exact, slower)"),
    seed: int = typer.Option(0, "--seed", help="sampling seed"),
    save_completions: bool = typer.Option(
        False, "--save-completions", help="keep the completion texts in problems.jsonl"),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N"),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="auto | float32 | bfloat16 | float16"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="rich progress bar"),
    overrides: Optional[list[str]] = typer.Option(
        None, "--set", help="dotted config override, repeatable: --set reward.timeout_s=5"),
) -> None:
    """Sample n completions per problem, verify them, and report pass@k, maj@k, entropies (results.json,
    problems.jsonl, pass_at_k.png). A killed eval resumes where it stopped."""
    from rlvr.config import ConfigError, load_config

    try:
        cfg = load_config(config, list(overrides or []))
    except ConfigError as err:
        _fail(f"config: {err}")
    apply_flags(cfg, model=model, device=device, dtype=dtype, verifier=verifier, template=template)
    from_config = config is not None
    n = n if n is not None else (cfg.eval.n if from_config else 16)
    try:
        ks = parse_ks(k) if k else default_ks(n, cfg.eval.k if from_config else None)
    except ValueError as err:
        _fail(str(err))
    if n < 1:
        _fail(f"--n must be >= 1, got {n}")
    explicit_temperature = temperature is not None
    temperature = temperature if explicit_temperature else (cfg.eval.temperature if from_config else 1.0)
    if temperature == 0 and n > 1:
        if not explicit_temperature:
            _fail(f"n = {n} samples at temperature 0 (eval.temperature of {config}) are greedy: the {n} samples of "
                  f"a problem would be identical and pass@{n} = pass@1. Pass --temperature 1.0 (or another value "
                  "> 0) for pass@k, --n 1 for greedy pass@1, or --temperature 0 to sample greedily n times anyway")
        console.print(f"[bold yellow]WARNING:[/] --temperature 0 is greedy: the {n} samples of each problem are "
                      f"identical, so pass@k = maj@k = pass@1 for every k; use --temperature > 0 for pass@k")
    top_p = top_p if top_p is not None else cfg.rollout.top_p
    top_k = top_k if top_k is not None else cfg.rollout.top_k
    max_new_tokens = max_new_tokens or cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens
    batch_size = batch_size if batch_size is not None else cfg.rollout.batch_size
    if token_entropy not in ("sampled", "forward"):
        _fail(f"--token-entropy must be sampled or forward, got {token_entropy!r}")
    out = Path(output_dir or (os.path.join(cfg.output_dir, "eval") if from_config else "runs/eval"))

    examples, data_cfg, split = _load_problems(cfg, data, limit)
    from rlvr.eval.compare import compare_table  # noqa: F401  (import check before the long part)
    from rlvr.eval.results import run_eval
    from rlvr.rewards import RewardScorer

    engine = open_engine(cfg, examples, max_new_tokens)
    names = [c.name for c in cfg.reward.components]
    judge_key = "judge" if "judge" in names[1:] else None
    settings: dict[str, Any] = {
        "model": cfg.model.path,
        "model_fingerprint": model_fingerprint(cfg.model.path),
        "dtype": cfg.model.dtype,
        "data": dataclasses.asdict(data_cfg),
        "split": split,
        "prompt": dataclasses.asdict(cfg.prompt),
        "reward": dataclasses.asdict(cfg.reward),
        "n": n,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "max_new_tokens": max_new_tokens,
        "greedy": greedy,
        "seed": seed,
        "token_entropy": token_entropy,
    }
    memory = getattr(cfg.reward, "memory_limit_mb", None)
    scorer = RewardScorer(cfg.reward.components, cfg.reward.timeout_s, cfg.reward.num_workers,
                          **({} if memory is None else {"memory_limit_mb": memory}))
    try:
        result = run_eval(
            engine, scorer, examples, out, settings=settings, ks=ks, n=n, temperature=temperature, top_p=top_p,
            top_k=top_k, max_new_tokens=max_new_tokens, batch_size=batch_size, greedy=greedy,
            correct_threshold=cfg.reward.correct_threshold, judge_key=judge_key, token_entropy=token_entropy,
            save_completions=save_completions, seed=seed, progress=progress,
        )
    finally:
        scorer.close()
    console.print(summary_table(result.summary, title=f"{cfg.model.path} on {len(examples)} problems"))
    console.print(f"wrote {out / 'results.json'}, {out / 'problems.jsonl'}, {out / 'pass_at_k.png'}")


def apply_flags(cfg, *, model=None, device=None, dtype=None, verifier=None, engine=None, template=None) -> None:
    """The command's flags over the config's values (a flag left out keeps the config's); ends the command when
    no model is set either way."""
    for value, section, key in ((model, cfg.model, "path"), (device, cfg.model, "device"), (dtype, cfg.model, "dtype"),
                                (verifier, cfg.data, "verifier"), (engine, cfg.rollout, "engine")):
        if value:
            setattr(section, key, value)
    if template is not None:
        cfg.prompt.template = template
    if not cfg.model.path:
        _fail("no model: pass --model PATH (or model.path in --config)")


def open_engine(cfg, examples, max_new_tokens: int):
    """The model of ``cfg.model`` (LoRA off: a trained adapter folder loads as it is) in the configured rollout
    engine, with each example's prompt rendered by ``cfg.prompt``. A bad model folder or template ends the
    command with a one-line error. rollout.engine=vllm samples with vLLM (docs/rollout.md), given these weights."""
    from rlvr.config import ConfigError
    from rlvr.data import check_template, render_prompt
    from rlvr.rollout import make_engine
    from rlvr.trainer.policy import load_policy, load_tokenizer, resolve_device, resolve_dtype

    device = resolve_device(cfg.model.device)
    dtype = resolve_dtype(cfg.model.dtype, device)
    model_cfg = dataclasses.replace(cfg.model, lora=dataclasses.replace(cfg.model.lora, enabled=False),
                                    gradient_checkpointing=False)
    try:
        tokenizer = load_tokenizer(model_cfg)  # checks the model folder first: a damaged file is named in one line
    except (ConfigError, FileNotFoundError) as err:
        _fail(str(err))
    try:
        check_template(cfg.prompt, examples, tokenizer)
    except ValueError as err:
        _fail(f"prompt: {err}")
    for ex in examples:
        ex.prompt = render_prompt(ex, cfg.prompt, tokenizer)
    console.print(f"loading {cfg.model.path} on {device}")
    policy = load_policy(model_cfg, device, dtype)
    policy.eval()
    engine = make_engine(cfg, policy, tokenizer, device, dtype, [ex.prompt for ex in examples],
                         max_new_tokens=max_new_tokens)
    engine.sync_weights(policy)
    return engine


def _load_problems(cfg, data: str | None, limit: int | None):
    """The eval problems (--data, else data.eval_source, else data.source), the DataConfig used, and the split."""
    from rlvr.data import DataError, load_examples

    data_cfg = cfg.data
    use_eval = False
    if data:
        data_cfg = dataclasses.replace(cfg.data, source=data, sources=[])
    elif cfg.data.eval_source:
        use_eval = True
    elif cfg.data.source:
        console.print("[yellow]warning:[/] data.eval_source is empty: evaluating on data.source (training data)")
    else:
        _fail("no problems: pass --data SOURCE (or data.eval_source / data.source in --config)")
    try:
        report = load_examples(data_cfg, eval=use_eval)
    except (DataError, ValueError) as err:
        _fail(f"data: {err}")
    if report.bad_rows:
        console.print(f"[yellow]warning:[/] {report.summary()}")
    examples = report.examples[:limit] if limit else report.examples
    return examples, data_cfg, ("eval" if use_eval else "source")


def summary_table(summary: dict[str, float], title: str = "eval") -> Table:
    """A rich Table of an eval summary (accuracy metrics first)."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    order = ("num_problems", "n", "pass@", "maj@", "cot_pass@", "avg@", "greedy_pass@", "best_of_n", "mean_reward",
             "solved_frac")

    def rank(key: str) -> int:
        return next((i for i, p in enumerate(order) if key == p or (p.endswith("@") and key.startswith(p))), len(order))

    keys = sorted(summary, key=rank)
    for key in keys:
        value = summary[key]
        table.add_row(key, f"{int(value)}" if key in ("n", "num_problems") else f"{value:.4f}")
    return table


def compare_command(
    run_a: str = typer.Argument(..., help="eval output dir of the base model (A)"),
    run_b: str = typer.Argument(..., help="eval output dir of the trained model (B)"),
    output_dir: Optional[str] = typer.Option(
        None, "--output-dir", "-o", help="where compare.json / compare.png go (default <RUN_B>/compare_<name of RUN_A>)"),
    labels: Optional[str] = typer.Option(None, "--labels", help="two names for the plot and table, e.g. base,rl"),
) -> None:
    """Compare two `rlvr eval` runs: support preserved / shrunk / expanded / out-of-support, pass@k curves and
    their crossover, token and answer entropy change (compare.json, compare.png)."""
    from rlvr.eval.compare import compare_runs, compare_table

    names = None
    if labels:
        parts = [p.strip() for p in labels.split(",")]
        if len(parts) != 2 or not all(parts):
            _fail(f"--labels needs two comma-separated names, got {labels!r}")
        names = (parts[0], parts[1])
    out = Path(output_dir) if output_dir else Path(run_b) / f"compare_{Path(run_a).resolve().name}"
    try:
        report = compare_runs(run_a, run_b, out, labels=names)
    except FileNotFoundError as err:
        _fail(str(err))
    console.print(compare_table(report))
    if "warning" in report:
        console.print(f"[yellow]warning:[/] {report['warning']}")
    console.print(f"wrote {out / 'compare.json'}, {out / 'compare.png'}")
