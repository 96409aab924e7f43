"""`rlvr serve MODEL --port P`: a small OpenAI-compatible HTTP server over a local Hugging Face causal LM.

    rlvr serve runs/demo/final --port 8000
    curl -s localhost:8000/v1/chat/completions -d '{"messages": [{"role": "user", "content": "2+3"}]}'

Endpoints (the subset of the OpenAI API that judges and simple clients use):
    POST /v1/chat/completions   messages -> the tokenizer's chat template when it has one (with the generation
                                prompt), else the messages' contents joined by blank lines (a base model)
    POST /v1/completions        prompt (a string, or a list of strings) -> continuation
    GET  /v1/models, /health
Request fields read: max_tokens (default 256), temperature (0 = greedy, the default), top_p, n, stop (a string
or a list: the text is cut before the first), seed. A prompt that does not fit the model's context with
max_tokens is refused (HTTP 400), as OpenAI does; a malformed request is a 400 with an ``error`` object; a
failure while generating is a 500. Requests are served one generation at a time (a lock: the model is not
thread-safe), on as many connections as clients open (ThreadingHTTPServer), with the standard library only.
It is made for tests, local judges and small models, not throughput: use vLLM (`vllm serve`) for that.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("rlvr.serve")


class RequestError(ValueError):
    """A request the server refuses (HTTP 400)."""


class ModelServer:
    """A loaded model and tokenizer with OpenAI-style ``chat`` and ``complete`` methods (the HTTP layer's backend)."""

    def __init__(self, path: str | Path, *, device: str = "cpu", dtype: str = "float32", name: str = "",
                 max_tokens: int = 256, trust_remote_code: bool = False):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        path = str(Path(path).expanduser())
        self.name = name or Path(path).name
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype,
                                                          trust_remote_code=trust_remote_code).to(device).eval()
        self.device = device
        self.default_max_tokens = int(max_tokens)
        self.context = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)
        self.lock = threading.Lock()

    # -- prompts -----------------------------------------------------------------------------------------

    def chat_prompt(self, messages: Any) -> tuple[str, bool]:
        """(prompt text, whether to add the tokenizer's special tokens): the chat template, else plain text."""
        if not isinstance(messages, list) or not messages:
            raise RequestError("'messages' must be a non-empty list of {role, content}")
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("content"), str):
                raise RequestError("each message must be an object with a string 'content'")
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                [{"role": str(m.get("role", "user")), "content": m["content"]} for m in messages],
                tokenize=False, add_generation_prompt=True)
            return text, False  # the template carries the BOS text
        return "\n\n".join(m["content"] for m in messages), True

    # -- generation --------------------------------------------------------------------------------------

    def generate(self, prompt: str, body: dict, add_special_tokens: bool) -> list[dict[str, Any]]:
        """[{"text", "finish_reason", "prompt_tokens", "completion_tokens"}] for ``body["n"]`` samples."""
        import torch

        max_tokens = body.get("max_tokens", body.get("max_completion_tokens", self.default_max_tokens))
        temperature = body.get("temperature", 0.0)
        top_p = body.get("top_p", 1.0)
        n = body.get("n", 1)
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        seed = body.get("seed")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise RequestError(f"'max_tokens' must be a positive integer, got {max_tokens!r}")
        for key, value in (("temperature", temperature), ("top_p", top_p)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise RequestError(f"'{key}' must be a number >= 0, got {value!r}")
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 16:
            raise RequestError(f"'n' must be an integer in [1, 16], got {n!r}")
        if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
            raise RequestError("'stop' must be a string or a list of non-empty strings")
        ids = self.tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"]
        if self.context and len(ids) + max_tokens > self.context:
            raise RequestError(f"the prompt has {len(ids)} tokens; with max_tokens {max_tokens} that exceeds the "
                               f"model's context of {self.context} tokens")
        x = torch.tensor([ids], device=self.device)
        out = []
        with self.lock, torch.no_grad():
            if seed is not None:
                torch.manual_seed(int(seed))
            for k in range(n):
                sample = temperature > 0
                kwargs = dict(do_sample=True, temperature=float(temperature), top_p=float(top_p), top_k=0) \
                    if sample else dict(do_sample=False)
                gen = self.model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=max_tokens,
                                          pad_token_id=self.tokenizer.pad_token_id, **kwargs)[0, len(ids):]
                tokens = gen.tolist()
                eos = self.model.generation_config.eos_token_id
                eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
                ended = bool(tokens) and tokens[-1] in eos
                text = self.tokenizer.decode(tokens, skip_special_tokens=True)
                finish = "stop" if ended else "length"
                cut = min((text.find(s) for s in stop if s in text), default=-1)
                if cut >= 0:
                    text, finish = text[:cut], "stop"
                out.append({"text": text, "finish_reason": finish, "prompt_tokens": len(ids),
                            "completion_tokens": len(tokens), "first": k == 0})
        return out

    def chat(self, body: dict) -> dict[str, Any]:
        prompt, special = self.chat_prompt(body.get("messages"))
        samples = self.generate(prompt, body, special)
        return _envelope("chat.completion", self.name, samples, lambda k, s: {
            "index": k, "message": {"role": "assistant", "content": s["text"]}, "finish_reason": s["finish_reason"]})

    def complete(self, body: dict) -> dict[str, Any]:
        prompt = body.get("prompt")
        prompts = prompt if isinstance(prompt, list) else [prompt]
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise RequestError("'prompt' must be a string or a list of strings")
        samples = [s for p in prompts for s in self.generate(p, body, True)]
        return _envelope("text_completion", self.name, samples, lambda k, s: {
            "index": k, "text": s["text"], "logprobs": None, "finish_reason": s["finish_reason"]})


def _envelope(kind: str, model: str, samples: list[dict], choice) -> dict[str, Any]:
    prompt_tokens = sum(s["prompt_tokens"] for s in samples if s["first"])  # once per prompt, not per sample
    completion_tokens = sum(s["completion_tokens"] for s in samples)
    prefix = "chatcmpl" if kind == "chat.completion" else "cmpl"
    return {"id": f"{prefix}-{uuid.uuid4().hex[:24]}", "object": kind, "created": int(time.time()), "model": model,
            "choices": [choice(k, s) for k, s in enumerate(samples)],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def make_handler(backend: ModelServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:  # through logging, not stderr
            log.debug("%s " + fmt, self.address_string(), *args)

        def _send(self, code: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, code: int, message: str, kind: str) -> None:
            self._send(code, {"error": {"message": message, "type": kind, "code": code}})

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?")[0].rstrip("/")
            if path in ("/v1/models", "/models"):
                self._send(200, {"object": "list", "data": [{"id": backend.name, "object": "model",
                                                             "owned_by": "rlvr"}]})
            elif path == "/health":
                self._send(200, {"status": "ok"})
            else:
                self._error(404, f"no route GET {self.path}", "not_found")

        def do_POST(self) -> None:  # noqa: N802
            path = self.path.split("?")[0].rstrip("/")
            route = {"/v1/chat/completions": backend.chat, "/chat/completions": backend.chat,
                     "/v1/completions": backend.complete, "/completions": backend.complete}.get(path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if route is None:
                return self._error(404, f"no route POST {self.path}", "not_found")
            try:
                body = json.loads(raw.decode("utf-8") or "null")
                if not isinstance(body, dict):
                    raise RequestError("the request body must be a JSON object")
                self._send(200, route(body))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                self._error(400, f"the request body is not JSON: {err}", "invalid_request_error")
            except RequestError as err:
                self._error(400, str(err), "invalid_request_error")
            except Exception as err:  # noqa: BLE001 - a failed generation is the server's error, not the client's
                log.exception("generation failed")
                self._error(500, f"{type(err).__name__}: {err}", "server_error")

    return Handler


def make_server(backend: ModelServer, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """The HTTP server (not started: call ``serve_forever()``, e.g. in a thread); port 0 picks a free port."""
    server = ThreadingHTTPServer((host, port), make_handler(backend))
    server.daemon_threads = True
    return server
