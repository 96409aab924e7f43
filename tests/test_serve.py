"""`rlvr serve`: the OpenAI-compatible server answers from the real (tiny) model, and the judges run against it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from rlvr.rewards.batch import ScoreBatch
from rlvr.rewards.judge import judge
from rlvr.rewards.pairwise import pairwise_judge
from rlvr.rewards.rubric import rubric_judge
from rlvr.serve import ModelServer, make_server
from rlvr.types import Example

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    backend = ModelServer(tiny_model_dir, name="tiny", max_tokens=16)
    httpd = make_server(backend, "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield backend, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def post(url: str, body, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def greedy(backend: ModelServer, text: str, special: bool, max_new: int) -> str:
    ids = backend.tokenizer(text, add_special_tokens=special, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = backend.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new,
                                     do_sample=False, pad_token_id=backend.tokenizer.pad_token_id)
    return backend.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_chat_and_completions_answer_from_the_model(server):
    backend, url = server
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+3="}]
    code, chat = post(url + "/v1/chat/completions", {"model": "tiny", "messages": messages, "max_tokens": 12})
    assert code == 200 and chat["object"] == "chat.completion" and chat["model"] == "tiny"
    templated = backend.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert chat["choices"][0]["message"] == {"role": "assistant", "content": greedy(backend, templated, False, 12)}
    assert chat["usage"]["completion_tokens"] <= 12
    code, comp = post(url + "/v1/completions", {"prompt": ["1+1=", "7-2="], "max_tokens": 8})
    assert code == 200
    assert [c["text"] for c in comp["choices"]] == [greedy(backend, p, True, 8) for p in ("1+1=", "7-2=")]
    assert comp["choices"][0]["finish_reason"] in ("stop", "length")
    # sampling with a seed is reproducible; n samples; stop strings cut the text
    body = {"prompt": "1+1=", "max_tokens": 10, "temperature": 1.0, "seed": 3, "n": 2}
    assert post(url + "/v1/completions", body)[1]["choices"] == post(url + "/v1/completions", body)[1]["choices"]
    text = greedy(backend, "1+1=", True, 10)
    if len(text) > 3:
        stop = text[2:4]
        cut = post(url + "/v1/completions", {"prompt": "1+1=", "max_tokens": 10, "stop": ["\u2603", stop]})[1]
        assert cut["choices"][0]["text"] == text[: text.find(stop)] and cut["choices"][0]["finish_reason"] == "stop"


def test_plain_concatenation_without_a_chat_template(server):
    backend, url = server
    template, backend.tokenizer.chat_template = backend.tokenizer.chat_template, None
    try:
        messages = [{"role": "user", "content": "1+"}, {"role": "user", "content": "2="}]
        code, chat = post(url + "/v1/chat/completions", {"messages": messages, "max_tokens": 6})
    finally:
        backend.tokenizer.chat_template = template
    assert code == 200 and chat["choices"][0]["message"]["content"] == greedy(backend, "1+\n\n2=", True, 6)


def test_bad_requests_are_clear_errors(server):
    _, url = server
    cases = [({"messages": []}, "messages"), ({"messages": [{"role": "user"}]}, "content"),
             ({"prompt": "x", "max_tokens": 0}, "max_tokens"), ({"prompt": "x", "temperature": -1}, "temperature"),
             ({"prompt": "x" * 600, "max_tokens": 8}, "context of 512")]
    for body, word in cases:
        route = "/v1/chat/completions" if "messages" in body else "/v1/completions"
        code, reply = post(url + route, body)
        assert code == 400 and word in reply["error"]["message"], (body, reply)
    code, reply = post(url + "/v1/completions", None, raw=b"{not json")
    assert code == 400 and "not JSON" in reply["error"]["message"]
    assert post(url + "/v1/nothing", {})[0] == 404
    with urllib.request.urlopen(url + "/v1/models", timeout=10) as response:
        assert json.loads(response.read())["data"][0]["id"] == "tiny"


def test_the_judges_run_against_the_served_model(server):
    """A real model behind HTTP: the tiny model's replies are nonsense, so each judge either parses a verdict or
    scores 0 with the reply in the reason; either way the same request gives the same (greedy) result."""
    _, url = server
    base = url + "/v1"
    one = judge("<answer>4</answer>", "4", {"question": "2+2"}, base_url=base, prompt_template="{completion}=",
                max_tokens=8, retries=0)
    assert one.reason.startswith(("judge score", "unparsable judge reply")) and "reply" in one.details
    assert judge("<answer>4</answer>", "4", {"question": "2+2"}, base_url=base, prompt_template="{completion}=",
                 max_tokens=8, retries=0).details == one.details
    ex = Example("2+2", None, prompt="2+2")
    batch = ScoreBatch([ex] * 3, ["4", "5", "22"], [{"question": "2+2", "sample_seed": 1}] * 3)
    template = "{question} A:{response_a} B:{response_b} [["
    out = pairwise_judge(batch, timeout_s=30, base_url=base, prompt_template=template, max_tokens=4, retries=0)
    assert sum(bool(r.details.get("brpo_reference")) for r in out) == 1
    for r in out:
        assert r.reason in ("brpo reference", "better than the reference", "worse than the reference",
                            "tied with the reference") or r.reason.startswith("unparsable judge reply")
    again = pairwise_judge(batch, timeout_s=30, base_url=base, prompt_template=template, max_tokens=4, retries=0)
    assert [r.reason for r in again] == [r.reason for r in out]
    graded = rubric_judge("4", None, {"question": "2+2", "rubric": ["is 4"]}, base_url=base,
                          prompt_template="{criteria}\n1: ", max_tokens=4, retries=0)
    assert graded.details["criteria"][0]["criterion"] == "is 4" and 0.0 <= graded.score <= 1.0


@pytest.mark.slow  # a subprocess importing torch and transformers: ~6 s idle, 20+ s on a busy machine
def test_rlvr_serve_command(tiny_model_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rlvr.cli", "serve", str(tiny_model_dir), "--port", "0",
                             "--name", "judge"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        line = ""
        for line in proc.stdout:
            if line.startswith("serving"):
                break
        assert line.startswith("serving judge on http://127.0.0.1:"), line
        base = line.split()[3]
        code, reply = post(base + "/chat/completions", {"messages": [{"role": "user", "content": "1+1="}],
                                                        "max_tokens": 4})
        assert code == 200 and reply["model"] == "judge"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_rlvr_serve_refuses_a_missing_model():
    from typer.testing import CliRunner

    from rlvr.cli import app

    bad = CliRunner().invoke(app, ["serve", "/no/such/model"])
    assert bad.exit_code == 2 and "model folder not found" in bad.output
