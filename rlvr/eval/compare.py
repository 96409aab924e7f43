"""`rlvr compare A B`: how run B (e.g. after RL) differs from run A (e.g. the base model) on the same problems.

    report = compare_runs("runs/eval_base", "runs/eval_rl", out_dir="runs/compare")
    report["support"]["counts"]["shrunk"], report["crossover_k"], report["delta"]["answer_entropy"]

Reports, for problems present in both runs (matched by problem key):
  * the Invisible Leash support categories at the largest budget (see support.py);
  * both pass@k curves (from each run's summary) and the k where they cross;
  * B - A for every shared summary metric, notably token entropy and answer entropy.
Writes compare.json and compare.png into ``out_dir``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlvr.eval.results import load_run
from rlvr.eval.runner import summarize
from rlvr.eval.support import CATEGORIES, crossover_k, support_counts

COMPARE_JSON = "compare.json"
COMPARE_PNG = "compare.png"


def compare_runs(
    run_a: str | Path, run_b: str | Path, out_dir: str | Path | None = None, *, labels: tuple[str, str] | None = None
) -> dict[str, Any]:
    """Compare two `rlvr eval` output dirs; write compare.json / compare.png into ``out_dir`` (if given)."""
    payload_a, problems_a = load_run(run_a)
    payload_b, problems_b = load_run(run_b)
    labels = labels or (Path(run_a).name or "A", Path(run_b).name or "B")
    by_a = {p["key"]: p for p in problems_a}
    by_b = {p["key"]: p for p in problems_b}
    support = support_counts({k: p["correct"] for k, p in by_a.items()}, {k: p["correct"] for k, p in by_b.items()})
    shared = [k for k in by_a if k in by_b]
    ks = sorted(set(payload_a.get("ks", [])) & set(payload_b.get("ks", [])))
    # summaries over the shared problems only, so both curves describe the same set
    sum_a = summarize([by_a[k] for k in shared], ks) if shared else {}
    sum_b = summarize([by_b[k] for k in shared], ks) if shared else {}
    curve_a = [sum_a.get(f"pass@{k}", 0.0) for k in ks]
    curve_b = [sum_b.get(f"pass@{k}", 0.0) for k in ks]
    cross = crossover_k(ks, curve_a, curve_b) if ks else None
    delta = {key: sum_b[key] - sum_a[key] for key in sum_a if key in sum_b and key not in ("n", "num_problems")}
    report: dict[str, Any] = {
        "labels": list(labels),
        "runs": [str(run_a), str(run_b)],
        "n": [int(payload_a.get("summary", {}).get("n", 0)), int(payload_b.get("summary", {}).get("n", 0))],
        "ks": ks,
        "support": {k: v for k, v in support.items() if k != "per_problem"},
        "per_problem": support["per_problem"],
        "pass_at_k": {labels[0]: dict(zip(map(str, ks), curve_a)), labels[1]: dict(zip(map(str, ks), curve_b))},
        "crossover_k": cross,
        "summary_a": sum_a,
        "summary_b": sum_b,
        "delta": delta,
    }
    if report["n"][0] != report["n"][1]:
        report["warning"] = (
            f"the runs drew different numbers of samples (n = {report['n'][0]} vs {report['n'][1]}): "
            "support categories at k = n are not comparable budgets"
        )
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / COMPARE_JSON).write_text(json.dumps(report, indent=2), encoding="utf-8")
        from rlvr.eval.plots import plot_compare

        plot_compare(sum_a, sum_b, ks, out / COMPARE_PNG, labels=labels, crossover=cross,
                     support=support["counts"])
    return report


def compare_table(report: dict[str, Any]):
    """A rich Table of the comparison: metrics side by side with their change, then the support counts."""
    from rich.table import Table

    a, b = report["labels"]
    table = Table(title=f"{a} -> {b} ({report['support']['num_shared']} shared problems)")
    table.add_column("metric")
    table.add_column(a, justify="right")
    table.add_column(b, justify="right")
    table.add_column("change", justify="right")
    sa, sb = report["summary_a"], report["summary_b"]
    for key in sa:
        if key in sb and key not in ("n", "num_problems"):
            table.add_row(key, f"{sa[key]:.4f}", f"{sb[key]:.4f}", f"{sb[key] - sa[key]:+.4f}")
    cross = report["crossover_k"]
    table.add_row("pass@k crossover k", "", "", "none" if cross is None else f"{cross:.3g}", end_section=True)
    counts, fracs = report["support"]["counts"], report["support"]["fractions"]
    for cat in CATEGORIES:
        table.add_row(f"support: {cat}", "", f"{counts[cat]}", f"{fracs[cat]:.1%}")
    return table
