"""Verifiers that misbehave on purpose, for the scorer tests (workers import this file by path)."""

import os
import time

from rlvr.rewards import VERIFIERS
from rlvr.types import RewardResult


@VERIFIERS.register("_test_raise")
def _test_raise(completion, reference, metadata, **params):
    raise RuntimeError("boom")


@VERIFIERS.register("_test_hang")
def _test_hang(completion, reference, metadata, **params):
    if completion == "hang":
        time.sleep(600)
    return RewardResult(1.0, reason="fine")


@VERIFIERS.register("_test_crash")
def _test_crash(completion, reference, metadata, **params):
    if completion == "crash":
        os._exit(3)
    return RewardResult(1.0, reason="fine")


@VERIFIERS.register("_test_memory")
def _test_memory(completion, reference, metadata, **params):
    block = bytearray(3 * 1024**3)  # 3 GiB: over the worker's address-space limit
    return RewardResult(float(len(block) > 0))


@VERIFIERS.register("_test_nan")
def _test_nan(completion, reference, metadata, **params):
    return RewardResult(float("nan"), reason="oops")


@VERIFIERS.register("_test_echo")
def _test_echo(completion, reference, metadata, **params):
    """Score = params["value"]; reason shows what reached the worker."""
    return RewardResult(float(params.get("value", 1.0)), reason=f"tokens={metadata.get('completion_tokens')}")
