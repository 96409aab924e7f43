"""`judge`: a reward from a language model behind an OpenAI-compatible endpoint (``POST /v1/chat/completions``).

    reward:
      components:
        - name: judge
          params: {base_url: "http://127.0.0.1:8000/v1", model: "Qwen2.5-7B-Instruct", score_parser: number}

The prompt is ``prompt_template`` with ``{question}``, ``{completion}`` and ``{answer}`` replaced (plain text
replacement, so other braces in the template are left alone). The question comes from ``metadata["question"]``
(or ``metadata["prompt"]``). Requests use temperature 0 and the standard library only (urllib).

``score_parser``:
    number     the number after the last "score:"/"rating:" in the reply, else the first number in
               [0, ``max_score``]; divided by ``max_score`` (default 10) -> [0, 1]
    yes_no     the first standalone "yes" (1.0) or "no" (0.0), case-insensitive
    regex:PAT  the first match of PAT (its first group if it has one) as a number, divided by ``max_score``
An unparsable reply scores 0 with the reply in the reason; an HTTP / network failure scores 0 after
``retries`` retries with exponential backoff (``backoff_s * 2**attempt``; 5xx, 429, timeouts and connection
errors are retried, other 4xx are not). At most ``concurrency`` requests per process are in flight at once
(one semaphore per process and endpoint), whatever the number of threads calling the verifier.
The API key is read from the environment variable named by ``api_key_env`` (never from the config file).
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from rlvr.rewards.base import VERIFIERS
from rlvr.types import RewardResult

DEFAULT_TEMPLATE = (
    "You are grading a response to a question.\n\n"
    "Question:\n{question}\n\n"
    "Reference answer:\n{answer}\n\n"
    "Response to grade:\n{completion}\n\n"
    "How correct is the response, from 0 (wrong) to 10 (fully correct)? "
    "Explain briefly, then end with a line 'Score: N'."
)

_NUMBER = r"[-+]?\d+(?:\.\d+)?"
_SCORE_TAG = re.compile(rf"(?:score|rating)\s*(?:is|of)?\s*[:=]?\s*\**\s*({_NUMBER})", re.IGNORECASE)
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)

_semaphores: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_sem_lock = threading.Lock()


class JudgeError(RuntimeError):
    """The endpoint could not give a usable reply (after retries)."""


def _semaphore(url: str, n: int) -> threading.BoundedSemaphore:
    with _sem_lock:
        return _semaphores.setdefault((url, n), threading.BoundedSemaphore(max(1, n)))


def chat_url(base_url: str) -> str:
    """``http://host:8000``, ``.../v1`` or ``.../v1/chat/completions`` -> the chat completions URL."""
    url = base_url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if not url.endswith("/v1"):
        url += "/v1"
    return url + "/chat/completions"


def parse_score(reply: str, parser: str = "number", max_score: float = 10.0) -> float | None:
    """The reply's score in [0, 1], or None when the reply holds none."""
    if parser == "yes_no":
        m = _YES_NO.search(reply)
        return None if m is None else float(m.group(1).lower() == "yes")
    if parser == "number":
        tagged = _SCORE_TAG.findall(reply)
        candidates = [float(tagged[-1])] if tagged else [float(x) for x in re.findall(_NUMBER, reply)]
        value = next((v for v in candidates if 0.0 <= v <= max_score), None)
    elif parser.startswith("regex:"):
        m = re.search(parser[len("regex:"):], reply, re.DOTALL)
        if m is None:
            return None
        try:
            value = float(m.group(1) if m.groups() else m.group(0))
        except (TypeError, ValueError):
            return None
    else:
        raise ValueError(f"unknown score_parser {parser!r}; choose number, yes_no or regex:<pattern>")
    if value is None:
        return None
    return min(1.0, max(0.0, value / max_score))


def chat(url: str, payload: dict, *, api_key: str | None, timeout_s: float, retries: int, backoff_s: float,
         concurrency: int, deadline: float | None = None) -> str:
    """POST ``payload`` and return ``choices[0].message.content``; raises JudgeError after the retries.

    deadline: a ``time.monotonic()`` time by which the attempts (and the backoff sleeps between them) must end:
    each attempt's timeout is cut to what is left, and no attempt starts after it (None = no overall bound)."""
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    last = "no attempt"
    attempts = 0
    start = time.monotonic()
    for attempt in range(int(retries) + 1):
        if attempt:
            pause = backoff_s * 2 ** (attempt - 1) * (1 + 0.1 * random.random())
            if deadline is not None and time.monotonic() + pause >= deadline:
                break
            time.sleep(pause)
        limit = timeout_s
        if deadline is not None:
            limit = min(timeout_s, deadline - time.monotonic())
            if limit <= 0.01:
                break
        attempts += 1
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with _semaphore(url, int(concurrency)):
                with urllib.request.urlopen(request, timeout=limit) as response:
                    data = json.loads(response.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as err:
            detail = err.read()[:200].decode("utf-8", "replace") if err.fp else ""
            last = f"HTTP {err.code} {detail}".strip()
            if err.code == 429 or err.code >= 500:
                continue
            raise JudgeError(last) from None
        except (TimeoutError, socket.timeout):
            last = f"timeout after {limit:.3g}s"
            continue
        except urllib.error.URLError as err:
            last = f"timeout after {limit:.3g}s" if isinstance(err.reason, (TimeoutError, socket.timeout)) \
                else f"connection error: {err.reason}"
            continue
        except (json.JSONDecodeError, ConnectionError, OSError) as err:
            last = f"bad response: {type(err).__name__}: {err}"
            continue
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise JudgeError(f"response has no choices[0].message.content: {str(data)[:200]}") from None
        return content if isinstance(content, str) else str(content)
    within = f" within {deadline - start:.3g}s" if deadline is not None else ""
    raise JudgeError(f"{last} (after {attempts} attempt{'s' if attempts != 1 else ''}{within})")


def judge_payload(model: str, prompt: str, system_prompt: str = "", max_tokens: int = 512) -> dict[str, Any]:
    """The chat-completions request of one judge prompt (temperature 0, an optional system message)."""
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
        [{"role": "user", "content": prompt}]
    return {"model": model, "messages": messages, "temperature": 0, "max_tokens": int(max_tokens)}


def ask_judge(prompt: str, *, base_url: str = "http://127.0.0.1:8000/v1", model: str = "default",
              api_key_env: str = "OPENAI_API_KEY", system_prompt: str = "", retries: int = 3, backoff_s: float = 1.0,
              timeout_s: float = 60.0, concurrency: int = 8, max_tokens: int = 512, **_: Any) -> str:
    """One judge prompt -> the judge's reply (the API key from ``api_key_env``); raises JudgeError. The
    defaults are the `judge` verifier's; other keyword arguments (a verifier's own params) are ignored."""
    return chat(chat_url(base_url), judge_payload(model, prompt, system_prompt, max_tokens),
                api_key=os.environ.get(api_key_env) or None, timeout_s=float(timeout_s), retries=int(retries),
                backoff_s=float(backoff_s), concurrency=int(concurrency))


@VERIFIERS.register("judge")
def judge(completion: str, reference: Any, metadata: dict, *, base_url: str = "http://127.0.0.1:8000/v1",
          model: str = "default", api_key_env: str = "OPENAI_API_KEY", prompt_template: str = DEFAULT_TEMPLATE,
          system_prompt: str = "", score_parser: str = "number", max_score: float = 10.0, retries: int = 3,
          backoff_s: float = 1.0, timeout_s: float = 60.0, concurrency: int = 8, max_tokens: int = 512,
          **_: Any) -> RewardResult:
    """Score from an LLM judge (OpenAI-compatible chat endpoint), parsed to [0, 1]."""
    metadata = metadata or {}
    question = str(metadata.get("question", metadata.get("prompt", "")))
    answer = "" if reference is None else (reference if isinstance(reference, str) else json.dumps(reference))
    prompt = (prompt_template.replace("{question}", question).replace("{answer}", answer)
              .replace("{completion}", completion))
    try:
        reply = ask_judge(prompt, base_url=base_url, model=model, api_key_env=api_key_env, system_prompt=system_prompt,
                          retries=retries, backoff_s=backoff_s, timeout_s=timeout_s, concurrency=concurrency,
                          max_tokens=max_tokens)
    except JudgeError as err:
        return RewardResult(0.0, reason=f"judge failed: {err}"[:300])
    score = parse_score(reply, score_parser, float(max_score))
    if score is None:
        return RewardResult(0.0, reason=f"unparsable judge reply: {reply[:200]!r}", details={"reply": reply[:2000]})
    return RewardResult(score, reason=f"judge score {score:g}", extracted=None, details={"reply": reply[:2000]})
