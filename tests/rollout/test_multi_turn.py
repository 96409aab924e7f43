"""Multi-turn rollouts (rlvr.rollout.multi_turn): the loop with a scripted policy and the real tools, the token
layout (loss mask over model tokens only), bad input, environments in worker processes, and, with the tiny HF
model, the trainer's log-prob recomputation over whole trajectories against the sampling log-probs."""

from __future__ import annotations

import json
import time

import pytest
import torch

from rlvr.config import MultiTurnConfig
from rlvr.demo.tiny import build_char_tokenizer, build_tiny_llama
from rlvr.rollout.hf import HFRolloutEngine
from rlvr.rollout.multi_turn import MultiTurnEngine, add_env_rewards, trajectory_metrics
from rlvr.rollout.tools import TOOLS, ToolError
from rlvr.trainer.batch import build_batch
from rlvr.trainer.policy import response_logprobs
from rlvr.types import Completion, Example, RewardResult

TOK = build_char_tokenizer()
EOS = TOK.eos_token_id
LP = -0.5  # the scripted policy's log-prob of every token it "samples"


def call(name="calculator", **arguments) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


class ScriptedEngine:
    """continue_ids answers from a script: prefix text -> the next turn. A script maps the prompt to a list of
    turns; turn k of a trajectory is script[prompt][k] (text; a trailing "<eos>" becomes the EOS token). The
    engine honours stop sequences like the HF loop unless ``honour_stop`` is False; every call is recorded."""

    split_invariant = True

    def __init__(self, script: dict[str, list[str]], honour_stop: bool = True):
        self.script, self.honour_stop, self.calls, self.eos_ids = script, honour_stop, [], [EOS]

    def continue_ids(self, prefixes, max_new_tokens, temperature=1.0, top_p=1.0, top_k=0, seeds=None, stop=None):
        self.calls.append({"rows": len(prefixes), "max_new_tokens": max_new_tokens, "seeds": list(seeds)})
        out = []
        for prefix in prefixes:
            text = TOK.decode(prefix, skip_special_tokens=False)
            prompt = next(p for p in self.script if text.startswith(p))
            turn = sum(text.count(m) for m in ("</tool_response>", "[obs]"))  # replies so far
            body = self.script[prompt][min(turn, len(self.script[prompt]) - 1)]
            eos = body.endswith("<eos>")
            ids = TOK(body.removesuffix("<eos>"), add_special_tokens=False)["input_ids"] + ([EOS] if eos else [])
            finish = "eos" if eos else "length"
            if self.honour_stop:
                for k in range(1, len(ids) + 1):
                    if any(ids[:k][-len(s):] == s for s in stop or []):
                        ids, finish = ids[:k], "stop"
                        break
            if len(ids) > max_new_tokens:
                ids, finish = ids[:max_new_tokens], "length"
            out.append(Completion("", ids, [LP] * len(ids), finish, prompt_ids=list(prefix)))
        return out

    def sleep(self):
        pass

    def sync_weights(self, model):
        return {}

    def close(self):
        pass


def run(script, n=1, max_new_tokens=400, honour_stop=True, **cfg):
    engine = MultiTurnEngine(ScriptedEngine(script, honour_stop), TOK, MultiTurnConfig(**{"tools": ["calculator"],
                                                                                           **cfg}))
    try:
        return engine.generate(list(script), n, max_new_tokens=max_new_tokens, seeds=list(range(len(script)))), engine
    finally:
        engine.close()


def test_calculator_trajectory_is_token_exact_with_a_loss_mask_over_model_tokens():
    turn1, turn2 = call(expression="47+8-5"), "<answer>50</answer><eos>"
    (groups, engine) = run({"47+8-5\n": [turn1, turn2]})
    c = groups[0][0]
    reply = "<tool_response>50</tool_response>"
    ids1, obs, ids2 = (TOK(x, add_special_tokens=False)["input_ids"] for x in (turn1, reply, "<answer>50</answer>"))
    assert c.token_ids == ids1 + obs + ids2 + [EOS]  # the model's ids as sampled, the reply tokenised once
    assert c.loss_mask == [1] * len(ids1) + [0] * len(obs) + [1] * (len(ids2) + 1)
    assert c.logprobs == [LP] * len(ids1) + [0.0] * len(obs) + [LP] * (len(ids2) + 1)
    assert c.prompt_ids == TOK("47+8-5\n")["input_ids"]
    assert c.finish_reason == "eos" and c.text == turn1 + reply + "<answer>50</answer>"
    assert [t["role"] for t in c.turns] == ["model", "tool", "model"]
    assert c.turns[1]["calls"] == [{"name": "calculator", "arguments": {"expression": "47+8-5"}, "status": "ok",
                                    "seconds": c.turns[1]["calls"][0]["seconds"]}]
    assert c.turns[1]["text"] == reply and c.turns[1]["tokens"] == len(obs)


def test_the_batch_masks_observations_and_the_forward_attends_to_them():
    groups, _ = run({"1+2\n": [call(expression="1+2"), "<answer>3</answer><eos>"], "5\n": ["<answer>5</answer><eos>"]})
    batch = build_batch([Example("1+2", "3"), Example("5", "5")], [groups[0], groups[1]],
                        [RewardResult(1.0), RewardResult(1.0)], TOK.pad_token_id)
    c0, c1 = groups[0][0], groups[1][0]
    assert batch.response_mask[0, : len(c0.token_ids)].tolist() == [bool(m) for m in c0.loss_mask]
    assert batch.context_mask[0].sum() == len(c0.token_ids) and batch.context_mask[1].sum() == len(c1.token_ids)
    assert batch.response_mask[1].sum() == len(c1.token_ids)  # a single-turn answer: all model tokens
    ids, mask, width = batch.model_inputs(torch.arange(2), torch.device("cpu"))
    assert width == len(c0.token_ids) and mask[0].sum() == len(c0.prompt_ids) + len(c0.token_ids)


def test_single_turn_batches_are_unchanged():
    c = Completion("ab", [5, 6], [-1.0, -2.0], "eos", prompt_ids=[7])
    batch = build_batch([Example("q", "a")], [[c]], [RewardResult(0.0)], 0)
    assert batch.context_mask is None and batch.token_mask is batch.response_mask


def test_finished_trajectories_drop_out_of_the_batch():
    script = {"a\n": ["<answer>1</answer><eos>"],
              "b\n": [call(expression="1+1"), "<answer>2</answer><eos>"],
              "c\n": [call(expression="1+1"), call(expression="2+2"), "<answer>4</answer><eos>"]}
    groups, engine = run(script, n=2)
    assert [x["rows"] for x in engine.engine.calls] == [6, 4, 2]
    assert [g[0].finish_reason for g in groups] == ["eos"] * 3
    # budget per call: the most any live trajectory has left; seeds: derive_seed(prompt seed, sample, turn)
    assert engine.engine.calls[0]["max_new_tokens"] == 400
    assert len(set(engine.engine.calls[0]["seeds"])) == 6


def test_malformed_and_unknown_calls_become_error_observations():
    script = {"x\n": ['<tool_call>{"name": "calculator", "arguments": {"expression": </tool_call>',
                      call("nope", q=1), call(expression="2**99999"), call(expression="__import__('os')"),
                      "</tool_call>", "<answer>0</answer><eos>"]}
    groups, _ = run(script, max_turns=10, max_new_tokens=2000)
    c = groups[0][0]
    replies = [t["text"] for t in c.turns if t["role"] == "tool"]
    statuses = [t["calls"][0]["status"] for t in c.turns if t["role"] == "tool"]
    assert statuses == ["error", "unknown_tool", "error", "error", "error"]
    assert replies[0].startswith("<tool_response>error: malformed tool call: not JSON")
    assert "unknown tool 'nope'; tools: calculator" in replies[1]
    assert "exponent 99999 is too large" in replies[2]
    assert "only numbers" in replies[3] and "without <tool_call>" in replies[4]
    assert c.finish_reason == "eos"
    m = trajectory_metrics(groups)
    assert m["multi_turn/tool_errors"] == 5.0 and m["multi_turn/turns_mean"] == 6.0
    assert m["multi_turn/calls/_unknown"] == 1.0 and m["multi_turn/calls/calculator"] == 2.0  # 2 of 4 named calls


def test_a_model_that_never_stops_calling_ends_at_max_turns():
    groups, _ = run({"x\n": [call(expression="1+1")]}, max_turns=3)
    c = groups[0][0]
    assert c.finish_reason == "max_turns"
    assert [t["role"] for t in c.turns] == ["model", "tool", "model", "tool", "model"]  # no tool after the last
    m = trajectory_metrics(groups)
    assert m["multi_turn/ended_max_turns_frac"] == 1.0 and m["multi_turn/calls/calculator"] == 2.0


def test_the_budget_covers_the_whole_trajectory_and_cuts_the_observation():
    turn1 = call(expression="1+1")  # 58 characters
    groups, _ = run({"x\n": [turn1, "<answer>2</answer><eos>"]}, max_new_tokens=len(turn1) + 10)
    c = groups[0][0]
    assert c.finish_reason == "length" and len(c.token_ids) == len(turn1) + 10
    assert c.turns[-1]["text"] == "<tool_respo"[:10]  # the reply cut to the 10 tokens left


def test_a_stop_string_the_engine_did_not_honour_is_cut_post_hoc():
    turn1 = call(expression="3*4") + "<tool_response>hallucinated"  # an engine without stop support
    groups, _ = run({"x\n": [turn1, "<answer>12</answer><eos>"]}, honour_stop=False)
    c = groups[0][0]
    first = c.turns[0]
    assert first["text"] == call(expression="3*4") and first["finish"] == "stop"
    assert c.turns[1]["text"] == "<tool_response>12</tool_response>"


def test_huge_raising_and_hanging_tools_become_observations(monkeypatch):
    @TOOLS.register("test_flaky")
    class Flaky:
        name, description, parameters = "test_flaky", "test", {"type": "object"}

        def __init__(self):
            pass

        def __call__(self, arguments, state):
            if arguments.get("mode") == "raise":
                raise RuntimeError("boom")
            if arguments.get("mode") == "hang":
                time.sleep(3)
            if arguments.get("mode") == "bad":
                raise ToolError("bad arguments")
            return "y" * 5_000_000

    try:
        script = {"x\n": [call("test_flaky", mode="huge"), call("test_flaky", mode="raise"),
                          call("test_flaky", mode="hang"), call("test_flaky", mode="bad"), "<answer>0</answer><eos>"]}
        start = time.perf_counter()
        groups, _ = run(script, tools=["test_flaky"], max_turns=10, max_tool_output_tokens=60, timeout_s=0.5,
                        max_new_tokens=2000)
        assert time.perf_counter() - start < 2.5
    finally:
        TOOLS._items.pop("test_flaky", None)
        TOOLS._docs.pop("test_flaky", None)
    tools = [t for t in groups[0][0].turns if t["role"] == "tool"]
    note = " ...[truncated to 60 tokens: the output had 5000000 characters]"
    assert tools[0]["text"].removesuffix("</tool_response>") == "<tool_response>" + "y" * 60 + note
    assert tools[0]["text"].endswith("</tool_response>")
    assert [t["calls"][0]["status"] for t in tools] == ["ok", "error", "timeout", "error"]
    assert "RuntimeError: boom" in tools[1]["text"] and "timed out after 0.5s" in tools[2]["text"]
    assert "error: bad arguments" in tools[3]["text"]
    assert trajectory_metrics(groups)["multi_turn/tool_timeouts"] == 1.0


def test_python_tool_fresh_and_persistent_sessions():
    script = {"x\n": [call("python", code="x = 6\nprint(x * 7)"), call("python", code="print(x)"),
                      call("python", code="while True: pass"), "<answer>0</answer><eos>"]}
    fresh, _ = run(script, tools=[{"name": "python", "params": {"timeout_s": 0.5}}], max_turns=10, max_new_tokens=2000)
    replies = [t["text"] for t in fresh[0][0].turns if t["role"] == "tool"]
    assert replies[0] == "<tool_response>42\n</tool_response>"
    assert "NameError" in replies[1] and "[exit code 1]" in replies[1]
    assert "[killed: timeout after 0.5s]" in replies[2]
    kept, _ = run(script, tools=[{"name": "python", "params": {"persistent": True, "timeout_s": 0.5}}], max_turns=10,
                  max_new_tokens=2000)
    replies = [t["text"] for t in kept[0][0].turns if t["role"] == "tool"]
    assert replies[:2] == ["<tool_response>42\n</tool_response>", "<tool_response>6\n</tool_response>"]


def test_trajectory_metrics_by_hand():
    groups, _ = run({"a\n": ["<answer>1</answer><eos>"], "b\n": [call(expression="1+1"), "<answer>2</answer><eos>"]})
    m = trajectory_metrics(groups)
    obs = len("<tool_response>2</tool_response>")
    # turns: (1 + 2) / 2; one of two trajectories called a tool, once; observation tokens (0 + obs) / 2
    assert m["multi_turn/turns_mean"] == 1.5 and m["multi_turn/tool_use_frac"] == 0.5
    assert m["multi_turn/tool_calls_per_traj"] == 0.5 and m["multi_turn/observation_tokens_mean"] == obs / 2
    assert m["multi_turn/ended_eos_frac"] == 1.0 and m["multi_turn/tool_errors"] == 0.0
    assert trajectory_metrics([[Completion("a", [1], [0.0], "eos")]]) == {}


ENV = '''
import time
class CountEnv:
    """Reward 1 per turn; done after the second turn; "hang" in the action sleeps, "raise" raises."""
    def reset(self, example):
        self.turn = 0
        return "[obs]start " + example.question
    def step(self, action):
        if "hang" in action:
            time.sleep(30)
        if "raise" in action:
            raise ValueError("bad action")
        self.turn += 1
        return "[obs]again", 1.0, self.turn >= 2, {"turn": self.turn}
'''


def env_run(tmp_path, script, **cfg):
    path = tmp_path / "count_env.py"
    path.write_text(ENV)
    examples = {p: Example(question=p.strip(), answer="") for p in script}
    engine = MultiTurnEngine(ScriptedEngine(script), TOK, MultiTurnConfig(env=f"{path}:CountEnv", **cfg),
                             examples=examples)
    try:
        return engine.generate(list(script), 1, max_new_tokens=400, seeds=list(range(len(script))))
    finally:
        engine.close()


def test_environment_rewards_are_discounted_and_added_to_the_score(tmp_path):
    groups = env_run(tmp_path, {"q\n": ["go<eos>"]}, discount=0.5)
    c = groups[0][0]
    assert c.finish_reason == "env_done" and c.env_reward == 1.0 + 0.5  # r_0 + 0.5 * r_1
    assert [t["role"] for t in c.turns] == ["env", "model", "env", "model", "env"]
    assert c.turns[0]["text"] == "[obs]start q" and c.loss_mask[: len("[obs]start q")] == [0] * 12
    results = add_env_rewards([RewardResult(1.0, components={"exact_match": 1.0})], [c])
    assert results[0].score == 2.5 and results[0].details["env_reward"] == 1.5
    assert results[0].components == {"exact_match": 1.0}


def test_environment_that_raises_or_hangs_ends_only_its_trajectories(tmp_path):
    start = time.perf_counter()
    groups = env_run(tmp_path, {"a\n": ["raise<eos>"], "b\n": ["hang<eos>"], "c\n": ["fine<eos>"]},
                     timeout_s=1.0, env_workers=3)
    assert time.perf_counter() - start < 20  # the hang sleeps 30 s: the timeout (1 s) cut it
    a, b, c = (g[0] for g in groups)
    assert a.finish_reason == b.finish_reason == "env_error"
    assert "ValueError: bad action" in a.turns[-1]["error"] and "timeout after 1s" in b.turns[-1]["error"]
    assert c.finish_reason == "env_done" and c.env_reward == 2.0


# ---------------------------------------------------------------------------------------------- the tiny HF model


@pytest.fixture(scope="module")
def tiny():
    model = build_tiny_llama(TOK, hidden=32, layers=2, heads=2, seed=0)
    return model, HFRolloutEngine(model, TOK, "cpu")


def test_hf_stop_sequences_end_rows_at_a_prefix_of_the_unstopped_sample(tiny):
    _, hf = tiny
    prefixes = [TOK("1+1=")["input_ids"], TOK("Q: 47")["input_ids"]] * 4
    seeds = list(range(8))
    free = hf.continue_ids(prefixes, 24, 1.0, seeds=seeds)
    stop = [TOK(ch, add_special_tokens=False)["input_ids"] for ch in "ae"]
    stopped = hf.continue_ids(prefixes, 24, 1.0, seeds=seeds, stop=stop)
    assert any(s.finish_reason == "stop" for s in stopped)  # the check below is not vacuous
    for f, s in zip(free, stopped):
        assert f.token_ids[: len(s.token_ids)] == s.token_ids and f.logprobs[: len(s.logprobs)] == s.logprobs
        hits = [k for k, t in enumerate(f.token_ids) if [t] in stop]
        if hits and (f.finish_reason != "eos" or hits[0] < len(f.token_ids) - 1):
            assert s.finish_reason == "stop" and len(s.token_ids) == hits[0] + 1
        else:
            assert s.finish_reason == f.finish_reason and s.token_ids == f.token_ids


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_trainer_recomputation_matches_sampling_logprobs_over_whole_trajectories(tiny, tmp_path, temperature):
    """Trajectories of the tiny model with environment observations between its turns: the trainer's forward
    over prompt + all turns (observations attended, not scored) gives the sampling log-probs of model tokens."""
    model, hf = tiny
    path = tmp_path / "echo_env.py"
    path.write_text("class Echo:\n    def reset(self, example):\n        return ''\n"
                    "    def step(self, action):\n        return '[obs]' + action[-3:] + '|', 0.0, False, {}\n")
    prompts = ["1+1=", "Q: 47+38\nA: "]
    engine = MultiTurnEngine(hf, TOK, MultiTurnConfig(env=f"{path}:Echo", max_turns=3, stop=["+", "="]),
                             examples={p: Example(p, "") for p in prompts})
    try:
        groups = engine.generate(prompts, 3, max_new_tokens=40, temperature=temperature, seeds=[3, 4])
    finally:
        engine.env.close()
    flat = [c for g in groups for c in g]
    assert any(sum(1 for t in c.turns if t["role"] == "model") >= 2 for c in flat)  # observations in between
    batch = build_batch([Example(p, "") for p in prompts], groups, [RewardResult(0.0)] * 6, TOK.pad_token_id)
    ids, mask, width = batch.model_inputs(torch.arange(len(batch)), torch.device("cpu"))
    with torch.no_grad():
        logp, _ = response_logprobs(model, ids, mask, width, temperature=temperature, chunk_size=7,
                                    with_entropy=False)
    for i, c in enumerate(flat):
        model_tokens = torch.tensor(c.loss_mask, dtype=torch.bool)
        assert model_tokens.sum() < len(c.token_ids) or len(c.turns) == 1
        got, want = logp[i, : len(c.token_ids)][model_tokens], torch.tensor(c.logprobs)[model_tokens]
        assert torch.allclose(got, want, atol=1e-4), (i, (got - want).abs().max())
    # packed sequences (trainer.packing) see the same context
    from rlvr.trainer.policy import packed_response_logprobs

    (rows, pack), *_ = batch.packed_micro_batches(torch.arange(len(batch)), len(batch), torch.device("cpu"))
    with torch.no_grad():
        packed, _ = packed_response_logprobs(model, pack, temperature=temperature, chunk_size=7, with_entropy=False)
    for k, row in enumerate(rows.tolist()):
        m = batch.response_mask[row, : packed.shape[1]]
        assert torch.allclose(packed[k][m], logp[row, : packed.shape[1]][m], atol=1e-4)


def test_chat_template_format_runs_every_call_of_a_turn_that_ended_at_eos():
    from tests.rollout.test_tools import QWEN_LIKE

    tok = build_char_tokenizer()
    tok.chat_template = QWEN_LIKE
    script = {"q\n": [call(expression="1+1") + call(expression="2*3") + "<eos>", "<answer>6</answer><eos>"]}
    engine = MultiTurnEngine(ScriptedEngine(script), tok, MultiTurnConfig(tools=["calculator"],
                                                                         format="chat_template"))
    assert engine.stop_ids == []  # the turn ends at EOS, as the template's model does
    c = engine.generate(list(script), 1, max_new_tokens=400, seeds=[0])[0][0]
    engine.close()
    reply = c.turns[1]["text"]
    # this template writes nothing after the assistant turn's end, then one user turn with both responses
    assert reply == ("<|im_start|>user\n<tool_response>\n2\n</tool_response>\n<tool_response>\n6\n</tool_response>"
                     "<|im_end|>\n<|im_start|>assistant\n")
    assert [x["status"] for x in c.turns[1]["calls"]] == ["ok", "ok"] and c.finish_reason == "eos"
    assert c.loss_mask.count(0) == len(reply) and c.token_ids[len(c.turns[0]["text"])] == EOS  # EOS is the model's
