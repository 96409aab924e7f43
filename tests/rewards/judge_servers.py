"""Local HTTP servers for judge tests: a scripted OpenAI-compatible judge, and ones that stall, return garbage or
fail with HTTP 500 (standard library only, 127.0.0.1, a free port)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class JudgeServer:
    """``reply(prompt) -> str`` answers each chat request, after ``mode``:

    ok        200 with an OpenAI chat completion holding the reply
    stall     sleeps ``delay`` seconds first (longer than the client's timeout)
    garbage   200 with a body that is not JSON
    http500   HTTP 500 every time
    flaky     HTTP 500 for the first ``fail_first`` requests, then ok
    Counts ``requests`` and the most requests in flight at once (``max_in_flight``); ``delay`` also slows ok.
    """

    def __init__(self, reply: Callable[[str], str] = lambda prompt: "[[A]]", mode: str = "ok", delay: float = 0.0,
                 fail_first: int = 0):
        self.reply, self.mode, self.delay, self.fail_first = reply, mode, delay, fail_first
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.prompts: list[str] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with outer.lock:
                    outer.requests += 1
                    k = outer.requests
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                if outer.delay:
                    time.sleep(outer.delay)
                if outer.mode == "http500" or (outer.mode == "flaky" and k <= outer.fail_first):
                    code, data = 500, b'{"error": "boom"}'
                elif outer.mode == "garbage":
                    code, data = 200, b"<html>this is not json"
                else:
                    prompt = body["messages"][-1]["content"]
                    with outer.lock:
                        outer.prompts.append(prompt)
                    code, data = 200, json.dumps({"choices": [{"index": 0, "finish_reason": "stop", "message": {
                        "role": "assistant", "content": outer.reply(prompt)}}]}).encode()
                with outer.lock:  # before the reply leaves: the client's next request may arrive right after it
                    outer.in_flight -= 1
                self._send(code, data)

            def _send(self, code, data):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a stall test)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "JudgeServer":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def responses(prompt: str) -> tuple[str, str]:
    """(Response A, Response B) out of a pairwise prompt made from the default template."""
    a = prompt.split("Response A:\n", 1)[1].split("\n\nResponse B:\n", 1)
    return a[0], a[1].split("\n\nWhich response is better?", 1)[0]


def prefers_shorter(prompt: str) -> str:
    """A deterministic judge: the shorter response wins, equal lengths tie."""
    a, b = responses(prompt)
    return "Shorter is better. [[A]]" if len(a) < len(b) else "[[B]]" if len(b) < len(a) else "[[C]]"
