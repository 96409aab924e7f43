"""RayRewardGroup on the shared local Ray instance: same results as RewardScorer, timeouts inside the actors,
a killed worker restarted by Ray and its chunk retried, close() kills the actors."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

from rlvr.config import RewardComponentConfig as C
from rlvr.config import RewardConfig
from rlvr.distributed.cluster import DistributedError
from rlvr.distributed.reward import RayRewardGroup
from rlvr.rewards import RewardScorer
from rlvr.rewards.user import load_module_from_file
from rlvr.types import Example

ray = pytest.importorskip("ray")

PLUGIN = '''
import time
from rlvr.rewards import VERIFIERS
from rlvr.types import RewardResult


@VERIFIERS.register("_ray_spin")
def _ray_spin(completion, reference, metadata, **params):
    while completion == "spin":
        pass
    return RewardResult(1.0, reason="fine")


@VERIFIERS.register("_ray_slow")
def _ray_slow(completion, reference, metadata, **params):
    if completion == "slow":
        time.sleep(2.0)
    return RewardResult(float(completion == str(reference)), reason=f"pid={__import__('os').getpid()}")
'''

USER = '''
def digit_share(prompts, completions, answers, metadata):
    return [{"score": sum(ch.isdigit() for ch in c) / max(1, len(c)), "reason": f"{p}|{m['verifier']}"}
            for p, c, m in zip(prompts, completions, metadata)]
'''


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A verifier module registered here only (the actors import it by path) and a user reward file."""
    d = tmp_path_factory.mktemp("ray_reward")
    (d / "ray_plugin_verifiers.py").write_text(PLUGIN)
    (d / "user_reward.py").write_text(USER)
    load_module_from_file(d / "ray_plugin_verifiers.py")
    return d


def components():
    return [C("auto", 1.0), C("think_format", 0.5), C("user_reward.py:digit_share", 0.25)]


@pytest.fixture(scope="module")
def group(ray_address, files):
    """2 workers; built with a relative user spec from ``files`` (the actors' cwd is elsewhere)."""
    cwd = os.getcwd()
    os.chdir(files)
    try:
        g = RayRewardGroup(RewardConfig(components=components(), timeout_s=2.0, memory_limit_mb=2048), workers=2,
                           cpus=1.0)
    finally:
        os.chdir(cwd)
    yield g
    g.close()


def ex(answer, verifier="math", **metadata):
    return Example(question=f"q{answer}", answer=answer, verifier=verifier, metadata=metadata, prompt=f"P{answer}",
                   source="src", index=3)


def test_results_equal_reward_scorer(group, files, monkeypatch):
    same = ex("12")  # one example for several completions (a group), pickled once
    examples = [ex("4"), ex("4"), ex("4"), ex("\\frac{1}{2}"), ex("Paris", "exact_match"), ex("Paris", "exact_match"),
                ex("Paris", "exact_match"), same, same, ex("x", "mathh")]
    completions = ["<think>2+2</think><answer>4</answer>", "<answer>5</answer>", "I do not know",
                   "<think>half</think><answer>0.5</answer>", "<answer>paris</answer>", "<answer>Lyon</answer>", "",
                   "\\boxed{12}", None, "<answer>x</answer>"]
    extra = [{"completion_tokens": i} for i in range(len(completions))]
    out = group.score(examples, completions, extra)
    monkeypatch.chdir(files)  # RewardScorer resolves the relative user spec at score time
    with RewardScorer(components(), timeout_s=2.0, num_workers=1, memory_limit_mb=2048) as ref:
        expected = ref.score(examples, completions, extra)
    assert out == expected
    assert [r.components["auto"] for r in out] == [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert out[0].details["reasons"]["user_reward.py:digit_share"] == "P4|math"  # shown as configured here
    assert set(group.last_metrics) == {"time/reward_worker_max_s", "faults/reward_restarts"}
    assert group.last_metrics["faults/reward_restarts"] == 0.0
    assert 0.0 < group.last_metrics["time/reward_worker_max_s"] < 60.0
    # fewer items than workers, an empty batch, a length mismatch
    assert group.score(examples[:1], completions[:1]) == expected[:1]
    assert group.score([], []) == []
    with pytest.raises(ValueError):
        group.score(examples[:2], completions[:1])


def test_verifier_that_loops_forever_times_out(group):
    # worker 0 gets items 0..1: the spinning one first in its scorer's chunk, the next one re-queued after the kill
    examples = [ex("1", "_ray_spin"), ex("1", "_ray_spin"), ex("4"), ex("4")]
    t0 = time.monotonic()
    out = group.score(examples, ["spin", "ok", "<answer>4</answer>", "<answer>4</answer>"])
    assert time.monotonic() - t0 < 30
    assert out[0].components["auto"] == 0.0 and out[0].reason == "timeout after 2s"
    assert out[1].reason == "fine" and out[1].components["auto"] == 1.0
    assert out[2].components["auto"] == out[3].components["auto"] == 1.0
    assert group.last_metrics["faults/reward_restarts"] == 0.0  # a verifier process was replaced, not a worker


@pytest.fixture
def slow_group(ray_address, files):
    with RayRewardGroup(RewardConfig(components=[C("_ray_slow")], timeout_s=10.0), workers=2, cpus=0.5,
                        max_restarts=3) as g:
        yield g


def _until_killed(actor, token, wait_s=30.0):
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if ray.get(actor.ping.remote(), timeout=wait_s) != token:
                return  # already restarted
        except ray.exceptions.RayActorError:
            return  # dead or restarting
        time.sleep(0.05)
    raise AssertionError("ray.kill did not take effect")


def _check(out, answers):
    assert [r.score for r in out] == [1.0 if a == "ok" else 0.0 for a in answers]


def test_killed_worker_is_restarted_and_its_chunk_retried(slow_group, caplog):
    examples = [ex("ok") for _ in range(4)]
    answers = ["ok", "no", "ok", "ok"]
    _check(slow_group.score(examples, answers), answers)
    assert slow_group.last_metrics["faults/reward_restarts"] == 0.0
    caplog.set_level(logging.WARNING, logger="rlvr.distributed")

    # between calls. ray.kill returns before the actor is gone (a task sent at once may still reach the old
    # one): wait until the kill has landed, then the next call sees either the restarting actor or the new one
    before = ray.get(slow_group.actors[1].ping.remote())
    ray.kill(slow_group.actors[1], no_restart=False)
    _until_killed(slow_group.actors[1], before)
    t0 = time.monotonic()
    _check(slow_group.score(examples, answers), answers)
    first = time.monotonic() - t0
    assert slow_group.last_metrics["faults/reward_restarts"] >= 1
    assert any("reward worker 1" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)

    # during a slow call: worker 1 holds items 2..3, item 3 sleeps 2 s, killed 0.5 s in
    caplog.clear()
    answers = ["ok", "no", "ok", "slow"]
    killer = threading.Timer(0.5, lambda: ray.kill(slow_group.actors[1], no_restart=False))
    killer.start()
    t0 = time.monotonic()
    out = slow_group.score(examples, answers)
    second = time.monotonic() - t0
    killer.join()
    _check(out, answers)
    assert slow_group.last_metrics["faults/reward_restarts"] == 1.0
    assert slow_group.last_metrics["time/reward_worker_max_s"] >= 2.0  # the retried chunk, on the new actor
    assert any("reward worker 1 died" in r.getMessage() for r in caplog.records)
    print(f"call after a kill between calls: {first:.2f}s; slow call with a kill inside: {second:.2f}s;",
          [r.getMessage()[:90] for r in caplog.records])


def test_worker_that_cannot_be_restarted_raises_and_close_kills_the_actors(ray_address, files):
    g = RayRewardGroup(RewardConfig(components=[C("_ray_slow")]), workers=2, cpus=0.5, max_restarts=0)
    actors = list(g.actors)
    ray.kill(actors[0], no_restart=False)  # max_restarts=0: gone for good
    with pytest.raises(DistributedError, match="reward worker 0") as err:
        g.score([ex("ok"), ex("ok")], ["ok", "ok"])
    assert "\n" not in str(err.value)
    assert ray.get(actors[1].ping.remote(), timeout=30)  # the other one is still up ...
    g.close()
    g.close()  # idempotent
    for a in actors:  # ... and gone when close() returns, and not restarted
        for _ in range(3):
            with pytest.raises(ray.exceptions.RayActorError):
                ray.get(a.ping.remote(), timeout=30)
    with pytest.raises(DistributedError, match="after close"):
        g.score([ex("ok")], ["ok"])
