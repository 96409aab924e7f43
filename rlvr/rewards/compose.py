"""Weighted reward components: resolve the configured names, then add up their scores.

    components = resolve_components([RewardComponentConfig("auto", 1.0), RewardComponentConfig("think_format", 0.1)])
    combine(components, [[r_auto_0, r_auto_1], [r_fmt_0, r_fmt_1]])   # -> [RewardResult, RewardResult]

A component name is one of
    "auto"                   each example's own verifier (``Example.verifier``)
    a registered verifier    "math", "mcqa", "think_format" ... (runs in the scorer's worker processes)
    "path/to/file.py:fn"     a user batch function (rlvr.rewards.user; runs in a worker process too, or in the
                             main process with ``params: {in_process: true}``)

Combined result of one completion: ``score = sum_k weight_k * score_k``; ``components[display_name_k] = score_k``
(unweighted); reason, extracted and details come from the FIRST component, and ``details["reasons"]`` holds
every component's reason when there are several. Display names are the component names, with "#2", "#3" ...
appended when a name repeats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from rlvr.config import RewardComponentConfig
from rlvr.rewards.base import VERIFIERS, finite
from rlvr.rewards.user import is_user_spec, load_user_function
from rlvr.types import RewardResult


@dataclass
class Component:
    """A resolved reward component. kind: "auto" | "verifier" | "user"."""

    display: str
    name: str
    kind: str
    weight: float
    params: dict[str, Any] = field(default_factory=dict)
    fn: Callable | None = None  # the user function for kind == "user"


def resolve_components(configs: list[RewardComponentConfig]) -> list[Component]:
    """Check every name now (unknown verifier -> KeyError naming the closest; bad user file -> its error)."""
    if not configs:
        raise ValueError("at least one reward component is needed")
    out: list[Component] = []
    seen: dict[str, int] = {}
    for cfg in configs:
        if isinstance(cfg, dict):
            cfg = RewardComponentConfig(**cfg)
        weight = finite(cfg.weight)
        if weight is None:
            raise ValueError(f"reward component {cfg.name!r}: weight must be a finite number, got {cfg.weight!r}")
        if cfg.name == "auto":
            kind, fn = "auto", None
        elif is_user_spec(cfg.name):
            kind, fn = "user", load_user_function(cfg.name)
        else:
            VERIFIERS.get(cfg.name)  # raises with the closest name
            kind, fn = "verifier", None
        seen[cfg.name] = seen.get(cfg.name, 0) + 1
        display = cfg.name if seen[cfg.name] == 1 else f"{cfg.name}#{seen[cfg.name]}"
        out.append(Component(display, cfg.name, kind, weight, dict(cfg.params or {}), fn))
    return out


def combine(components: list[Component], per_component: list[list[RewardResult]]) -> list[RewardResult]:
    """``per_component[k][i]`` = result of component k on completion i -> one weighted RewardResult per i."""
    n = len(per_component[0]) if per_component else 0
    combined = []
    for i in range(n):
        first = per_component[0][i]
        total = 0.0
        scores: dict[str, float] = {}
        for comp, results in zip(components, per_component):
            score = finite(results[i].score)
            score = 0.0 if score is None else score
            scores[comp.display] = score
            total += comp.weight * score
        details = dict(first.details)
        if len(components) > 1:
            details["reasons"] = {c.display: r[i].reason for c, r in zip(components, per_component)}
        combined.append(RewardResult(score=finite(total) or 0.0, reason=first.reason, extracted=first.extracted,
                                     details=details, components=scores))
    return combined
