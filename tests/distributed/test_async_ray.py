"""Asynchronous RL on Ray (async.max_staleness with distributed.backend: ray): the producer drives the Ray rollout
workers and the reward workers, the FSDP2 trainer ranks take the snapshots and the round-trip probes. A fixed-mode
k = 1 run with 2 trainer ranks and 2 rollout workers samples the same completions, with the same versions, as the
one-machine async run (rollout process), and ends with weights within the FSDP tolerance of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlvr.config import config_from_dict
from rlvr.trainer import train
from tests.distributed.test_ray_training import WEIGHT_TOL, max_diff
from tests.trainer.test_async import STEPS, async_cfg, final


def rows(run: Path) -> list[tuple]:
    return [(r["step"], r["prompt"], r["completion"], r["reward"], r["version"])
            for r in map(json.loads, (run / "completions.jsonl").read_text().splitlines())]


@pytest.mark.slow  # ~35 s (two runs, one on Ray): .ci/run runs it with `pytest -m slow`
def test_fixed_k1_on_ray_matches_the_one_machine_async_run(tmp_path, tiny_model_dir, arithmetic_jsonl, ray_address):
    local = async_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl, "local", max_staleness=1)
    train(config_from_dict(local))
    on_ray = dict(async_cfg(tmp_path, tiny_model_dir, arithmetic_jsonl, "ray", max_staleness=1),
                  distributed={"backend": "ray", "address": ray_address, "trainer_workers": 2, "rollout_workers": 2,
                               "reward_workers": 1, "trainer_cpus": 0.5, "rollout_cpus": 0.5, "reward_cpus": 0.5})
    train(config_from_dict(on_ray))
    a, b = Path(local["output_dir"]), Path(on_ray["output_dir"])
    assert rows(a) == rows(b)
    assert {r[4] for r in rows(b) if r[0] == STEPS} == {STEPS - 2}  # batch n from version n - 2
    m = [json.loads(x) for x in (b / "metrics.jsonl").read_text().splitlines()]
    assert [x["async/staleness_max"] for x in m] == [0, 1, 1, 1]
    assert max_diff(final(a), final(b)) <= WEIGHT_TOL
