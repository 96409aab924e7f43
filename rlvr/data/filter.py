"""Offline difficulty filtering (DeepMath / DRIVE style): keep the problems a model solves sometimes, not always
and not never.

    keep = parse_keep("0.1<=pass<=0.9")      # KeepRange(low=0.1, high=0.9, low_inclusive=True, ...)
    rows = filtered_rows(examples, records, keep, cfg)   # the source rows, each with its measured pass rate
    text = histogram_text(rates, n)                       # one line per pass-rate value

``rlvr data filter`` (rlvr/cli/data.py) samples n completions per problem with the eval machinery
(rlvr.eval.results.run_eval: resumable), then calls these. A row comes out as the source row it was read from
(question and answer under the data section's field names, every other field of the row, its verifier) plus
``pass_rate`` (correct / n) and ``pass_n`` (n), so the output file trains as it is (``data.source: out.jsonl``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from rlvr.config import DataConfig
from rlvr.types import Example

_NUMBER = r"([0-9]*\.?[0-9]+)"
_RANGE = re.compile(rf"^{_NUMBER}(<=|<)pass(<=|<){_NUMBER}$")
_ONE_SIDE = re.compile(rf"^pass(<=|<|>=|>){_NUMBER}$")


@dataclass(frozen=True)
class KeepRange:
    """low (<= or <) pass rate (<= or <) high."""

    low: float = 0.0
    high: float = 1.0
    low_inclusive: bool = True
    high_inclusive: bool = True

    def __call__(self, rate: float) -> bool:
        above = rate >= self.low if self.low_inclusive else rate > self.low
        below = rate <= self.high if self.high_inclusive else rate < self.high
        return above and below

    def __str__(self) -> str:
        return f"{self.low:g}{'<=' if self.low_inclusive else '<'}pass{'<=' if self.high_inclusive else '<'}{self.high:g}"


def parse_keep(text: str) -> KeepRange:
    """ "0.1<=pass<=0.9", "0<pass<1", "pass>=0.2", "pass<0.5" (spaces ignored) -> KeepRange; ValueError otherwise."""
    compact = text.replace(" ", "")
    m = _RANGE.match(compact)
    if m:
        keep = KeepRange(float(m.group(1)), float(m.group(4)), m.group(2) == "<=", m.group(3) == "<=")
    else:
        m = _ONE_SIDE.match(compact)
        if not m:
            raise ValueError(f"--keep {text!r}: expected a range such as '0.1<=pass<=0.9', '0<pass<1' or 'pass>=0.2'")
        op, value = m.group(1), float(m.group(2))
        keep = KeepRange(low=value, low_inclusive=op == ">=") if op.startswith(">") else \
            KeepRange(high=value, high_inclusive=op == "<=")
    if not 0 <= keep.low <= keep.high <= 1:
        raise ValueError(f"--keep {text!r}: the bounds must satisfy 0 <= low <= high <= 1")
    return keep


def source_row(example: Example, cfg: DataConfig) -> dict[str, Any]:
    """The row an example was read from: question / answer under its source's field names (its data.sources
    entry's, in a mixture), its other fields, verifier."""
    if example.origin:
        from rlvr.config import source_name
        from rlvr.data.sources import source_data_config

        cfg = next((source_data_config(cfg, e) for e in cfg.sources if source_name(e) == example.origin), cfg)
    row = {cfg.question_field: example.question, cfg.answer_field: example.answer}
    row.update(example.metadata)
    row["verifier"] = example.verifier
    return row


def filtered_rows(examples: Sequence[Example], records: dict[str, dict[str, Any]], keep: KeepRange,
                  cfg: DataConfig) -> tuple[list[dict[str, Any]], list[float]]:
    """(kept rows with ``pass_rate`` and ``pass_n``, every problem's pass rate in order). ``records``: eval problem
    key -> record (rlvr.eval.runner: "correct" of "n" samples)."""
    from rlvr.eval.runner import problem_key

    kept, rates = [], []
    for ex in examples:
        rec = records[problem_key(ex)]
        rate = rec["correct"] / rec["n"]
        rates.append(rate)
        if keep(rate):
            kept.append({**source_row(ex, cfg), "pass_rate": rate, "pass_n": rec["n"]})
    return kept, rates


def histogram(rates: Sequence[float], n: int) -> list[tuple[float, int]]:
    """(pass rate k/n, problems with it) for k = 0..n."""
    counts = [0] * (n + 1)
    for rate in rates:
        counts[round(rate * n)] += 1
    return [(k / n, c) for k, c in enumerate(counts)]


def histogram_text(rates: Sequence[float], n: int, keep: KeepRange | None = None, width: int = 40) -> str:
    """One line per pass-rate value: the rate, the count, a bar, and '*' where ``keep`` keeps it."""
    bins = histogram(rates, n)
    top = max((c for _, c in bins), default=0) or 1
    lines = [f"pass rate over n={n} samples ({len(rates)} problems)" + (f"; kept: {keep}" if keep else "")]
    for rate, count in bins:
        mark = "*" if keep is not None and keep(rate) else " "
        lines.append(f"{mark} {rate:5.3f} {count:7d} {'#' * round(width * count / top)}")
    return "\n".join(lines)


def plot_histogram(rates: Sequence[float], n: int, keep: KeepRange, path: str | Path, title: str = "") -> Path:
    """A bar chart of the pass-rate histogram, the kept bars coloured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = histogram(rates, n)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([r for r, _ in bins], [c for _, c in bins], width=0.8 / n,
           color=["tab:blue" if keep(r) else "lightgray" for r, _ in bins])
    ax.set_xlabel(f"pass rate ({n} samples per problem)")
    ax.set_ylabel("problems")
    ax.set_title(title or f"kept {sum(keep(r) for r in rates)} of {len(rates)} ({keep})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
