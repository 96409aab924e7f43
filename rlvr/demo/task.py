"""The demo task: a 2-digit number then three 1-digit additions/subtractions, worked out step by step.

    question   "47+8-5+9"
    prompt     "47+8-5+9\n"                                               (PROMPT_TEMPLATE.format(question=...))
    completion "<think>47+8=55 55-5=50 50+9=59</think><answer>59</answer>"   (+ EOS)
    answer     "59"

Three chained operations, each with a carry or borrow about half the time, then copying the result into the
answer tag: a few "reasoning steps" in which a ~1M-parameter character model makes compounding mistakes after
a short supervised run. That leaves room for RL with a verifiable reward (the exact integer inside <answer>)
to improve it.

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
FIRST = (10, 99)  # range of the first operand (inclusive)
REST = (1, 9)  # range of the following operands
STEPS = 3  # operations per problem: "47+8-5+9" takes three
OPS = "+-"  # operators
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)


def make_problem(rng: random.Random, slip: float = 0.0, slip_rng: random.Random | None = None,
                 first: tuple[int, int] = FIRST) -> dict[str, Any]:
    """One problem x0 op1 x1 op2 x2 ... with every running result >= 0, and its worked solution.

    "47+8-5+9" -> "<think>47+8=55 55-5=50 50+9=59</think><answer>59</answer>", answer "59".
    slip: the probability that a step with a carry or a borrow drops it (the tens digit is copied unchanged:
    47+8=45, 50-7=53). The worked solution then carries on from the wrong value and ends in a wrong answer;
    "answer" is always the true result. The question and answer depend on ``rng`` only; slips are drawn from
    ``slip_rng`` (required when slip > 0), so the same problems come out for every slip rate.
    first: the range of the first operand (FIRST; (100, 999): three-digit starts the warm-up never saw).
    """
    if slip and slip_rng is None:
        raise ValueError("make_problem: slip > 0 needs its own slip_rng (drawing from rng would change the problems)")
    while True:
        value = start = rng.randint(*first)
        question, ops = str(value), []
        for _ in range(STEPS):
            op, x = rng.choice(OPS), rng.randint(*REST)
            value = value + x if op == "+" else value - x
            question += f"{op}{x}"
            ops.append((op, x))
            if value < 0:
                break
        if value >= 0:
            break
    shown, steps = start, []
    for op, x in ops:
        new = shown + x if op == "+" else shown - x
        if slip and slip_rng.random() < slip and carries(shown, op, x):
            new += -10 if op == "+" else 10
        steps.append(f"{shown}{op}{x}={new}")
        shown = new
    solution = f"<think>{' '.join(steps)}</think><answer>{shown}</answer>"
    return {"question": question, "answer": str(value), "solution": solution}


def carries(value: int, op: str, x: int) -> bool:
    """Whether ``value op x`` (x a digit) carries into or borrows from the tens digit: 47+8, 50-7."""
    units = value % 10
    return units + x >= 10 if op == "+" else units < x


def is_heldout(question: str) -> bool:
    """Whether ``question`` belongs to the held-out pool (a fixed hash split, independent of any seed)."""
    return zlib.crc32(question.encode()) % HELDOUT_MOD == 0


def generate(split: str, n: int, seed: int, slip: float = 0.0, first: tuple[int, int] = FIRST) -> list[dict[str, Any]]:
    """``n`` distinct problems of ``split`` ("train" or "heldout"), deterministic in ``seed``.

    Each row: question, answer (a decimal string), solution (the <think>/<answer> completion for SFT; with
    ``slip`` > 0 some solutions drop a carry or borrow, see make_problem: flawed demonstrations).
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    if not 0.0 <= slip <= 1.0:
        raise ValueError(f"slip must be in [0, 1], got {slip}")
    want_heldout = split == "heldout"
    rng = random.Random(f"{split}:{seed}")
    slip_rng = random.Random(f"{split}:{seed}:slip")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(rows) < n:
        row = make_problem(rng, slip, slip_rng, first)
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
