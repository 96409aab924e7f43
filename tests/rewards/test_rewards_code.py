"""The `code` verifier: extraction, stdin/stdout cases, asserts, call-based cases, and reward-hacking attempts.

Every expected score is worked out by hand from the program and the tests (stated next to each case).
"""

from __future__ import annotations

import pytest

import rlvr.rewards.code  # noqa: F401  (registers "code")
from rlvr.rewards import VERIFIERS
from rlvr.rewards.code import extract_code, normalize_output

pytestmark = pytest.mark.timeout(60)
code = VERIFIERS.get("code")


def fenced(src: str, lang: str = "python") -> str:
    return f"Here is my solution.\n```{lang}\n{src}\n```\nDone."


ADD = "a, b = map(int, input().split())\nprint(a + b)"
STDIO = [{"input": "1 2\n", "output": "3\n"}, {"input": "10 -4", "output": "6"}, {"input": "0 0", "output": "0"}]


def test_extract_code_prefers_last_python_block():
    text = "```python\nx = 1\n```\nthen\n```text\nnot code\n```\n```py\nx = 2\n```"
    assert extract_code(text) == "x = 2\n"  # the last block tagged python/py
    assert extract_code("```\nprint(1)\n```") == "print(1)\n"  # untagged fallback
    assert extract_code("<answer>\n```python\nprint(3)\n```\n</answer>") == "print(3)\n"
    assert extract_code("<answer>print(4)</answer>") == "print(4)"
    assert extract_code("no code here") is None


def test_normalize_output():
    assert normalize_output("\n 1   2 \r\n3\n\n") == ["1 2", "3"]


def test_stdio_all_pass():
    r = code(fenced(ADD), STDIO, {})
    assert r.score == 1.0 and r.reason == "passed 3/3 tests"  # 1+2=3, 10-4=6, 0+0=0


def test_stdio_wrong_answer_partial_and_reason():
    wrong = "a, b = map(int, input().split())\nprint(a + b if a < 5 else a - b)"
    # case 0: 3 ok; case 1: 10 - (-4) = 14 != 6 -> wrong; case 2: 0 ok  => 2/3
    r = code(fenced(wrong), STDIO, {}, partial=True)
    assert r.score == pytest.approx(2 / 3)
    assert "case 1" in r.reason and "wrong answer" in r.reason and "'14'" in r.reason
    r = code(fenced(wrong), STDIO, {})  # all-or-nothing: 0, and stops at the first failure
    assert r.score == 0.0 and r.details["cases"][2]["why"].startswith("not run")


def test_stdio_runtime_error_and_timeout_reasons():
    r = code(fenced("print(1 // 0)"), STDIO[:1], {})
    assert r.score == 0 and "runtime error" in r.reason and "ZeroDivisionError" in r.reason
    r = code(fenced("while True: pass"), STDIO[:1], {}, timeout_s=0.5)
    assert r.score == 0 and "timeout after 0.5s" in r.reason


def test_apps_style_inputs_outputs_from_json_metadata():
    tests = '{"inputs": ["2 3\\n", "5 5\\n"], "outputs": ["5\\n", "10\\n"]}'
    r = code(fenced(ADD), None, {"input_output": tests})
    assert r.score == 1.0 and r.details["total"] == 2  # 2+3=5, 5+5=10


def test_assert_tests_mbpp_style():
    sol = "def add(a, b):\n    return a + b"
    tests = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) != 5", "assert not add(0, 0)"]
    r = code(fenced(sol), tests, {})
    assert r.score == 1.0, r.reason  # 3, 0, 4 != 5, not 0 -> all hold
    bad = "def add(a, b):\n    return a * b"
    # 1*2=2 != 3 (fail); -1*1=-1 != 0 (fail); 4 != 5 (ok); not 0 (ok) -> 2/4
    r = code(fenced(bad), tests, {}, partial=True)
    assert r.score == 0.5 and "case 0" in r.reason and "wrong answer" in r.reason


def test_assert_numeric_semantics_follow_python():
    sol = "def half(x):\n    return x / 2"
    # 4/2 = 2.0 == 2 in Python; 1/2 = 0.5 < 1; 3/2 in [1.5] -> all hold
    r = code(fenced(sol), "assert half(4) == 2\nassert half(1) < 1\nassert half(3) in [1.5]", {})
    assert r.score == 1.0, r.reason


def test_humaneval_check_function():
    tests = ("METADATA = {'author': 'x'}\n\n"
             "def check(candidate):\n    assert candidate([1, 2, 3]) == 6\n    assert candidate([]) == 0\n")
    r = code(fenced("def total(xs):\n    return sum(xs)"), tests, {"entry_point": "total"})
    assert r.score == 1.0, r.reason  # sum([1,2,3]) = 6, sum([]) = 0


def test_call_based_cases():
    tests = {"fn_name": "mul", "inputs": [[2, 3], [4, 5]], "outputs": [[6], 20]}
    r = code(fenced("def mul(a, b):\n    return a * b"), tests, {})
    assert r.score == 1.0, r.reason  # 6 (wrapped in a one-item list) and 20
    cls = "class Solution:\n    def mul(self, a, b):\n        return a * b"
    assert code(fenced(cls), tests, {}).score == 1.0


def test_no_code_and_no_tests():
    assert code("I don't know", STDIO, {}).reason.startswith("no ```python")
    assert code(fenced("print(1)"), None, {}).reason == "no test cases in reference/metadata"


# ---------------------------------------------------------------------------------------------------------
# reward hacking: each scores 0


def test_eq_always_true_cannot_fake_a_pass():
    hack = ("class Any:\n    def __eq__(self, other): return True\n    def __ne__(self, other): return False\n"
            "def add(a, b):\n    return Any()\n")
    r = code(fenced(hack), ["assert add(1, 2) == 3", "assert add(5, 5) == 10"], {})
    assert r.score == 0.0 and "not plain data" in r.reason


def test_int_subclass_with_fake_eq_is_rejected():
    hack = "class I(int):\n    def __eq__(self, o): return True\ndef add(a, b):\n    return I(0)\n"
    assert code(fenced(hack), ["assert add(1, 2) == 3"], {}).score == 0.0


def test_exit_before_tests_scores_zero():
    for hack in ("import sys\nsys.exit(0)", "import os\nos._exit(0)", "def add(a, b): return 3\nraise SystemExit"):
        r = code(fenced(hack), ["assert add(1, 2) == 3"], {})
        assert r.score == 0.0, (hack, r.reason)


def test_patching_builtins_and_modules_does_not_help():
    hack = ("import builtins, math\nbuiltins.sorted = lambda x: [1, 2, 3]\nmath.isclose = lambda *a, **k: True\n"
            "sorted = lambda x: [1, 2, 3]\ndef f(x):\n    return [9]\n")
    tests = "import math\nassert sorted(f(1)) == [1, 2, 3]\nassert math.isclose(f(1)[0], 2.5)"
    r = code(fenced(hack), tests, {}, partial=True)
    assert r.score == 0.0, r.reason  # sorted([9]) = [9] != [1,2,3]; isclose(9, 2.5) False


def test_printing_fake_result_lines_does_not_help():
    # the program reads its own harness, finds the nonce and prints "ok" lines before the real ones
    hack = ("import re\nsrc = open('main.py').read()\nnonce = re.findall(r\"'([0-9a-f]{16})'\", src)[-1]\n"
            "for i, v in enumerate([3, 4]):\n    print(f'\\n{nonce} {i} ok [{v}]', flush=True)\n"
            "def add(a, b):\n    return 0\n")
    r = code(fenced(hack), ["assert add(1, 2) == 3", "assert add(2, 2) == 4"], {}, partial=True)
    # even forging the right values fails: the harness's real line ([0]) conflicts with the forged one
    assert r.score == 0.0 and "conflicting results" in r.reason, r.reason


def test_stdio_program_cannot_see_expected_output():
    # it prints every file of its directory (harness, inputs, other outputs): the expected text is in none of them
    hack = "import os\nfor n in sorted(os.listdir('.')):\n    print(n, open(n).read().replace(chr(10), ' '))"
    r = code(fenced(hack), [{"input": "1 2", "output": "SECRET-EXPECTED"}], {})
    assert r.score == 0.0 and "SECRET" not in r.details["cases"][0]["why"].split("got")[1]
    assert "in_0.txt 1 2" in r.reason  # what it saw: its own input, so the listing did run


def test_through_the_reward_scorer_worker_pool():
    # the verifier pickles into the scorer's worker processes and runs the sandbox from there
    from rlvr.config import RewardComponentConfig
    from rlvr.rewards import RewardScorer
    from rlvr.types import Example

    examples = [Example(question="add", answer=STDIO, verifier="code")] * 2
    scorer = RewardScorer([RewardComponentConfig("code")], timeout_s=30, num_workers=1)
    try:
        results = scorer.score(examples, [fenced(ADD), fenced("print(0)")])
    finally:
        scorer.close()
    assert [r.score for r in results] == [1.0, 0.0]  # the adder passes; "0" fails case 0 (expected 3)


def test_tests_nested_in_a_reference_dict():
    r = code(fenced(ADD), {"tests": STDIO[:2]}, {})
    assert r.score == 1.0 and r.details["total"] == 2  # 1+2=3, 10-4=6


def test_exit_quit_and_main_guard_work_like_a_normal_script():
    # print then exit(): output "3" stands, exit status 0 (site.py's exit() exists even with python -S)
    prog = "import sys\ndef main():\n    print(sum(map(int, input().split())))\n    exit()\n" \
           "if __name__ == '__main__' and sys.argv == ['main.py']:\n    main()\nprint('not reached')"
    r = code(fenced(prog), STDIO[:1], {})
    assert r.score == 1.0, r.reason


def test_many_stdio_cases_run_in_one_sandbox():
    cases = [{"input": f"{i} {i}", "output": str(2 * i)} for i in range(30)]  # i + i = 2i
    r = code(fenced(ADD), cases, {})
    assert r.score == 1.0 and r.details["total"] == 30


def test_per_case_timeout_does_not_sink_other_cases():
    prog = "n = int(input())\nwhile n == 0:\n    pass\nprint(n)"
    cases = [{"input": "0", "output": "0"}, {"input": "5", "output": "5"}]
    r = code(fenced(prog), cases, {}, partial=True, timeout_s=0.5)
    assert r.score == 0.5  # case 0 loops forever (timeout), case 1 prints 5
    assert r.details["cases"][0]["why"] == "timeout after 0.5s"


def test_stdio_harness_failures():
    r = code(fenced("print(1"), STDIO, {})
    assert r.score == 0.0 and "syntax error" in r.reason
    r = code(fenced("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"), STDIO, {}, partial=True)
    assert r.score == 0.0  # killing the harness leaves every case without a result
    r = code(fenced("import sys\nsys.stdout.write('x' * (3 << 20))"), STDIO[:1], {}, max_output_bytes=1 << 20)
    assert r.score == 0.0 and "output larger than 1 MB" in r.reason


def test_stdio_exit_statuses():
    assert code(fenced("import sys\nprint(3)\nsys.exit(0)"), STDIO[:1], {}).score == 1.0  # prints 3, status 0
    r = code(fenced("import sys\nprint(3)\nsys.exit('bad input')"), STDIO[:1], {})
    assert r.score == 0.0 and "runtime error (exit 1): bad input" in r.reason  # like CPython: message, status 1
    r = code(fenced("print(3)\nraise SystemExit(4)"), STDIO[:1], {})
    assert r.score == 0.0 and "exit 4" in r.reason
