"""Multi-turn rollouts: a loop over any rollout engine that can continue from token ids (docs/multi_turn.md).

    engine = MultiTurnEngine(HFRolloutEngine(model, tok), tok, cfg.rollout.multi_turn)
    groups = engine.generate(prompts, n=8, max_new_tokens=256, seeds=[...])    # the RolloutEngine protocol

Per trajectory (P prompts x n samples, all decoded together; finished ones drop out, the others go on):

    prompt | model turn 1 ... </tool_call> | <tool_response>55</tool_response> | model turn 2 ... EOS
             sampled: loss_mask 1            observation: loss_mask 0, logprob 0   sampled: loss_mask 1

1. the live trajectories' token ids (prompt + everything so far) go to ``engine.continue_ids`` with the stop
   sequences (the format's ``</tool_call>`` and ``stop``): the sampled ids and their log-probs are kept as they
   are, never re-tokenised. A turn whose text holds a stop string past its end (a tokenizer that merges the
   stop string with what follows) is cut at the first token that completes it (a prefix of a sample is a sample).
2. the turn's text is parsed (rlvr.rollout.tools.format): no call -> the trajectory is done ("eos"); a call
   (or a malformed one) -> the tool runs (`ToolBox`, parallel, timeouts) or an environment steps
   (`EnvPool`, worker processes) and its reply is tokenised ONCE and appended as observation ids (each tool
   output cut to ``max_tool_output_tokens``).
3. until EOS without a call, ``max_turns`` model turns (finish "max_turns": the model was still calling
   tools), or the budget ``max_new_tokens`` of the whole trajectory after the prompt (finish "length").

The returned `Completion` is the whole trajectory: token_ids (T_i,), logprobs (T_i,) (0 on observations),
loss_mask (T_i,), text (the decoded trajectory, observations included: what the verifier reads), turns (the
record in completions.jsonl), env_reward. Seeds: model turn k of sample j of prompt p draws from
``derive_seed(seeds[p], j, k)``; with a split-invariant engine a trajectory depends on its prompt, its seed and
the tools only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from rlvr.rollout import derive_seed, resolve_seeds
from rlvr.rollout.tools import ToolBox, ToolOutcome
from rlvr.rollout.tools.format import CALL_CLOSE, Call, chat_template_reply, find_calls, json_reply
from rlvr.types import Completion

log = logging.getLogger("rlvr.rollout")

TRUNCATED = " ...[truncated to {cap} tokens: the output had {chars} characters]"
FINISH_REASONS = ("eos", "length", "max_turns", "env_done", "env_error")


@dataclass
class _Trajectory:
    prompt_ids: list[int]
    seed: int
    sample: int
    example: Any = None
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    turns: list[dict] = field(default_factory=list)
    tool_state: dict = field(default_factory=dict)
    model_turns: int = 0
    finish: str = ""
    env_reward: float = 0.0
    tid: int = 0

    def add(self, ids: list[int], logprobs: list[float] | None) -> None:
        self.ids.extend(ids)
        self.logprobs.extend(logprobs if logprobs is not None else [0.0] * len(ids))
        self.mask.extend([1 if logprobs is not None else 0] * len(ids))


class MultiTurnEngine:
    """A RolloutEngine whose completions are multi-turn trajectories sampled by ``engine``.

    engine:    an engine with ``continue_ids(prefixes, max_new_tokens, temperature, top_p, top_k, seeds, stop)``
               (HFRolloutEngine with the decode loop, VLLMRolloutEngine); sleep / sync_weights / close pass through.
    tokenizer: the policy's tokenizer (prompts are encoded as the engine encodes them: ``add_special_tokens``).
    cfg:       rlvr.config.MultiTurnConfig.
    examples:  {prompt text: Example} for environments (``reset(example)``).
    """

    def __init__(self, engine, tokenizer, cfg, *, add_special_tokens: bool = True, eos_ids: list[int] | None = None,
                 examples: dict | None = None, batch_size: int = 0):
        if not hasattr(engine, "continue_ids"):
            raise ValueError(f"{type(engine).__name__} cannot continue from token ids: no multi-turn rollouts")
        self.engine, self.tokenizer, self.cfg = engine, tokenizer, cfg
        self.add_special_tokens = add_special_tokens
        self.eos_ids = list(eos_ids if eos_ids is not None else getattr(engine, "eos_ids"))
        self.examples = examples or {}
        self.tools = ToolBox(cfg.tools, timeout_s=cfg.timeout_s) if cfg.tools else None
        self.env = None
        if cfg.env:
            from rlvr.rollout.tools.env import EnvPool

            self.env = EnvPool(cfg.env, cfg.env_workers, cfg.timeout_s)
        self.stop_strings = list(cfg.stop) + ([CALL_CLOSE] if cfg.format == "json" and self.tools else [])
        self.stop_ids = [ids for s in self.stop_strings
                         if (ids := tokenizer(s, add_special_tokens=False)["input_ids"])]
        self._next_tid = 0

    @property
    def split_invariant(self) -> bool:
        return self.engine.split_invariant

    def tool_schemas(self) -> list[dict]:
        return self.tools.schemas() if self.tools else []

    # ------------------------------------------------------------------------------------------ the loop
    def generate(self, prompts: list[str], n: int, *, max_new_tokens: int, temperature: float = 1.0,
                 top_p: float = 1.0, top_k: int = 0, batch_size: int = 0,
                 seeds: list[int] | None = None) -> list[list[Completion]]:
        """P prompts -> P lists of n trajectories; ``max_new_tokens`` bounds each trajectory after its prompt."""
        greedy = temperature == 0
        seeds = resolve_seeds(seeds, len(prompts)) if seeds is not None or not greedy else [0] * len(prompts)
        trajs = []
        for p, (prompt, seed) in enumerate(zip(prompts, seeds)):
            ids = self.tokenizer(prompt, add_special_tokens=self.add_special_tokens)["input_ids"]
            for j in range(n):
                trajs.append(_Trajectory(list(ids), seed, j, self.examples.get(prompt), tid=self._next_tid))
                self._next_tid += 1
        if self.env is not None:
            self._env_reset(trajs, max_new_tokens)
        live = [t for t in trajs if not t.finish]
        while live:
            self._model_turn(live, max_new_tokens, temperature, top_p, top_k, batch_size)
            acting = [t for t in live if not t.finish]
            if self.env is not None:
                self._env_step(acting, max_new_tokens)
            else:
                self._tool_turn(acting, max_new_tokens)
            live = [t for t in live if not t.finish]
        if self.env is not None:
            self.env.call([("drop", t.tid, None) for t in trajs])
        self._log_problems(trajs)
        completions = [self._completion(t) for t in trajs]
        return [completions[p * n : (p + 1) * n] for p in range(len(prompts))]

    def _model_turn(self, live, max_new_tokens, temperature, top_p, top_k, batch_size) -> None:
        """One model turn for every live trajectory: sample, cut at a stop string or the budget, append."""
        budget = max(max_new_tokens - len(t.ids) for t in live)
        step = batch_size or len(live)
        results = []
        for start in range(0, len(live), step):
            chunk = live[start : start + step]
            results += self.engine.continue_ids(
                [t.prompt_ids + t.ids for t in chunk], budget, temperature, top_p, top_k,
                seeds=[derive_seed(t.seed, t.sample, t.model_turns) for t in chunk], stop=self.stop_ids)
        for t, c in zip(live, results):
            tokens, logprobs, finish = list(c.token_ids), list(c.logprobs), c.finish_reason
            left = max_new_tokens - len(t.ids)
            if len(tokens) > left:
                tokens, logprobs, finish = tokens[:left], logprobs[:left], "length"
            cut = self._stop_cut(tokens) if finish != "eos" else None
            if cut is not None:
                tokens, logprobs, finish = tokens[:cut], logprobs[:cut], "stop"
            t.add(tokens, logprobs)
            t.model_turns += 1
            t.turns.append({"role": "model", "text": self._decode(tokens), "tokens": len(tokens), "finish": finish})
            if finish in ("length", "interrupted"):  # out of budget (interrupted: only inside async runs)
                t.finish = "length"
            elif finish == "eos" and self.env is None and not (self.cfg.format == "chat_template" and self.tools):
                t.finish = "eos"

    def _stop_cut(self, tokens: list[int]) -> int | None:
        """The shortest prefix length whose text holds a stop string, or None (no stop string in the turn)."""
        if not self.stop_strings or not any(s in self._decode(tokens) for s in self.stop_strings):
            return None
        lo, hi = 1, len(tokens)  # the predicate "prefix holds a stop string" is monotone in the length
        while lo < hi:
            mid = (lo + hi) // 2
            if any(s in self._decode(tokens[:mid]) for s in self.stop_strings):
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _decode(self, tokens: list[int]) -> str:
        tokens = tokens[:-1] if tokens and tokens[-1] in self.eos_ids else tokens
        return self.tokenizer.decode(tokens, skip_special_tokens=False)

    def _tool_turn(self, acting, max_new_tokens) -> None:
        """Parse each turn's calls, run them all (parallel), append each trajectory's reply."""
        wanted: list[tuple[Any, list[Call]]] = []
        for t in acting:
            turn = t.turns[-1]
            if self.cfg.format == "json":
                calls = find_calls(turn["text"], last_only=True) if turn["finish"] == "stop" else []
                if not calls and turn["finish"] == "stop" and turn["text"].endswith(CALL_CLOSE):
                    calls = [Call(error=f"malformed tool call: {CALL_CLOSE} without <tool_call>")]
            else:
                calls = find_calls(turn["text"])
            if not calls:
                t.finish = "eos"  # an answer (or a stop string that is not a tool call): done
            elif t.model_turns >= self.cfg.max_turns:
                t.finish = "max_turns"
            else:
                wanted.append((t, calls))
        runnable = [(t.tool_state, c.name, c.arguments) for t, calls in wanted for c in calls if not c.error]
        outcomes = iter(self.tools.run(runnable))
        for t, calls in wanted:
            results = [ToolOutcome(f"error: {c.error}", "error") if c.error else next(outcomes) for c in calls]
            contents = [self._capped(o.text) for o in results]
            reply = json_reply(contents) if self.cfg.format == "json" else chat_template_reply(self.tokenizer,
                                                                                               contents)
            record = {"role": "tool", "calls": [{"name": c.name, "arguments": c.arguments, "status": o.status,
                                                 "seconds": round(o.seconds, 4)} for c, o in zip(calls, results)]}
            self._observe(t, reply, record, max_new_tokens)

    def _capped(self, text: str) -> str:
        """A tool output cut to max_tool_output_tokens tokens (megabytes are cut by characters first)."""
        cap, chars = self.cfg.max_tool_output_tokens, len(text)
        text = text[: cap * 32]
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= cap:
            return text
        return self.tokenizer.decode(ids[:cap], skip_special_tokens=True) + TRUNCATED.format(cap=cap, chars=chars)

    def _observe(self, t: _Trajectory, reply: str, record: dict, max_new_tokens: int) -> None:
        """Append an observation, tokenised once, as context (mask 0); past the budget the trajectory ends."""
        ids = self.tokenizer(reply, add_special_tokens=False)["input_ids"]
        left = max_new_tokens - len(t.ids)
        if len(ids) >= left:
            ids, t.finish = ids[:left], "length"
        t.add(ids, None)
        t.turns.append({**record, "text": self.tokenizer.decode(ids, skip_special_tokens=False), "tokens": len(ids)})

    # ------------------------------------------------------------------------------------------ environments
    def _env_reset(self, trajs, max_new_tokens) -> None:
        missing = [t for t in trajs if t.example is None]
        if missing:
            raise ValueError("rollout.multi_turn.env: a prompt has no example to reset the environment with (the "
                             "engine knows the examples of the training and held-out data only)")
        for t, (status, value) in zip(trajs, self.env.call([("reset", t.tid, t.example) for t in trajs])):
            if status != "ok":
                t.finish = "env_error"
                t.turns.append({"role": "env", "text": "", "tokens": 0, "error": f"reset: {value}"})
            elif value:
                self._observe(t, value, {"role": "env", "reset": True}, max_new_tokens)

    def _env_step(self, acting, max_new_tokens) -> None:
        answers = self.env.call([("step", t.tid, t.turns[-1]["text"]) for t in acting])
        for t, (status, value) in zip(acting, answers):
            if status != "ok":
                t.finish = "env_error"
                t.turns.append({"role": "env", "text": "", "tokens": 0, "error": value})
                continue
            obs, reward, done, info = value
            t.env_reward += self.cfg.discount ** (t.model_turns - 1) * reward
            record = {"role": "env", "reward": reward, "done": done, **({"info": info} if info else {})}
            if done:
                t.finish = "env_done"
                t.turns.append({**record, "text": "", "tokens": 0})
            elif t.model_turns >= self.cfg.max_turns:
                t.finish = "max_turns"
                t.turns.append({**record, "text": "", "tokens": 0})
            else:
                self._observe(t, obs, record, max_new_tokens)

    # ------------------------------------------------------------------------------------------ results
    def _completion(self, t: _Trajectory) -> Completion:
        text = self.tokenizer.decode([i for i in t.ids if i not in self.eos_ids], skip_special_tokens=True)
        finish = t.finish or "length"
        return Completion(text, list(t.ids), list(t.logprobs), finish, prompt_ids=list(t.prompt_ids),
                          loss_mask=list(t.mask), turns=t.turns,
                          env_reward=t.env_reward if self.env is not None else None)

    def _log_problems(self, trajs) -> None:
        problems = [(c.get("name", ""), c["status"]) for t in trajs for turn in t.turns if turn["role"] == "tool"
                    for c in turn["calls"] if c["status"] != "ok"]
        env_errors = [turn["error"] for t in trajs for turn in t.turns if turn.get("error")]
        if problems or env_errors:
            first = next((turn["text"] for t in trajs for turn in t.turns if turn["role"] == "tool"
                          and any(c["status"] != "ok" for c in turn["calls"])), "")
            log.info("multi_turn: %d failed tool calls, %d environment errors (first: %s)", len(problems),
                     len(env_errors), (first or (env_errors[:1] or [""])[0])[:200])

    def sleep(self) -> None:
        self.engine.sleep()

    def sync_weights(self, model) -> dict[str, float]:
        return self.engine.sync_weights(model)

    def close(self) -> None:
        if self.tools is not None:
            self.tools.close()
        if self.env is not None:
            self.env.close()
        self.engine.close()

    def __getattr__(self, name):  # model, device, fallback_reason ... of the wrapped engine (eval, tests)
        if name == "engine":
            raise AttributeError(name)
        return getattr(self.engine, name)


def prompt_tools(cfg) -> list[dict] | None:
    """The tools' schemas for the chat template's ``tools=`` (format chat_template), else None."""
    m = cfg.rollout.multi_turn
    if not (m.tools and m.format == "chat_template"):
        return None
    box = ToolBox(m.tools)
    try:
        return box.schemas()
    finally:
        box.close()


def trajectory_metrics(groups: list[list[Completion]]) -> dict[str, float]:
    """Per-step multi-turn metrics of the trajectories ({} when none is multi-turn): turns (model turns per
    trajectory), tool calls per tool, failed calls by status, observation tokens, and the share of trajectories
    that called a tool / ended by max_turns / length."""
    flat = [c for g in groups for c in g if c.turns]
    if not flat:
        return {}
    b = len(flat)
    model_turns = [sum(1 for turn in c.turns if turn["role"] == "model") for c in flat]
    calls = [call for c in flat for turn in c.turns if turn["role"] == "tool" for call in turn["calls"]]
    metrics = {
        "multi_turn/turns_mean": sum(model_turns) / b,
        "multi_turn/turns_max": float(max(model_turns)),
        "multi_turn/tool_use_frac": sum(any(t["role"] == "tool" for t in c.turns) for c in flat) / b,
        "multi_turn/tool_calls_per_traj": len(calls) / b,
        "multi_turn/observation_tokens_mean": sum(len(c.loss_mask) - sum(c.loss_mask) for c in flat) / b,
        "multi_turn/model_tokens_mean": sum(sum(c.loss_mask) for c in flat) / b,
        "multi_turn/tool_errors": float(sum(1 for x in calls if x["status"] in ("error", "unknown_tool"))),
        "multi_turn/tool_timeouts": float(sum(1 for x in calls if x["status"] == "timeout")),
    }
    for reason in FINISH_REASONS:
        metrics[f"multi_turn/ended_{reason}_frac"] = sum(c.finish_reason == reason for c in flat) / b
    names = [x["name"] if x["status"] != "unknown_tool" else "_unknown" for x in calls if x["name"]]
    for name in sorted(set(names)):  # model-written unknown names share one key (no metric per typo)
        metrics[f"multi_turn/calls/{name}"] = float(names.count(name))
    if any(c.env_reward is not None for c in flat):
        metrics["multi_turn/env_reward_mean"] = sum(c.env_reward or 0.0 for c in flat) / b
    return metrics


def add_env_rewards(results: list, completions: list[Completion]) -> list:
    """The verifier's results with each trajectory's environment return added to its score (unchanged when no
    completion carries one); the return is also kept as details["env_reward"]."""
    for r, c in zip(results, completions):
        if c.env_reward is not None:
            r.score = float(r.score + c.env_reward)
            r.details = {**(r.details or {}), "env_reward": float(c.env_reward)}
    return results
