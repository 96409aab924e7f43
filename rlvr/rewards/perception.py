"""``perception_judge``: a judge checks the response against the example's list of visual facts (Perception-R1).

    reward:
      components:
        - {name: perception_judge, params: {base_url: "http://127.0.0.1:8000/v1", model: judge, facts_field: visual_facts}}

Perception-R1 (Xiao et al. 2025, "Advancing Multimodal Reasoning Capabilities of MLLMs via Visual Perception
Reward") extracts the visual facts a correct solution needs (from reference solutions, once, offline) and has a
judge LLM decide, per response, how many of them the response states correctly; the share is the perception
reward, added to accuracy and format. Here the facts are a per-example list in ``metadata[facts_field]`` (a list
of strings, or one string with one fact per line); the judge gets them numbered with the question and the
response (``prompt_template``: ``{question}``, ``{facts}``, ``{completion}``) and ends with "Score: K", the
number of facts the response gets right. Reward = K / number of facts, clipped to [0, 1]. The request, retries,
concurrency and API key handling are the ``judge`` verifier's (rlvr.rewards.judge); an endpoint failure or an
unparsable reply scores 0 with the reason. An example without facts scores 0 ("no visual facts").
"""

from __future__ import annotations

from typing import Any

from rlvr.rewards.base import VERIFIERS
from rlvr.rewards.judge import JudgeError, ask_judge, parse_score
from rlvr.types import RewardResult

DEFAULT_TEMPLATE = (
    "You check whether a response to a question about an image states the image's visual facts correctly.\n\n"
    "Question:\n{question}\n\n"
    "Visual facts (ground truth):\n{facts}\n\n"
    "Response:\n{completion}\n\n"
    "Count the facts above that the response states or uses correctly (a fact it contradicts or omits does not "
    "count). Explain briefly, then end with a line 'Score: K' where K is that count."
)


def facts_of(metadata: dict, field: str) -> list[str]:
    raw = (metadata or {}).get(field)
    if isinstance(raw, str):
        raw = raw.splitlines()
    if not isinstance(raw, (list, tuple)):
        return []
    return [str(f).strip() for f in raw if str(f).strip()]


@VERIFIERS.register("perception_judge")
def perception_judge(completion: str, reference: Any, metadata: dict, *, facts_field: str = "visual_facts",
                     prompt_template: str = DEFAULT_TEMPLATE, **judge_params: Any) -> RewardResult:
    """The share of the example's visual facts the judge finds stated correctly in the response.
    ``judge_params``: the `judge` verifier's endpoint settings (base_url, model, api_key_env, retries ...)."""
    facts = facts_of(metadata, facts_field)
    if not facts:
        return RewardResult(0.0, reason=f"no visual facts (metadata[{facts_field!r}] missing or empty)")
    question = str((metadata or {}).get("question", (metadata or {}).get("prompt", "")))
    numbered = "\n".join(f"{i}. {fact}" for i, fact in enumerate(facts, start=1))
    prompt = (prompt_template.replace("{question}", question).replace("{facts}", numbered)
              .replace("{completion}", completion))
    try:
        reply = ask_judge(prompt, **judge_params)
    except JudgeError as err:
        return RewardResult(0.0, reason=f"judge failed: {err}"[:300])
    score = parse_score(reply, "number", float(len(facts)))
    if score is None:
        return RewardResult(0.0, reason=f"unparsable judge reply: {reply[:200]!r}", details={"reply": reply[:2000]})
    return RewardResult(score, reason=f"{score * len(facts):g} of {len(facts)} visual facts",
                        details={"reply": reply[:2000], "facts": len(facts)})
