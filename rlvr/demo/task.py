"""The demo task: three-number addition/subtraction worked out in two steps.

    question   "47+38-19"
    prompt     "47+38-19\n"                                         (PROMPT_TEMPLATE.format(question=...))
    completion "<think>47+38=85 85-19=66</think><answer>66</answer>"  (+ EOS)
    answer     "66"

The model has to carry out two 2-digit operations left to right and copy the result into the answer tag, a
few "reasoning steps" that a ~1M-parameter character model gets partly right after a short supervised run,
which leaves room for RL with a verifiable reward (the exact integer inside <answer>) to improve it.

Problems come from a seeded `random.Random`, so a (split, n, seed) triple always gives the same list.
Train and held-out problems are disjoint by construction: a question belongs to the held-out pool exactly when
crc32(question) % HELDOUT_MOD == 0, and each split only keeps questions from its own pool.
"""

from __future__ import annotations

import json
import random
import re
import zlib
from pathlib import Path
from typing import Any

PROMPT_TEMPLATE = "{question}\n"
HELDOUT_MOD = 8  # 1 question in 8 belongs to the held-out pool
LOW, HIGH = 10, 99  # operand range (inclusive)
OPS = "+-"  # operators drawn for op1 and op2
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)


def make_problem(rng: random.Random) -> dict[str, Any]:
    """One problem: a op1 b op2 c with ops in {+, -}, every intermediate result and the answer >= 0."""
    while True:
        a, b, c = (rng.randint(LOW, HIGH) for _ in range(3))
        op1, op2 = rng.choice(OPS), rng.choice(OPS)
        s = a + b if op1 == "+" else a - b
        r = s + c if op2 == "+" else s - c
        if s >= 0 and r >= 0:
            break
    question = f"{a}{op1}{b}{op2}{c}"
    solution = f"<think>{a}{op1}{b}={s} {s}{op2}{c}={r}</think><answer>{r}</answer>"
    return {"question": question, "answer": str(r), "solution": solution}


def is_heldout(question: str) -> bool:
    """Whether ``question`` belongs to the held-out pool (a fixed hash split, independent of any seed)."""
    return zlib.crc32(question.encode()) % HELDOUT_MOD == 0


def generate(split: str, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` distinct problems of ``split`` ("train" or "heldout"), deterministic in ``seed``.

    Each row: question, answer (a decimal string), solution (the <think>/<answer> completion for SFT).
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    want_heldout = split == "heldout"
    rng = random.Random(f"{split}:{seed}")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(rows) < n:
        row = make_problem(rng)
        q = row["question"]
        if is_heldout(q) == want_heldout and q not in seen:
            seen.add(q)
            rows.append(row)
    return rows


def render_prompt(question: str) -> str:
    """The prompt the model sees (the same string the YAML's prompt.template renders)."""
    return PROMPT_TEMPLATE.format(question=question)


def extract_answer(completion: str) -> str | None:
    """The text of the last <answer>...</answer> tag, stripped, or None."""
    found = _ANSWER.findall(completion)
    return found[-1].strip() if found else None


def is_correct(completion: str, answer: str) -> bool:
    """Exact integer match of the <answer> tag with the reference (the demo's verifiable reward)."""
    got = extract_answer(completion)
    return got is not None and got == str(answer).strip()


def write_jsonl(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as JSON lines (the data format `rlvr.data` reads: question/answer fields)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with Path(path).open() as f:
        return [json.loads(line) for line in f if line.strip()]
