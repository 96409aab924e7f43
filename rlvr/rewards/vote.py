"""Label-free rewards: agreement with a vote over the group's own answers (TTRL) or over several models' (RLCCF).

    reward:
      components:
        - {name: majority_vote, params: {extract: answer_tag, n_train: 32}}                  # TTRL
        - {name: collective_vote, params: {peers_field: peers, weighting: sample}}          # RLCCF

``majority_vote`` (TTRL, Zuo et al. 2025, "TTRL: Test-Time Reinforcement Learning", arXiv:2504.16084; PRIME-RL/
TTRL ttt_metrics.py): for each prompt the n completions of the group are the votes. Each one's answer is
extracted with the verifier's extractor (``extract``, rlvr.rewards.extract) and grouped by
`rlvr.eval.majority.normalize_answer`; the most common class is the pseudo-label y* (ties: the class seen first,
as ``Counter.most_common``); completion i scores ``verify(completion_i, y*)`` with the configured ``verifier``
(default exact_match): 1 when it agrees with the majority. ``n_train`` > 0: the loop trains on the first n_train
completions of each group only (TTRL samples 64 votes and trains on 32); the votes are all n.

``collective_vote`` (RLCCF, "Wisdom of the crowd: reinforcement learning from coevolutionary collective
feedback", arXiv:2508.12338; abstract only, no code found): K models each answer N times. Self-consistency
SC_k = max_a n_k(a) / N_k; the collective label y* = argmax_a sum_k SC_k * n_k(a) (``weighting: sample``, the
default) or argmax_a sum_k SC_k * 1[maj_k = a] (``weighting: model``, one vote per model). Model 0 is the
policy (its group); the other models' completions come with the row (``peers_field``: a row field holding a
list of completions per peer model, {"name": [..]} or [[..], ..], sampled offline with `rlvr generate`).
Deviation: RLCCF trains every model jointly; here the peers are fixed (their samples are the row's).

The true answer (when the row has one) never enters the reward; it is only compared with y* for the
``vote/label_accuracy`` metric (read from the first reward component's details: list the vote first). A group with no extractable answer scores 0 everywhere (logged).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from rlvr.eval.majority import normalize_answer
from rlvr.rewards.base import call_verifier
from rlvr.rewards.batch import BATCH_REWARDS, PolicyContext, ScoreBatch
from rlvr.rewards.extract import extract
from rlvr.types import RewardResult

log = logging.getLogger("rlvr.rewards")

VOTE_REWARDS = ("majority_vote", "collective_vote")
# components that never read the reference answer: with only these, rows need no answer field
LABEL_FREE = (*VOTE_REWARDS, "think_format", "overlong_soft", "repetition_penalty")


def majority_label(answers: list[str | None]) -> tuple[str | None, float]:
    """(the normalised most common answer or None, its share of all len(answers) votes). Abstentions (None,
    or nothing left after normalising) count in the denominator, never as a class; ties go to the first seen.

    >>> majority_label(["3", None, "4", "4", "3"])
    ('3', 0.4)
    """
    keys = [normalize_answer(a) for a in answers]
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None, 0.0
    label, count = counts.most_common(1)[0]
    return label, count / len(answers)


def collective_label(per_model: list[list[str | None]], weighting: str = "sample") -> tuple[str | None, list[float]]:
    """RLCCF's collective label over K models' answers (each a list of N_k answers, None = no answer).

    SC_k = max_a n_k(a) / N_k;  sample: y* = argmax_a sum_k SC_k n_k(a);  model: y* = argmax_a sum_k SC_k 1[maj_k = a].
    Ties: the class seen first (model 0's answers first, in order). Returns (y* normalised or None, [SC_k]).

    >>> collective_label([["1", "1", "2", None], ["2", "2", "2", "2"]])
    ('2', [0.5, 1.0])
    """
    if weighting not in ("sample", "model"):
        raise ValueError(f"weighting must be sample or model, got {weighting!r}")
    score: dict[str, float] = {}
    consistency = []
    for answers in per_model:
        counts = Counter(k for k in (normalize_answer(a) for a in answers) if k is not None)
        sc = max(counts.values()) / len(answers) if counts else 0.0
        consistency.append(sc)
        if weighting == "model" and counts:
            counts = Counter({counts.most_common(1)[0][0]: 1})
        for key, n in counts.items():
            score[key] = score.get(key, 0.0) + sc * n
    if not score:
        return None, consistency
    best = max(score.values())
    return next(k for k, v in score.items() if v == best), consistency


def _extracted(texts: list[str], mode: str) -> list[str | None]:
    return [extract(t if isinstance(t, str) else str(t), mode)[0] for t in texts]


def _label_raw(label: str, answers: list[str | None]) -> str:
    """The first extracted answer of the label's class, as written (the verifier normalises it itself)."""
    return next((a for a in answers if normalize_answer(a) == label), label)


def _score_group(batch: ScoreBatch, idx: list[int], answers: list[str | None], label: str | None, ratio: float,
                 verifier: str, params: dict, name: str, extra: dict) -> list[RewardResult]:
    """Completion i of the group: verify(completion_i, y*); details carry y*, the majority ratio and whether y*
    is the true answer (None without one)."""
    ex = batch.examples[idx[0]]
    if label is None:
        log.warning("%s: none of the %d completions of %r has an extractable answer; the group scores 0", name,
                    len(idx), (ex.question or "")[:60])
        return [RewardResult(0.0, reason="vote: no extractable answer in the group",
                             details={"vote_label": None, "majority_ratio": 0.0, "label_correct": None, **extra})
                for _ in idx]
    raw = _label_raw(label, answers)
    truth = None
    if ex.answer is not None:  # the metric only: the true answer never enters the reward
        truth = call_verifier(verifier, raw, ex.answer, batch.metadata[idx[0]], {**params, "extract": "none"}).score > 0
    details = {"vote_label": raw, "majority_ratio": ratio, "label_correct": truth, **extra}
    out = []
    for i, answer in zip(idx, answers):
        res = call_verifier(verifier, batch.completions[i], raw, batch.metadata[i], params)
        out.append(RewardResult(res.score, reason=f"vote: {'agrees with' if res.score > 0 else 'differs from'} "
                                f"the label {raw!r}", extracted=answer, details=dict(details)))
    return out


@BATCH_REWARDS.register("majority_vote")
def majority_vote(batch: ScoreBatch, policy: PolicyContext | None, *, verifier: str = "exact_match",
                  extract: str = "auto", n_train: int = 0, **params: Any) -> list[RewardResult]:
    """TTRL: 1 when a completion agrees with its group's majority answer (arXiv:2504.16084)."""
    params = {**params, "extract": extract}
    out: list[RewardResult] = [RewardResult(0.0)] * len(batch.completions)
    for idx in batch.groups:
        answers = _extracted([batch.completions[i] for i in idx], extract)
        label, ratio = majority_label(answers)
        for i, res in zip(idx, _score_group(batch, idx, answers, label, ratio, verifier, params, "majority_vote",
                                            {})):
            out[i] = res
    return out


def peer_answers(value: Any) -> list[list[str]]:
    """A row's peers field -> one list of completions per peer model ({"name": [..]}, [[..], ..] or [..])."""
    if value is None:
        return []
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, list) for v in value):
        raise ValueError(f"expected a list of completions per peer model, got {type(value).__name__}")
    return [[str(c) for c in v] for v in value if v]


@BATCH_REWARDS.register("collective_vote")
def collective_vote(batch: ScoreBatch, policy: PolicyContext | None, *, peers_field: str = "peers",
                    weighting: str = "sample", verifier: str = "exact_match", extract: str = "auto",
                    **params: Any) -> list[RewardResult]:
    """RLCCF: agreement with the self-consistency-weighted vote of the policy and its peer models."""
    params = {**params, "extract": extract}
    out: list[RewardResult] = [RewardResult(0.0)] * len(batch.completions)
    for idx in batch.groups:
        answers = _extracted([batch.completions[i] for i in idx], extract)
        try:
            peers = [_extracted(p, extract) for p in peer_answers(batch.examples[idx[0]].metadata.get(peers_field))]
        except ValueError as err:
            log.warning("collective_vote: row field %r: %s; voting with the policy alone", peers_field, err)
            peers = []
        label, consistency = collective_label([answers, *peers], weighting)
        ratio = majority_label(answers)[1]
        extra = {"self_consistency": consistency, "peers": len(peers)}
        for i, res in zip(idx, _score_group(batch, idx, answers, label, ratio, verifier, params, "collective_vote",
                                            extra)):
            out[i] = res
    return out


def train_votes(components) -> int:
    """majority_vote's ``n_train`` (the completions of each group trained on; 0 = all) from the reward components."""
    for c in components:
        if c.name in VOTE_REWARDS and int((c.params or {}).get("n_train", 0) or 0):
            return int(c.params["n_train"])
    return 0


def label_free(components) -> bool:
    """Whether no component reads the reference answer (then data rows need no answer field)."""
    return bool(components) and all(c.name in LABEL_FREE for c in components)


def vote_metrics(results: list[RewardResult]) -> dict[str, float]:
    """vote/label_accuracy (y* against the true answer, over completions whose row has one) and
    vote/majority_ratio (the majority class's share of the votes), from the vote rewards' details."""
    voted = [r.details for r in results if r.details and "majority_ratio" in r.details]
    if not voted:
        return {}
    out = {"vote/majority_ratio": sum(d["majority_ratio"] for d in voted) / len(voted),
           "vote/no_label_frac": sum(d["vote_label"] is None for d in voted) / len(voted)}
    known = [d["label_correct"] for d in voted if d["label_correct"] is not None]
    if known:
        out["vote/label_accuracy"] = sum(known) / len(known)
    return out
