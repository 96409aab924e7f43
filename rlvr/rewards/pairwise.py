"""`pairwise_judge`: a judge model compares two completions of the same prompt (Writing-Zero's pairwise generative
reward model; Jia et al. 2025, "Writing-Zero", arXiv:2506.00103), for the ``brpo`` advantage.

    reward:
      components:
        - name: pairwise_judge
          params: {base_url: "http://127.0.0.1:8000/v1", model: judge, both_orders: true, concurrency: 8}
      timeout_s: 60          # each comparison, its retries and backoff included
    algorithm: writing_zero  # advantage brpo

A batch reward (rlvr.rewards.batch): it sees each prompt's whole group. Per group of G completions it picks ONE
reference completion (Bootstrapped Relative Policy Optimization's temporary reference), uniformly at random from
a seed (the prompt's sampling seed, ``metadata["sample_seed"]``, mixed with ``seed``; else a hash of the prompt),
so a resumed run picks the same one, and asks the judge to compare every other completion with it:

    reward_i = +1   the judge prefers completion i to the reference
               -1   it prefers the reference
                0   a tie, the reference itself, a group of one, or a failed comparison (reason kept)

``both_orders: true`` (default) asks twice, with i as "Response A" then as "Response B", and adds the two
outcomes (each +1 / -1 / 0 from i's side), so a judge that always prefers the first position gives 0:
reward_i = sign(o_AB + o_BA). A comparison whose one order fails uses the other; both failing scores 0.

The judge's reply is read by ``parser``:
    verdict   the last ``[[A]]`` / ``[[B]]`` / ``[[C]]`` or ``[[tie]]``, else "verdict/winner/better: A|B|tie",
              else a reply that is just "A", "B" or "tie"
    scores    "Score A: x" and "Score B: y" (a score pair, as Writing-Zero's GenRM); |x - y| <= ``tie_margin``
              is a tie
The prompt is ``prompt_template`` with {question}, {answer} (the reference answer, "" when none), {response_a}
and {response_b} replaced. Requests go through rlvr.rewards.judge.chat (temperature 0, retries with
exponential backoff on 5xx / 429 / timeouts / connection errors), at most ``concurrency`` at once, each within
``timeout_s`` (reward.timeout_s) from its start.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rlvr.rewards.batch import BATCH_REWARDS, ScoreBatch
from rlvr.rewards.judge import JudgeError, chat, chat_url, judge_payload
from rlvr.types import RewardResult

log = logging.getLogger("rlvr.rewards")

PAIRWISE_TEMPLATE = (
    "You are comparing two responses to the same request.\n\n"
    "Request:\n{question}\n\n"
    "Response A:\n{response_a}\n\n"
    "Response B:\n{response_b}\n\n"
    "Which response is better? Explain briefly, then end with [[A]] if A is better, [[B]] if B is better, "
    "or [[C]] for a tie."
)

_BRACKETED = re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.IGNORECASE)
_LABELLED = re.compile(r"(?:verdict|winner|better(?: response)?)\s*(?:is)?\s*[:=]?\s*\**\s*(?:response\s+)?(A|B|tie)\b",
                       re.IGNORECASE)
_NUMBER = r"[-+]?\d+(?:\.\d+)?"
_SCORE_A = re.compile(rf"score\s*(?:of\s*)?(?:response\s*)?A\s*[:=]\s*\**\s*({_NUMBER})", re.IGNORECASE)
_SCORE_B = re.compile(rf"score\s*(?:of\s*)?(?:response\s*)?B\s*[:=]\s*\**\s*({_NUMBER})", re.IGNORECASE)


def parse_verdict(reply: str, parser: str = "verdict", tie_margin: float = 0.0) -> int | None:
    """+1 when the reply prefers Response A, -1 for B, 0 for a tie, None when it says neither."""
    if parser == "scores":
        a, b = _SCORE_A.findall(reply), _SCORE_B.findall(reply)
        if not a or not b:
            return None
        diff = float(a[-1]) - float(b[-1])
        return 0 if abs(diff) <= tie_margin else (1 if diff > 0 else -1)
    if parser != "verdict":
        raise ValueError(f"unknown pairwise parser {parser!r}; choose verdict or scores")
    found = _BRACKETED.findall(reply) or _LABELLED.findall(reply)
    word = found[-1] if found else reply.strip().strip(".*").strip()
    word = word.upper()
    return {"A": 1, "B": -1, "C": 0, "TIE": 0}.get(word)


def reference_index(group_size: int, seed: int) -> int:
    """BRPO's temporary reference of a group: uniform over 0 .. group_size - 1, a pure function of ``seed``."""
    return random.Random(seed).randrange(group_size)


def group_seed(metadata: dict, prompt: str, seed: int) -> int:
    """The seed of a group's reference: its prompt's sampling seed (the loop's, resumable) else a prompt hash."""
    base = metadata.get("sample_seed")
    if base is None:
        base = zlib.crc32(prompt.encode("utf-8"))
    return (int(base) * 1_000_003 + int(seed)) % (2**63)


@BATCH_REWARDS.register("pairwise_judge")
def pairwise_judge(batch: ScoreBatch, policy: Any = None, *, timeout_s: float = 60.0,
                   base_url: str = "http://127.0.0.1:8000/v1", model: str = "default",
                   api_key_env: str = "OPENAI_API_KEY", prompt_template: str = PAIRWISE_TEMPLATE,
                   system_prompt: str = "", parser: str = "verdict", tie_margin: float = 0.0,
                   both_orders: bool = True, retries: int = 3, backoff_s: float = 1.0,
                   request_timeout_s: float = 0.0, concurrency: int = 8, max_tokens: int = 512, seed: int = 0,
                   **_: Any) -> list[RewardResult]:
    """Pairwise judge vs a seeded random reference of each group: +1 / -1 / 0 (Writing-Zero BRPO, arXiv:2506.00103)."""
    parse_verdict("", parser)  # an unknown parser fails now, for the whole batch
    url = chat_url(base_url)
    api_key = os.environ.get(api_key_env) or None
    results: list[RewardResult | None] = [None] * len(batch.completions)
    jobs: list[tuple[int, int, bool]] = []  # (completion i, its reference j, i is shown as Response A)
    for group in batch.groups:
        if len(group) < 2:
            for i in group:
                results[i] = RewardResult(0.0, reason="pairwise_judge: a group of one, nothing to compare with")
            continue
        ex = batch.examples[group[0]]
        j = group[reference_index(len(group), group_seed(batch.metadata[group[0]], ex.prompt or ex.question, seed))]
        results[j] = RewardResult(0.0, reason="brpo reference", details={"brpo_reference": True})
        for i in group:
            if i != j:
                jobs.append((i, j, True))
                if both_orders:
                    jobs.append((i, j, False))

    def ask(job: tuple[int, int, bool]) -> tuple[int | None, str, str]:
        """(outcome from completion i's side or None, the reply, the failure reason)."""
        i, j, i_first = job
        ex = batch.examples[i]
        a, b = (batch.completions[i], batch.completions[j]) if i_first else (batch.completions[j], batch.completions[i])
        answer = "" if ex.answer is None else str(ex.answer)
        prompt = (prompt_template.replace("{question}", str(batch.metadata[i].get("question", ex.question)))
                  .replace("{answer}", answer).replace("{response_a}", a).replace("{response_b}", b))
        payload = judge_payload(model, prompt, system_prompt, max_tokens)
        per_request = float(request_timeout_s) if request_timeout_s else float(timeout_s)
        try:
            reply = chat(url, payload, api_key=api_key, timeout_s=per_request, retries=int(retries),
                         backoff_s=float(backoff_s), concurrency=int(concurrency),
                         deadline=time.monotonic() + float(timeout_s))
        except JudgeError as err:
            return None, "", f"judge failed: {err}"
        verdict = parse_verdict(reply, parser, float(tie_margin))
        if verdict is None:
            return None, reply, f"unparsable judge reply: {reply[:120]!r}"
        return (verdict if i_first else -verdict), reply, ""

    with ThreadPoolExecutor(max_workers=max(1, int(concurrency))) as executor:
        answers = list(executor.map(ask, jobs))
    per_item: dict[int, list[tuple[int | None, str, str]]] = {}
    for (i, _, _), out in zip(jobs, answers):
        per_item.setdefault(i, []).append(out)
    failures = []
    for i, outs in per_item.items():
        got = [o for o, _, _ in outs if o is not None]
        errors = [why for o, _, why in outs if o is None]
        failures.extend(errors)
        details = {"outcomes": [o for o, _, _ in outs], "replies": [r[:500] for _, r, _ in outs]}
        if not got:
            results[i] = RewardResult(0.0, reason=errors[0][:300], details=details)
            continue
        total = sum(got)
        score = float((total > 0) - (total < 0))
        word = {1.0: "better than", -1.0: "worse than", 0.0: "tied with"}[score]
        reason = f"{word} the reference" + (f" ({len(errors)} of {len(outs)} comparisons failed)" if errors else "")
        if errors:
            details["errors"] = errors
        results[i] = RewardResult(score, reason=reason, details=details)
    if failures:
        log.warning("pairwise_judge: %d of %d comparisons failed (scored 0); first: %s", len(failures), len(jobs),
                    failures[0])
    return results  # type: ignore[return-value]
