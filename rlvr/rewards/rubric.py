"""`rubric_judge`: a judge checks a completion against the example's own rubric (Rubric Anchors, Huang et al. 2025,
arXiv:2508.12790; RLMT, Bhaskar et al. 2025, arXiv:2509.20357).

    reward:
      components:
        - name: rubric_judge
          params: {base_url: "http://127.0.0.1:8000/v1", model: judge, rubric_field: rubric}

Each example carries a rubric in its data field ``rubric_field`` (default ``rubric``): a list of criteria, each a
string (weight 1) or ``{"criterion": "...", "weight": w}`` (w > 0), or that list as a JSON string. One request
asks the judge about every criterion, numbered; the reply must give one line per criterion, ``N: yes`` or
``N: no`` (also met / not met, true / false, pass / fail). Then

    reward = sum_k w_k * met_k / sum_k w_k                (the weighted fraction of criteria met)

A criterion without a verdict counts as not met (reason says how many); a reply with no verdict at all scores 0
("unparsable"). Per-criterion verdicts are in ``details["criteria"]``
(``[{"criterion", "weight", "met"}]``, met None when missing), which the trainer writes to completions.jsonl.
A verifier: it runs in the scorer's worker processes like ``judge`` (same plumbing: retries with backoff,
``concurrency`` requests at once per process, the API key from ``api_key_env``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from rlvr.rewards.base import VERIFIERS
from rlvr.rewards.judge import JudgeError, ask_judge
from rlvr.types import RewardResult

RUBRIC_TEMPLATE = (
    "You are checking a response against a rubric.\n\n"
    "Question:\n{question}\n\n"
    "Response:\n{completion}\n\n"
    "Rubric:\n{criteria}\n\n"
    "For each numbered criterion, say whether the response meets it. Answer with one line per criterion, "
    "exactly 'N: yes' or 'N: no'."
)

_VERDICT = re.compile(r"^\W*(?:criterion\s*)?(\d+)\s*[:.)\-]\s*\**\s*(yes|no|met|not met|true|false|pass|fail)\b",
                      re.IGNORECASE | re.MULTILINE)
_MET = {"yes": True, "met": True, "true": True, "pass": True, "no": False, "not met": False, "false": False,
        "fail": False}


def parse_rubric(raw: Any) -> list[tuple[str, float]]:
    """A rubric field -> [(criterion, weight)]; ValueError with the reason when it is not a usable rubric."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError("the rubric is a string but not a JSON list of criteria") from None
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"the rubric must be a non-empty list of criteria, got {type(raw).__name__}")
    out = []
    for k, item in enumerate(raw):
        if isinstance(item, str):
            text, weight = item, 1.0
        elif isinstance(item, dict) and isinstance(item.get("criterion"), str):
            text, weight = item["criterion"], item.get("weight", 1.0)
        else:
            raise ValueError(f"rubric criterion {k + 1} must be a string or {{criterion, weight}}, got {item!r}")
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            raise ValueError(f"rubric criterion {k + 1}: weight {weight!r} is not a number") from None
        if not weight > 0 or weight == float("inf"):
            raise ValueError(f"rubric criterion {k + 1}: weight must be a finite number > 0, got {weight}")
        out.append((text, weight))
    return out


def parse_verdicts(reply: str, n: int) -> dict[int, bool]:
    """{criterion number (1-based): met} from lines 'N: yes|no'; the LAST verdict of a number wins; others ignored."""
    found: dict[int, bool] = {}
    for number, word in _VERDICT.findall(reply):
        k = int(number)
        if 1 <= k <= n:
            found[k] = _MET[" ".join(word.lower().split())]
    return found


@VERIFIERS.register("rubric_judge")
def rubric_judge(completion: str, reference: Any, metadata: dict, *, base_url: str = "http://127.0.0.1:8000/v1",
                 model: str = "default", api_key_env: str = "OPENAI_API_KEY", rubric_field: str = "rubric",
                 prompt_template: str = RUBRIC_TEMPLATE, system_prompt: str = "", retries: int = 3,
                 backoff_s: float = 1.0, timeout_s: float = 60.0, concurrency: int = 8, max_tokens: int = 512,
                 **_: Any) -> RewardResult:
    """Weighted fraction of the example's rubric criteria a judge says the completion meets."""
    metadata = metadata or {}
    if rubric_field not in metadata:
        return RewardResult(0.0, reason=f"no rubric: the example has no {rubric_field!r} field")
    try:
        rubric = parse_rubric(metadata[rubric_field])
    except ValueError as err:
        return RewardResult(0.0, reason=f"bad rubric: {err}"[:300])
    criteria = "\n".join(f"{k}. {text}" for k, (text, _) in enumerate(rubric, start=1))
    question = str(metadata.get("question", metadata.get("prompt", "")))
    prompt = (prompt_template.replace("{question}", question).replace("{completion}", completion)
              .replace("{criteria}", criteria))
    try:
        reply = ask_judge(prompt, base_url=base_url, model=model, api_key_env=api_key_env, system_prompt=system_prompt,
                          retries=retries, backoff_s=backoff_s, timeout_s=timeout_s, concurrency=concurrency,
                          max_tokens=max_tokens)
    except JudgeError as err:
        return RewardResult(0.0, reason=f"judge failed: {err}"[:300])
    verdicts = parse_verdicts(reply, len(rubric))
    table = [{"criterion": text, "weight": w, "met": verdicts.get(k)} for k, (text, w) in enumerate(rubric, start=1)]
    details = {"criteria": table, "reply": reply[:2000]}
    if not verdicts:
        return RewardResult(0.0, reason=f"unparsable judge reply: {reply[:200]!r}", details=details)
    total = sum(w for _, w in rubric)
    score = sum(w for k, (_, w) in enumerate(rubric, start=1) if verdicts.get(k)) / total
    met = sum(1 for row in table if row["met"])
    missing = len(rubric) - len(verdicts)
    reason = f"{met} of {len(rubric)} criteria met" + (f" ({missing} without a verdict)" if missing else "")
    return RewardResult(score, reason=reason, details=details)
