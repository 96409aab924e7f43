"""BRPO advantages and RLPR's std-EMA prompt filter, hand-computed."""

from __future__ import annotations

import pytest
import torch

from rlvr.algorithms import ADVANTAGES
from rlvr.algorithms.filters import std_ema_filter, zero_variance_groups
from rlvr.algorithms.presets import PRESETS
from rlvr.config import ConfigError, config_from_dict


def test_brpo_is_the_sign_of_the_pairwise_outcome():
    # group 0: reference (0), a win (+1), a loss (-1), a tie (0); group 1: reference, two wins, a loss;
    # group 2: all ties (0): nothing; group 3: all-equal non-zero rewards: exactly 0 too
    rewards = torch.tensor([0.0, 1.0, -1.0, 0.0, 0.0, 1.0, 1.0, -1.0, 0.0, 0.0, 0.7, 0.7])
    mask = torch.tensor([[1, 1, 0]] * 12, dtype=torch.bool)
    mask[3, 1:] = False
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3])
    adv, metrics = ADVANTAGES.get("brpo")(rewards, mask, groups)
    expected = torch.tensor([0.0, 1.0, -1.0, 0.0, 0.0, 1.0, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0])
    assert torch.equal(adv, expected[:, None] * mask)
    assert float(metrics["frac_ties"]) == pytest.approx(7 / 12)
    assert float(metrics["frac_zero_std_groups"]) == pytest.approx(2 / 4)
    # |r| <= eps is a tie
    adv, _ = ADVANTAGES.get("brpo")(torch.tensor([1e-9, -1e-9]), torch.ones(2, 1, dtype=torch.bool),
                                    torch.tensor([0, 0]), eps=1e-6)
    assert torch.equal(adv, torch.zeros(2, 1))


def test_std_ema_filter_by_hand():
    rewards = torch.tensor([[0.0, 1.0], [0.0, 0.3], [0.5, 0.5]])  # stds 0.7071, 0.2121, 0
    keep, ema = std_ema_filter(rewards, None, beta=0.5, decay=0.99)
    mean_std = (2 ** 0.5 / 2 + 0.3 / 2 ** 0.5) / 3  # 0.3064
    assert ema == pytest.approx(mean_std)
    assert keep.tolist() == [True, True, False]  # threshold 0.5 * 0.3064 = 0.1532
    keep, ema2 = std_ema_filter(torch.tensor([[0.0, 0.1], [0.0, 1.0]]), ema, beta=0.5, decay=0.99)
    batch = (0.1 / 2 ** 0.5 + 1 / 2 ** 0.5) / 2
    assert ema2 == pytest.approx(0.99 * mean_std + 0.01 * batch)
    assert keep.tolist() == [False, True]  # 0.0707 < 0.5 * 0.3073
    # composes with dynamic sampling: a group is kept when both keep it
    both = zero_variance_groups(rewards) & std_ema_filter(rewards, None)[0]
    assert both.tolist() == [True, True, False]


def test_std_filter_strict_threshold_edge():
    keep, ema = std_ema_filter(torch.tensor([[0.0, 2.0], [0.0, 0.0]]), None, beta=1.0)
    assert ema == pytest.approx(2 ** 0.5 / 2) and keep.tolist() == [True, False]


def test_presets_and_their_checks():
    assert PRESETS.get("writing_zero")["advantage"] == "brpo"
    assert PRESETS.get("rlpr")["std_filter"] is True
    base = {"model": {"path": "m"}, "data": {"source": "d.jsonl"}}
    with pytest.raises(ConfigError, match="add a pairwise_judge"):
        config_from_dict({**base, "algorithm": "writing_zero"})
    cfg = config_from_dict({**base, "algorithm": "writing_zero",
                            "reward": {"components": [{"name": "pairwise_judge"}]}})
    assert cfg.algorithm.advantage == "brpo"
    with pytest.raises(ConfigError, match="'think_format' has a non-zero weight"):
        config_from_dict({**base, "algorithm": "writing_zero",
                          "reward": {"components": [{"name": "pairwise_judge"}, {"name": "think_format"}]}})
    config_from_dict({**base, "algorithm": "writing_zero",
                      "reward": {"components": [{"name": "think_format", "weight": 0}, {"name": "pairwise_judge"}]}})
    with pytest.raises(ConfigError, match="rollout.n >= 2"):
        config_from_dict({**base, "rollout": {"n": 1}, "reward": {"components": [{"name": "pairwise_judge"}]}})
    with pytest.raises(ConfigError, match="Ray reward workers"):
        config_from_dict({**base, "distributed": {"backend": "ray"},
                          "reward": {"components": [{"name": "pairwise_judge"}]}})
    assert config_from_dict({**base, "algorithm": "rlpr"}).algorithm.std_filter_beta == 0.5
    with pytest.raises(ConfigError, match="std_filter_ema"):
        config_from_dict({**base, "algorithm": {"name": "rlpr", "std_filter_ema": 1.0}})
    with pytest.raises(ConfigError, match="std_filter_beta"):
        config_from_dict({**base, "algorithm": {"name": "rlpr", "std_filter_beta": 0}})
