"""Weighted reward components: resolve the configured names, then add up their scores.

    components = resolve_components([RewardComponentConfig("auto", 1.0), RewardComponentConfig("think_format", 0.1)])
    combine(components, [[r_auto_0, r_auto_1], [r_fmt_0, r_fmt_1]])   # -> [RewardResult, RewardResult]

A component name is one of
    "auto"                   each example's own verifier (``Example.verifier``)
    a registered verifier    "math", "mcqa", "think_format" ... (runs in the scorer's worker processes)
    a batch reward           "rlpr", "pairwise_judge" (rlvr.rewards.batch: the whole batch, grouped by prompt,
                             in the trainer process; rlpr needs the policy)
    "path/to/file.py:fn"     a user batch function (rlvr.rewards.user; runs in a worker process too, or in the
                             main process with ``params: {in_process: true}``)

Combined result of one completion: ``score = sum_k weight_k * score_k``; ``components[display_name_k] = score_k``
(unweighted); reason, extracted and details come from the FIRST component, and ``details["reasons"]`` holds
every component's reason when there are several (``details["component_details"]`` the other components'
non-empty details, by display name). Display names are the component names, with "#2", "#3" ...
appended when a name repeats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from rlvr.rewards.base import VERIFIERS, finite
from rlvr.rewards.batch import BATCH_REWARDS
from rlvr.rewards.user import is_user_spec, load_user_function
from rlvr.types import RewardResult


@dataclass
class Component:
    """A resolved reward component. kind: "auto" | "verifier" | "user" | "batch"."""

    display: str
    name: str
    kind: str
    weight: float
    params: dict[str, Any] = field(default_factory=dict)
    fn: Callable | None = None  # the user function for kind == "user"


def resolve_components(configs: list) -> list[Component]:
    """Check every name now (unknown verifier -> KeyError naming the closest; bad user file -> its error).

    configs: RewardComponentConfig-like objects (``name``, ``weight``, ``params``) or dicts with those keys (this
    module does not import rlvr.config, which imports the registries here to validate names)."""
    if not configs:
        raise ValueError("at least one reward component is needed")
    out: list[Component] = []
    seen: dict[str, int] = {}
    for cfg in configs:
        if isinstance(cfg, dict):
            unknown = set(cfg) - {"name", "weight", "params"}
            if unknown:
                raise ValueError(f"reward component: unknown keys {sorted(unknown)} (name, weight, params)")
            name, weight, params = cfg.get("name", "auto"), cfg.get("weight", 1.0), cfg.get("params") or {}
        else:
            name, weight, params = cfg.name, cfg.weight, cfg.params or {}
        value = finite(weight)
        if value is None:
            raise ValueError(f"reward component {name!r}: weight must be a finite number, got {weight!r}")
        if name == "auto":
            kind, fn = "auto", None
        elif is_user_spec(name):
            kind, fn = "user", load_user_function(name)
        elif name in BATCH_REWARDS:
            kind, fn = "batch", None
        else:
            VERIFIERS.get(name)  # raises with the closest name
            kind, fn = "verifier", None
        seen[name] = seen.get(name, 0) + 1
        display = name if seen[name] == 1 else f"{name}#{seen[name]}"
        out.append(Component(display, name, kind, value, dict(params), fn))
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
            later = {c.display: r[i].details for c, r in zip(components[1:], per_component[1:]) if r[i].details}
            if later:  # e.g. a rubric judge's per-criterion verdicts when it is not the first component
                details["component_details"] = later
        combined.append(RewardResult(score=finite(total) or 0.0, reason=first.reason, extracted=first.extracted,
                                     details=details, components=scores))
    return combined
