"""The few records that travel between data, rollout, rewards, algorithms and the trainer.

Shape vocabulary used across rlvr: P prompts per step, G completions per prompt (group size),
B = P * G completions, T response tokens (padded), V vocabulary size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Example:
    """One training or evaluation problem.

    question:  the question text (the row's question field), before templating.
    answer:    the reference answer the verifier compares against (any JSON-able value).
    verifier:  the registered verifier name that scores completions of this example ("math", "mcqa",
               "reasoning_gym", ...), used by the reward component named "auto".
    metadata:  every other field of the source row plus source-specific data (JSON-able).
    source:    where it came from ("data/train.jsonl", "reasoning_gym:basic_arithmetic").
    index:     position of the row in its source (0-based), stable across runs.
    prompt:    the rendered prompt text fed to the model (filled in by rlvr.data.render_prompt).
    origin:    the name of the data.sources entry it came from (a mixture); "" with a single data.source.
    images:    the example's images (data.image_field): absolute paths or encoded bytes (rlvr.vision.images),
               checked when the data loaded; empty for a text example.
    teachers:  teacher completions of this problem (the row's data.teacher_field: one string or a list), for
               off-policy guidance (algorithm.guidance, docs/guidance.md); empty without one.
    """

    question: str
    answer: Any
    verifier: str = "math"
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    index: int = 0
    prompt: str = ""
    origin: str = ""
    images: list[Any] = field(default_factory=list)
    teachers: list[str] = field(default_factory=list)


@dataclass
class Completion:
    """One sampled completion of one prompt.

    token_ids:  (T_i,) response token ids, without padding; includes the EOS token when finish_reason == "eos".
    logprobs:   (T_i,) log-probabilities of token_ids under the sampling distribution.
    finish_reason: "eos" (the model stopped) or "length" (truncated at max_new_tokens); "interrupted" only inside
               a partial rollout, before it is resumed.
    version:   the weight version that sampled it (0 = the starting weights, v = after v updates); with partial
               rollouts the oldest of its segments'.
    segments:  partial rollouts: [[version, tokens], ...] in order (their tokens add up to len(token_ids));
               empty when one version sampled all of it.
    loss_mask: multi-turn trajectories (rlvr.rollout.multi_turn): (T_i,) 1 for a token the model sampled, 0 for an
               observation token (a tool's or environment's reply, inserted as context; its logprob is 0); empty
               = every token is the model's (single turn).
    turns:     multi-turn: the trajectory turn by turn, [{"role": "model" | "tool" | "env", "text", "tokens", ...}]
               (what completions.jsonl stores); empty for a single turn.
    env_reward: multi-turn with an environment: its per-turn rewards summed (discounted) over the trajectory,
               added to the verifier's score; None without one.
    vision:    a prompt with images: its rlvr.vision.processor.PromptInputs (the pixel inputs the update's forward
               takes again; prompt_ids then hold the expanded image tokens), shared by the group; None for text.
    off_policy: a teacher completion put into the group (algorithm.guidance, in_group): its tokens are marked in
               the batch's off_policy_mask and take the off-policy loss; logprobs is empty.
    """

    text: str
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str
    prompt_ids: list[int] = field(default_factory=list)
    version: int = 0
    segments: list[list[int]] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    env_reward: float | None = None
    vision: Any = None
    off_policy: bool = False


@dataclass
class RewardResult:
    """What a verifier (or the composed reward) says about one completion.

    score:      the reward, a finite float (0.0 on any failure).
    reason:     a short human-readable explanation ("correct", "no <answer> tag", "timeout after 10s", ...).
    extracted:  the answer string pulled out of the completion, or None when nothing was found.
    details:    verifier-specific extras (test case outcomes, parsed values ...), JSON-able.
    components: for a composed reward, each component's unweighted score by name.
    """

    score: float
    reason: str = ""
    extracted: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    components: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "reason": self.reason,
            "extracted": self.extracted,
            "details": self.details,
            "components": self.components,
        }
