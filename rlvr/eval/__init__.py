"""Evaluation: unbiased pass@k, maj@k, avg@n, best-of-n, greedy pass@1, token and answer entropy, the Invisible
Leash support comparison of two runs, and plots. `rlvr eval` / `rlvr compare` live in rlvr/cli/eval.py.

    from rlvr.eval import evaluate, plot_curves
    result = evaluate(engine, scorer, examples, n=16, ks=[1, 4, 16], temperature=1.0, top_p=1.0,
                      max_new_tokens=512, batch_size=64, greedy=True)

See docs/evaluation.md for every metric's definition and paper.
"""

from rlvr.eval.compare import compare_runs, compare_table
from rlvr.eval.entropy import answer_entropy, entropy_from_logits, forward_token_entropy, sampled_token_surprisal
from rlvr.eval.majority import answer_classes, maj_at_k, normalize_answer
from rlvr.eval.passk import avg_at_n, best_of_n, pass_at_k, pass_at_k_curve
from rlvr.eval.results import load_run, run_eval, settings_hash
from rlvr.eval.runner import EvalResult, evaluate, problem_key, problem_metrics, summarize, verdict
from rlvr.eval.support import CATEGORIES, crossover_k, support_category, support_counts

__all__ = [
    "CATEGORIES",
    "EvalResult",
    "answer_classes",
    "answer_entropy",
    "avg_at_n",
    "best_of_n",
    "compare_runs",
    "compare_table",
    "crossover_k",
    "entropy_from_logits",
    "evaluate",
    "forward_token_entropy",
    "load_run",
    "maj_at_k",
    "normalize_answer",
    "pass_at_k",
    "pass_at_k_curve",
    "plot_compare",
    "plot_curves",
    "plot_pass_at_k",
    "problem_key",
    "problem_metrics",
    "run_eval",
    "sampled_token_surprisal",
    "settings_hash",
    "summarize",
    "support_category",
    "support_counts",
    "verdict",
]


def __getattr__(name: str):
    """The plotting helpers import matplotlib only when first used (the trainer imports rlvr.eval every run)."""
    if name in ("plot_compare", "plot_curves", "plot_pass_at_k"):
        from rlvr.eval import plots

        return getattr(plots, name)
    raise AttributeError(f"module 'rlvr.eval' has no attribute {name!r}")
