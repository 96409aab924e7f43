"""All-equal groups get exactly zero advantage, in float32 as in float64, for every estimator and preset.

Before the fix, float32 GRPO gave |A| = 0.48 to 16 copies of 10.3 (the sum missed the mean by one ulp and the
std was measured around the wrong mean, so A ~ delta / (delta + eps)).
"""

from __future__ import annotations

import dataclasses
import math
import types
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlvr.algorithms import ADVANTAGES, PRESETS, all_equal_groups, zero_variance_groups
from rlvr.config import AlgorithmConfig
from rlvr.types import RewardResult

DTYPES = (torch.float32, torch.float64)
GROUP_BASELINE = ("grpo", "dr_grpo", "rloo", "reinforce_pp_baseline")  # subtract a per-group mean
BATCH_WHITENED = ("reinforce_pp", "reinforce_pp_baseline", "gae")  # whiten over the batch's valid tokens


def _batch_baseline(name: str) -> bool:
    """No group baseline: the return (reinforce_pp; gae with V = 0 and gamma = lambda = 1) whitened over the batch."""
    return name in ("reinforce_pp", "gae")


def _configs() -> dict[str, tuple[str, dict]]:
    """Every registered estimator with every grpo option, plus the advantage settings of every preset."""
    out = {}
    for name in ADVANTAGES.names():
        for scale in ("group", "batch", "none"):
            for norm in (True, False):
                out[f"{name}/{scale}/norm={norm}"] = (name, {"scale": scale, "norm_by_std": norm, "eps": 1e-6})
    fields = {f.name for f in dataclasses.fields(AlgorithmConfig)}
    for preset in PRESETS.names():
        a = AlgorithmConfig(**{k: v for k, v in PRESETS.get(preset).items() if k in fields})
        out[f"preset:{preset}"] = (a.advantage, {"scale": a.adv_scale, "norm_by_std": a.norm_by_std, "eps": a.adv_eps})
    return out


CONFIGS = _configs()
# one call per distinct behaviour (the estimators other than grpo ignore scale / norm_by_std)
ESTIMATORS = sorted({(name, tuple(sorted(kw.items())) if name == "grpo" else (("eps", kw["eps"]),)): key
                     for key, (name, kw) in sorted(CONFIGS.items())}.items())
ESTIMATORS = [(key, (name, dict(kw))) for (name, kw), key in ESTIMATORS]


def _call(name, kwargs, rewards, mask, groups):
    values = torch.zeros(mask.shape, dtype=rewards.dtype)  # gae's critic: V = 0, so A = R - 0 on every token
    adv, metrics = ADVANTAGES.get(name)(rewards, mask, groups, token_kl=None, kl_coef=0.0, values=values, **kwargs)
    assert adv.dtype == rewards.dtype, (name, adv.dtype, rewards.dtype)
    return adv, metrics


def _mask(lengths, T):
    return torch.arange(T)[None, :] < torch.as_tensor(lengths)[:, None]


def test_every_estimator_and_preset_is_covered():
    assert {name for name, _ in CONFIGS.values()} == set(ADVANTAGES.names())
    assert {"preset:grpo", "preset:gspo", "preset:one_shot", "preset:dapo"} <= set(CONFIGS)


VALUES = [10.3, 1.1, 0.7, -99.69026947021484, 99.33128356933594, 1 / 3, -0.1, 100.0, -100.0, 0.0, 1.0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_constant_groups_of_every_size_2_to_64_get_exactly_zero(dtype):
    # one batch holding a group of every size 2..64 (2079 completions, ragged lengths)
    groups = torch.tensor([s for s in range(2, 65) for _ in range(s)])
    mask = _mask([1 + (i * 7) % 5 for i in range(len(groups))], 5)
    # every group at v (the 10.3, 1.1, 0.7 and others whose float32 sums round), then one value per group
    per_group = torch.empty(65, dtype=torch.float64).uniform_(-100, 100, generator=torch.Generator().manual_seed(1))
    batches = [torch.full((len(groups),), v, dtype=dtype) for v in VALUES] + [per_group[groups].to(dtype)]
    for b, rewards in enumerate(batches):
        for key, (name, kwargs) in ESTIMATORS:
            if b == len(VALUES) and _batch_baseline(name):
                continue  # no group baseline: only an all-equal batch is exactly 0
            adv, m = _call(name, kwargs, rewards, mask, groups)
            assert (adv == 0).all(), (key, rewards[0].item(), adv.abs().max().item())
            assert m["frac_zero_std_groups"].item() == 1.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_group_of_size_1(dtype):
    # size 1 follows verl (mean 0, std 1): no baseline, so grpo / dr_grpo / rloo return the reward itself
    # (grpo: r / (1 + eps)); the whitening estimators centre the lone value on itself: exactly 0
    mask, groups = torch.ones(1, 3, dtype=torch.bool), torch.zeros(1, dtype=torch.long)
    for v in VALUES:
        rewards = torch.tensor([v], dtype=dtype)
        for key, (name, kwargs) in ESTIMATORS:
            adv, m = _call(name, kwargs, rewards, mask, groups)
            if name in BATCH_WHITENED or name == "brpo":  # brpo: a lone completion has nothing to be compared with
                assert (adv == 0).all(), key
            else:
                std_div = name == "grpo" and kwargs["norm_by_std"] and kwargs["scale"] != "none"
                expected = rewards / (1 + kwargs["eps"]) if std_div else rewards
                assert torch.allclose(adv, expected[:, None].expand(1, 3), rtol=1e-6, atol=0), key
            assert m["frac_zero_std_groups"].item() == 1.0


@st.composite
def constant_groups(draw):
    """Several all-equal groups (sizes 2..64, values in [-100, 100]) with shuffled ids and ragged lengths.

    (Size 1 is ``test_group_of_size_1``: by verl's convention a lone completion has no baseline.)"""
    dtype = draw(st.sampled_from(DTYPES))
    width = 32 if dtype == torch.float32 else 64
    n_groups = draw(st.integers(1, 4))
    sizes = draw(st.lists(st.integers(2, 64), min_size=n_groups, max_size=n_groups))
    values = draw(st.lists(st.floats(-100, 100, width=width), min_size=n_groups, max_size=n_groups))
    ids = torch.tensor([g for g, n in enumerate(sizes) for _ in range(n)])
    rewards = torch.tensor([values[g] for g in ids.tolist()], dtype=dtype)
    perm = torch.randperm(len(ids), generator=torch.Generator().manual_seed(draw(st.integers(0, 2**16))))
    lengths = draw(st.lists(st.integers(1, 6), min_size=len(ids), max_size=len(ids)))
    return rewards[perm], ids[perm] * 10 + 3, _mask(lengths, 6)


@settings(max_examples=60, deadline=None)
@given(constant_groups())
def test_constant_groups_get_exactly_zero(data):
    rewards, groups, mask = data
    for key, (name, kwargs) in ESTIMATORS:
        if name in GROUP_BASELINE:
            adv, _ = _call(name, kwargs, rewards, mask, groups)
            assert (adv == 0).all(), (key, adv.abs().max().item())
    # no group baseline (reinforce_pp): exact zero when the whole batch shares one value
    same = torch.full_like(rewards, rewards[0].item())
    for key, (name, kwargs) in ESTIMATORS:
        adv, _ = _call(name, kwargs, same, mask, groups)
        assert (adv == 0).all(), (key, adv.abs().max().item())


def _reference(name, kwargs, rewards, groups, lengths):
    """Per-token advantages by the docstring formulas, in plain Python: means and variances in exact rationals
    (fractions.Fraction), so an all-equal group centres to exactly 0 without any special case."""
    r = [Fraction(float(x)) for x in rewards]
    g = [int(x) for x in groups]
    eps = kwargs["eps"]

    def mean_var(xs):
        mean = sum(xs, Fraction(0)) / len(xs)
        return mean, sum(((x - mean) ** 2 for x in xs), Fraction(0)) / max(len(xs) - 1, 1)

    def group(k):
        xs = [r[i] for i in range(len(r)) if g[i] == k]
        if len(xs) == 1:
            return Fraction(0), 1.0, 1
        mean, var = mean_var(xs)
        return mean, math.sqrt(var), len(xs)

    per_seq = []
    for i, x in enumerate(r):
        mean, std, n = group(g[i])
        centred = float(x - mean)
        if name == "grpo" and kwargs["norm_by_std"] and kwargs["scale"] == "group":
            a = centred / (std + eps)
        elif name == "grpo" and kwargs["norm_by_std"] and kwargs["scale"] == "batch":
            a = centred / (math.sqrt(mean_var(r)[1]) + eps)
        elif name == "rloo":
            a = centred * (n / (n - 1) if n > 1 else 1.0)
        elif _batch_baseline(name):  # no KL, V = 0: the return is R on every valid token, no group baseline
            a = x
        elif name == "brpo":  # the sign of the pairwise outcome; 0 in an all-equal group (size 1 included)
            flat = len({r[k] for k in range(len(r)) if g[k] == g[i]}) == 1
            a = 0.0 if flat or abs(x) <= eps else math.copysign(1.0, x)
        else:  # grpo without std, dr_grpo, reinforce_pp_baseline
            a = centred
        per_seq.append(Fraction(a))
    tokens = [per_seq[i] for i in range(len(r)) for _ in range(lengths[i])]
    if name in BATCH_WHITENED:  # whiten over all valid tokens
        mean, var = mean_var(tokens)
        return [float(t - mean) / math.sqrt(float(var) + eps) for t in tokens]
    return [float(t) for t in tokens]


@pytest.mark.parametrize("dtype", DTYPES)
def test_mixed_batch_constant_groups_zero_others_match_float64(dtype):
    # groups 0, 2, 4 all-equal (values whose float32 sums round), 1, 3 not; ids interleaved, ragged lengths
    spec = {0: [10.3] * 16, 1: [1.0, 0.0, 0.3, 1.1, 0.7], 2: [1.1] * 7, 3: [-99.7, 100.0, 3.25], 4: [0.7] * 3}
    order = [(k, v) for k, vs in spec.items() for v in vs]
    perm = torch.randperm(len(order), generator=torch.Generator().manual_seed(0)).tolist()
    groups = torch.tensor([order[p][0] for p in perm])
    rewards = torch.tensor([order[p][1] for p in perm], dtype=dtype)
    lengths = [1 + (i * 5) % 4 for i in range(len(perm))]
    mask = _mask(lengths, 4)
    constant = torch.isin(groups, torch.tensor([0, 2, 4]))
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    for key, (name, kwargs) in ESTIMATORS:
        adv, m = _call(name, kwargs, rewards, mask, groups)
        expected = torch.tensor(_reference(name, kwargs, rewards, groups, lengths), dtype=torch.float64)
        assert torch.allclose(adv[mask].double(), expected, **tol), key
        if name in ("grpo", "dr_grpo", "rloo"):
            assert (adv[constant] == 0).all(), key  # not just close: exactly zero
        assert m["frac_zero_std_groups"].item() == pytest.approx(3 / 5)


def test_int_rewards_give_float32():
    adv, _ = ADVANTAGES.get("grpo")(torch.tensor([1, 1, 0, 1]), torch.ones(4, 2, dtype=torch.bool),
                                    torch.tensor([0, 0, 1, 1]))
    assert adv.dtype == torch.float32 and (adv[:2] == 0).all()


def test_frac_reward_zero_std_agrees_with_the_dynamic_sampling_filter():
    from rlvr.trainer.loop import reward_metrics

    rewards = torch.tensor([[10.3] * 16, [1.0] * 8 + [0.0] * 8, [1.1] * 16], dtype=torch.float32)
    keep = zero_variance_groups(rewards)
    assert keep.tolist() == [False, True, False] and (all_equal_groups(rewards) == ~keep).all()
    cfg = types.SimpleNamespace(rollout=types.SimpleNamespace(n=16), reward=types.SimpleNamespace(correct_threshold=1.0))
    batch = types.SimpleNamespace(rewards=rewards.flatten(), response_mask=torch.ones(48, 3, dtype=torch.bool),
                                  truncated=torch.zeros(48, dtype=torch.bool))
    results = [RewardResult(score=float(x)) for x in rewards.flatten()]
    metrics = reward_metrics(cfg, batch, None, results)
    assert metrics["frac_reward_zero_std"] == pytest.approx(float((~keep).float().mean())) == pytest.approx(2 / 3)
