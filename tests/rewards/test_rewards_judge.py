"""The `judge` verifier against a real HTTP server on 127.0.0.1 that returns canned chat completions.

Expected scores are the canned reply's number divided by 10 (or yes -> 1 / no -> 0), worked out by hand.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import rlvr.rewards.judge  # noqa: F401  (registers "judge")
from rlvr.rewards import VERIFIERS
from rlvr.rewards.judge import chat_url, parse_score

pytestmark = pytest.mark.timeout(60)
judge = VERIFIERS.get("judge")


class FakeJudge:
    """A scripted OpenAI-compatible server: each request pops the next (status, reply text, delay_s)."""

    def __init__(self):
        self.script: list[tuple[int, str, float]] = []
        self.default = (200, "Score: 5", 0.0)
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append(body)
                    fake.headers.append(dict(self.headers))
                    status, text, delay = fake.script.pop(0) if fake.script else fake.default
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                done = False
                try:
                    time.sleep(delay)
                    out = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
                    if status != 200:
                        out = b'{"error": "boom"}'
                    with fake.lock:  # before the reply: once the client has read it, it may send the next request
                        fake.in_flight -= 1
                        done = True
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    if not done:
                        with fake.lock:
                            fake.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    fake = FakeJudge()
    yield fake
    fake.close()


def test_parse_score():
    assert parse_score("Looks right. Score: 8") == 0.8
    assert parse_score("On a scale of 0 to 10 ... rating = 7/10") == 0.7  # the tagged number wins over "0"
    assert parse_score("I'd give it 9 out of 10") == 0.9  # first number in [0, 10]
    assert parse_score("Score: 42") is None  # out of range
    assert parse_score("no digits") is None
    assert parse_score("Yes, it is correct.", "yes_no") == 1.0
    assert parse_score("Verdict: NO.", "yes_no") == 0.0
    assert parse_score("grade=[3]", "regex:grade=\\[(\\d)\\]", 4) == 0.75  # 3 / 4
    with pytest.raises(ValueError):
        parse_score("x", "stars")


def test_chat_url():
    assert chat_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert chat_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_url("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"


def test_score_and_request_contents(server, monkeypatch):
    monkeypatch.setenv("RLVR_TEST_JUDGE_KEY", "sk-test")
    server.script = [(200, "The answer matches.\nScore: 7", 0.0)]
    r = judge("It is 4.", "4", {"question": "What is 2+2?"}, base_url=server.url, model="m1",
              api_key_env="RLVR_TEST_JUDGE_KEY", system_prompt="be strict")
    assert r.score == pytest.approx(0.7) and r.reason == "judge score 0.7"
    req = server.requests[0]
    assert req["model"] == "m1" and req["temperature"] == 0
    assert req["messages"][0] == {"role": "system", "content": "be strict"}
    user = req["messages"][1]["content"]
    assert "What is 2+2?" in user and "It is 4." in user and "Reference answer:\n4" in user
    assert server.headers[0]["Authorization"] == "Bearer sk-test"


def test_custom_template_and_yes_no(server):
    server.script = [(200, "yes", 0.0)]
    tpl = 'Q={question} A={answer} R={completion} json: {"keep": "braces"}'
    r = judge("x", "y", {"question": "q"}, base_url=server.url, prompt_template=tpl, score_parser="yes_no")
    assert r.score == 1.0
    assert server.requests[0]["messages"][0]["content"] == 'Q=q A=y R=x json: {"keep": "braces"}'


def test_retry_after_500(server):
    server.script = [(500, "", 0.0), (503, "", 0.0), (200, "Score: 10", 0.0)]
    r = judge("c", "a", {}, base_url=server.url, retries=3, backoff_s=0.01)
    assert r.score == 1.0 and len(server.requests) == 3  # two failures, then the reply


def test_gives_up_after_retries(server):
    server.script = [(500, "", 0.0)] * 5
    r = judge("c", "a", {}, base_url=server.url, retries=1, backoff_s=0.01)
    assert r.score == 0.0 and "HTTP 500" in r.reason and "after 2 attempts" in r.reason
    assert len(server.requests) == 2


def test_client_error_is_not_retried(server):
    server.script = [(400, "", 0.0), (200, "Score: 10", 0.0)]
    r = judge("c", "a", {}, base_url=server.url, retries=3, backoff_s=0.01)
    assert r.score == 0.0 and "HTTP 400" in r.reason and len(server.requests) == 1


def test_timeout(server):
    server.script = [(200, "Score: 10", 1.5)]
    t0 = time.monotonic()
    r = judge("c", "a", {}, base_url=server.url, timeout_s=0.3, retries=0)
    assert r.score == 0.0 and "timeout" in r.reason
    assert time.monotonic() - t0 < 1.4


def test_unparsable_reply_scores_zero_with_reason(server):
    server.script = [(200, "I cannot grade this.", 0.0)]
    r = judge("c", "a", {}, base_url=server.url)
    assert r.score == 0.0 and r.reason.startswith("unparsable judge reply") and "cannot grade" in r.reason


def test_connection_refused(server):
    url = server.url
    server.close()
    r = judge("c", "a", {}, base_url=url, retries=1, backoff_s=0.01, timeout_s=1)
    assert r.score == 0.0 and "connection error" in r.reason
    server.close = lambda: None  # already closed


def test_concurrency_limit_per_process(server):
    server.default = (200, "Score: 6", 0.15)
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda i: judge(f"c{i}", "a", {}, base_url=server.url, concurrency=2), range(6)))
    assert [r.score for r in results] == [pytest.approx(0.6)] * 6
    assert server.max_in_flight == 2  # 6 threads, never more than 2 requests at once
