"""`rlvr verify`: score a JSONL file of completions with one reward and show why each got its score.

    rlvr verify samples.jsonl --reward math --param extract=boxed
    rlvr verify samples.jsonl --reward mcqa --json | jq .score
    rlvr verify samples.jsonl --reward my_rewards.py:exact --limit 20

Each line: {"completion": ..., "answer": ..., <metadata fields>}; ``verifier`` picks the verifier of --reward
auto. rlvr/cli/__init__.py registers ``verify_command`` as the ``verify`` command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def _cut(text: object, width: int = 60) -> str:
    s = "" if text is None else str(text).replace("\n", "\\n")
    return s if len(s) <= width else s[: width - 1] + "…"


def verify_command(
    file: Path = typer.Argument(..., help="JSONL file: one {completion, answer, ...metadata} object per line"),
    reward: str = typer.Option("auto", "--reward", "-r", help="verifier name, 'auto' (each row's verifier) or file.py:function"),
    param: Optional[list[str]] = typer.Option(None, "--param", "-p", help="verifier param key=value (repeatable)"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object per line (score, extracted, reason)"),
    limit: int = typer.Option(0, "--limit", "-n", help="score only the first N rows (0 = all)"),
    timeout: float = typer.Option(10.0, "--timeout", help="seconds per item"),
    workers: int = typer.Option(0, "--workers", help="verifier processes (0 = number of cores)"),
    threshold: float = typer.Option(0.5, "--threshold", help="a score >= this counts as correct in the summary"),
) -> None:
    """Score completions in a JSONL file with a reward and print each score with its reason."""
    from rlvr.rewards.verify import parse_params, read_rows, summarize, verify_rows

    err = Console(stderr=True)
    try:
        params = parse_params(param)
        rows = read_rows(file, limit=limit)
        results = verify_rows(rows, reward, params, timeout_s=timeout, num_workers=workers)
    except (FileNotFoundError, ValueError, KeyError, AttributeError, ImportError, SyntaxError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        err.print(f"[bold red]error:[/] {message}", soft_wrap=True)
        raise typer.Exit(code=2) from None
    if json_out:
        for r in results:
            typer.echo(json.dumps({"score": r.score, "extracted": r.extracted, "reason": r.reason}))
        return
    table = Table(title=f"{file} — reward {reward}")
    for col, kw in (("row", {"justify": "right"}), ("extracted", {}), ("score", {"justify": "right"}), ("reason", {})):
        table.add_column(col, **kw)
    for i, r in enumerate(results):
        table.add_row(str(i), _cut(r.extracted, 40), f"{r.score:.3f}", _cut(r.reason, 60))
    console.print(table)
    s = summarize(results, threshold)
    console.print(f"count {s['count']}   mean score {s['mean_score']:.4f}   correct (score >= {threshold:g}) "
                  f"{s['frac_correct']:.1%}")
    reasons = Table(title="reasons")
    reasons.add_column("reason")
    reasons.add_column("count", justify="right")
    for reason, n in s["reasons"].items():
        reasons.add_row(_cut(reason, 80), str(n))
    console.print(reasons)
