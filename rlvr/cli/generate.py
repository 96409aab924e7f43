"""`rlvr generate`: batch generation with a run's prompt template, engine and sampling settings; answer selection
(first, best-of-n by a reward, majority, reward-weighted majority); accuracy against n; RAST decoding.

    rlvr generate --model runs/demo/final --data data/test.jsonl -n 8 -o runs/gen/out.jsonl
    rlvr generate --config examples/demo.yaml --data heldout.jsonl -n 16 -o out.jsonl \\
        --select majority --select best_of_n:exact_match --score
    rlvr generate --model LARGE --data heldout.jsonl -n 1 --temperature 0 -o rast.jsonl \\
        --rast base_small=SMALL rl_small=SMALL_RL alpha=1.0 --score

Settings come from the flags, else from --config (model / data / prompt / rollout / reward sections: the training
run's template, chat template, engine, temperature, top-p, top-k, max_new_tokens, n), else the defaults. Which
problems: --data (all rows, or --limit), else data.eval_source of the config, else data.source. A killed run
resumes where it stopped (rlvr.eval.generate). docs/decoding.md has the details.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from rlvr.cli.eval import _fail, apply_flags, model_fingerprint

console = Console()
RAST_KEYS = ("base_small", "rl_small", "alpha")


def parse_rast(values: list[str]) -> dict[str, Any] | None:
    """["base_small=A", "rl_small=B", "alpha=0.5"] (also "k=v k=v" in one value) -> {"base_small", "rl_small",
    "alpha"}; None when empty. ValueError when a key is unknown or missing, or alpha is not a number."""
    pairs = [part for value in values for part in value.replace(",", " ").split()]
    if not pairs:
        return None
    spec: dict[str, Any] = {"alpha": 1.0}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in RAST_KEYS or not value:
            close = difflib.get_close_matches(key, RAST_KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"--rast: {pair!r} is not one of base_small=PATH rl_small=PATH alpha=FLOAT{hint}")
        spec[key] = value
    missing = [k for k in ("base_small", "rl_small") if k not in spec]
    if missing:
        raise ValueError(f"--rast needs {' and '.join(f'{k}=PATH' for k in missing)} (base_small=PATH rl_small=PATH "
                         "[alpha=1.0])")
    try:
        spec["alpha"] = float(spec["alpha"])
    except ValueError:
        raise ValueError(f"--rast: alpha must be a number, got {spec['alpha']!r}") from None
    return spec


def parse_rules(values: list[str], score: bool):
    """The --select rules (repeatable, or comma-separated); with --score, first and majority are always reported."""
    from rlvr.eval.select import parse_rule

    rules = [parse_rule(part) for value in values for part in value.split(",") if part.strip()]
    if score:
        rules = [r for r in (parse_rule("first"), parse_rule("majority")) if r not in rules] + rules
    return list(dict.fromkeys(rules))


def _reward_component(name: str, cfg):
    """The reward a rule ranks by: a component of the config's reward section with that name (its params), else
    a registered verifier / judge / reward-model reward, "auto" or file.py:function; weight 1 (its own score)."""
    from rlvr.config import RewardComponentConfig
    from rlvr.rewards import VERIFIERS
    from rlvr.rewards.user import is_user_spec

    for comp in cfg.reward.components:
        if comp.name == name:
            return RewardComponentConfig(name=name, weight=1.0, params=dict(comp.params or {}))
    if name == "auto" or is_user_spec(name) or name in VERIFIERS.names():
        return RewardComponentConfig(name=name)
    close = difflib.get_close_matches(name, list(VERIFIERS.names()), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"--select: unknown reward {name!r} (a verifier from `rlvr list`, a reward component of the "
                     f"config, auto, or file.py:function){hint}")


def _problems(cfg, data: str | None, limit: int | None, answers: bool):
    """(examples, DataConfig used): --data, else data.eval_source, else data.source. ``answers`` False (no
    --score) keeps rows without an answer: plain prompts to generate for."""
    from rlvr.data import DataError, load_examples

    if not (data or cfg.data.eval_source or cfg.data.source):
        _fail("no problems: pass --data SOURCE (or data.eval_source / data.source in --config)")
    data_cfg = dataclasses.replace(cfg.data, source=data, sources=[]) if data else cfg.data
    try:
        report = load_examples(data_cfg, eval=not data and bool(cfg.data.eval_source), answer_required=answers)
    except (DataError, ValueError) as err:
        _fail(f"data: {err}")
    if report.bad_rows:
        console.print(f"[yellow]warning:[/] {report.summary()}")
    return (report.examples[:limit] if limit else report.examples), data_cfg


def generate_command(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(None, "--model", help="model folder (or hub id); overrides model.path"),
    data: Optional[str] = typer.Option(
        None, "--data", help="problems: .jsonl/.parquet/.csv, HF datasets folder, reasoning_gym:<name>"),
    config: Optional[str] = typer.Option(
        None, "--config", help="YAML RunConfig whose model/data/prompt/rollout/reward sections are reused"),
    n: Optional[int] = typer.Option(None, "-n", "--n", help="completions per problem (default rollout.n)"),
    output: str = typer.Option("runs/generate/out.jsonl", "-o", "--output", help="the JSONL file of rows"),
    temperature: Optional[float] = typer.Option(
        None, "--temperature", help="sampling temperature, 0 = greedy (default rollout.temperature)"),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="nucleus sampling (default rollout.top_p)"),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="top-k sampling, 0 = off (default rollout.top_k)"),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", help="default rollout.max_new_tokens"),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", help="completions per generate call (default rollout.batch_size; 0 = 16 problems)"),
    limit: Optional[int] = typer.Option(None, "--limit", help="only the first N problems"),
    template: Optional[str] = typer.Option(None, "--template", help="prompt template (prompt.template)"),
    verifier: Optional[str] = typer.Option(None, "--verifier", help="verifier of rows without their own"),
    engine_name: Optional[str] = typer.Option(None, "--engine", help="hf | vllm (default rollout.engine)"),
    select: Optional[list[str]] = typer.Option(
        None, "--select", help="first | best_of_n:REWARD | majority | weighted_majority:REWARD (repeatable)"),
    score: bool = typer.Option(
        False, "--score/--no-score", help="accuracy of each rule against n, from the answer field (table + plot)"),
    rast: Optional[list[str]] = typer.Option(
        None, "--rast", help="RAST decoding: --rast base_small=PATH rl_small=PATH [alpha=1.0]"),
    seed: int = typer.Option(0, "--seed", help="sampling seed (each problem samples with its own seed from it)"),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N"),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="auto | float32 | bfloat16 | float16"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="rich progress bar"),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="dotted config override, repeatable"),
) -> None:
    """Generate n completions per problem into a resumable JSONL file; optionally pick one answer per problem
    (--select), score the rules against n (--score), or decode with RAST (--rast)."""
    from rlvr.config import ConfigError, load_config

    if ctx.args and not rast:
        _fail(f"unexpected arguments {' '.join(ctx.args)} (key=value pairs belong to --rast)")
    try:
        cfg = load_config(config, list(overrides or []))
        rast_spec = parse_rast(list(rast or []) + list(ctx.args))
        rules = parse_rules(list(select or []), score)
    except (ConfigError, ValueError) as err:
        _fail(str(err))
    apply_flags(cfg, model=model, device=device, dtype=dtype, verifier=verifier, engine=engine_name, template=template)
    if cfg.rollout.engine not in ("hf", "vllm"):
        _fail(f"--engine must be hf or vllm, got {cfg.rollout.engine!r}")
    if rast_spec and cfg.rollout.engine != "hf":
        _fail("--rast decodes with the hf engine (three models per token in rlvr's decode loop); drop --engine vllm")
    if rast_spec and (cfg.rollout.hf.compile or cfg.rollout.hf.decode != "loop"):
        console.print("[yellow]warning:[/] --rast decodes eagerly in rlvr's decode loop: rollout.hf.compile / "
                      "rollout.hf.decode are ignored")
    n = n if n is not None else cfg.rollout.n
    temperature = temperature if temperature is not None else cfg.rollout.temperature
    top_p = top_p if top_p is not None else cfg.rollout.top_p
    top_k = top_k if top_k is not None else cfg.rollout.top_k
    max_new_tokens = max_new_tokens or cfg.rollout.max_new_tokens
    batch_size = batch_size if batch_size is not None else cfg.rollout.batch_size
    if n < 1:
        _fail(f"-n must be >= 1, got {n}")
    if temperature == 0 and n > 1:
        console.print(f"[bold yellow]WARNING:[/] temperature 0 is greedy: the {n} completions of each problem are "
                      "identical; pass --temperature > 0 to sample")
    try:
        components = {rule.reward: _reward_component(rule.reward, cfg) for rule in rules if rule.reward}
    except ValueError as err:
        _fail(str(err))

    examples, data_cfg = _problems(cfg, data, limit, answers=score)
    if not examples:
        _fail("no problems to generate for")
    from rlvr.data import check_template, render_prompt
    from rlvr.eval.generate import generate_rows, selection_curves, write_rows
    from rlvr.trainer.policy import load_policy, load_tokenizer, resolve_device, resolve_dtype

    torch_device = resolve_device(cfg.model.device)
    torch_dtype = resolve_dtype(cfg.model.dtype, torch_device)
    model_cfg = dataclasses.replace(cfg.model, lora=dataclasses.replace(cfg.model.lora, enabled=False),
                                    gradient_checkpointing=False)
    try:
        tokenizer = load_tokenizer(model_cfg)
        check_template(cfg.prompt, examples, tokenizer)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        _fail(str(err))
    for ex in examples:
        ex.prompt = render_prompt(ex, cfg.prompt, tokenizer)
    console.print(f"loading {cfg.model.path} on {torch_device}")
    policy = load_policy(model_cfg, torch_device, torch_dtype)
    policy.eval()
    settings: dict[str, Any] = {
        "model": cfg.model.path, "model_fingerprint": model_fingerprint(cfg.model.path), "dtype": cfg.model.dtype,
        "data": dataclasses.asdict(data_cfg), "prompt": dataclasses.asdict(cfg.prompt), "n": n,
        "temperature": temperature, "top_p": top_p, "top_k": top_k, "max_new_tokens": max_new_tokens, "seed": seed,
        "engine": cfg.rollout.engine, "decode": cfg.rollout.hf.decode if cfg.rollout.engine == "hf" else None,
    }
    if rast_spec:
        engine = _rast_engine(rast_spec, cfg, model_cfg, policy, tokenizer, torch_device, torch_dtype)
        settings["decode"] = "loop"
        settings["rast"] = {**rast_spec, **{f"{k}_fingerprint": model_fingerprint(rast_spec[k])
                                            for k in ("base_small", "rl_small")}}
    else:
        from rlvr.rollout import make_engine

        engine = make_engine(cfg, policy, tokenizer, torch_device, torch_dtype, [ex.prompt for ex in examples],
                             max_new_tokens=max_new_tokens)
        engine.sync_weights(policy)
    if not getattr(engine, "split_invariant", False):  # chunking changes the samples: part of what must match
        settings["batch_size"] = batch_size
    out = Path(output)
    try:
        rows = generate_rows(engine, examples, out, settings=settings, n=n, temperature=temperature, top_p=top_p,
                             top_k=top_k, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed,
                             progress=progress)
    finally:
        engine.close()
    if rules:
        _score(rows, examples, rules, components, cfg, score)
    write_rows(out, rows)
    console.print(f"wrote {len(rows)} rows x {n} completions to {out}")
    if score:
        curves = selection_curves(rows, rules)
        _report(curves, rows, settings, out)


def _rast_engine(spec, cfg, model_cfg, large, tokenizer, device, dtype):
    """The RAST engine over --model and the two small models (vocabulary checked first)."""
    from rlvr.rollout.rast import RASTRolloutEngine, VocabularyMismatch, shared_vocab_size
    from rlvr.trainer.policy import load_policy, load_tokenizer

    small_cfgs = {k: dataclasses.replace(model_cfg, path=spec[k]) for k in ("base_small", "rl_small")}
    try:
        tokenizers = {"large": tokenizer, **{k: load_tokenizer(c) for k, c in small_cfgs.items()}}
    except (FileNotFoundError, ValueError) as err:
        _fail(f"--rast: {err}")
    console.print(f"RAST: {spec['base_small']} -> {spec['rl_small']} delta x {spec['alpha']} on {cfg.model.path}")
    small = {k: load_policy(c, device, dtype).eval() for k, c in small_cfgs.items()}
    try:
        vocab = shared_vocab_size(tokenizers, {"large": large, **small})
        return RASTRolloutEngine(large, small["base_small"], small["rl_small"], tokenizer, device, vocab_size=vocab,
                                 alpha=spec["alpha"], add_special_tokens=not cfg.prompt.chat_template,
                                 cache=cfg.rollout.hf.cache)
    except VocabularyMismatch as err:
        _fail(str(err))


def _score(rows, examples, rules, components, cfg, with_reference: bool) -> None:
    """The answer verifier (cfg.reward's first component, as `rlvr eval`) and each rule's reward, then the picks."""
    from rlvr.eval.generate import score_rows, select_rows
    from rlvr.rewards import RewardScorer

    memory = {"memory_limit_mb": cfg.reward.memory_limit_mb}
    scorers = {"answer": RewardScorer(cfg.reward.components[:1], cfg.reward.timeout_s, cfg.reward.num_workers,
                                      **memory)}
    scorers.update({name: RewardScorer([comp], cfg.reward.timeout_s, cfg.reward.num_workers, **memory)
                    for name, comp in components.items()})
    try:
        answer = scorers.pop("answer")
        score_rows(rows, examples, answer, scorers, correct_threshold=cfg.reward.correct_threshold,
                   reference=with_reference)
    finally:
        answer.close()
        for s in scorers.values():
            s.close()
    select_rows(rows, rules)


def score_table(curves: dict[str, dict[int, float]], title: str) -> Table:
    """Rules as rows, n = 1, 2, 4, ... as columns."""
    ks = sorted({k for curve in curves.values() for k in curve})
    table = Table(title=title)
    table.add_column("rule")
    for k in ks:
        table.add_column(f"n={k}", justify="right")
    for name, curve in curves.items():
        table.add_row(name, *(f"{100 * curve[k]:.1f}%" if k in curve else "" for k in ks))
    return table


def _report(curves, rows, settings, out: Path) -> None:
    """The score table, <out>.scores.json and <out>.scores.png."""
    from rlvr.eval.plots import plot_selection

    n = min(len(row["completions"]) for row in rows)
    stem = out.with_suffix("")
    payload = {"num_problems": len(rows), "n": n, "curves": {k: {str(j): v for j, v in c.items()}
                                                                for k, c in curves.items()},
               "settings": settings}
    json_path = stem.with_name(stem.name + ".scores.json")
    json_path.write_text(json.dumps(payload, indent=2, default=str))
    png = plot_selection(curves, stem.with_name(stem.name + ".scores.png"),
                         title=f"{Path(str(settings['model'])).name}: {len(rows)} problems")
    console.print(score_table(curves, f"accuracy against n ({len(rows)} problems)"))
    console.print(f"wrote {json_path}, {png}")
