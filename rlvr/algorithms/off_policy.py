"""Asynchronous RL: the staleness bound and the decoupled PPO objective for groups sampled by older weights.

In an asynchronous run (docs/async.md) the batch trained at step n was sampled by a *behaviour* policy mu, the
weights of version v <= n - 1 (the trainer holds version n - 1 before its n-th update). Its staleness is
s = (n - 1) - v; a group is trained on only when s <= k (``async.max_staleness``), per sample.

Decoupled PPO (Hilton et al. 2022, "Batch size-invariance for policy optimization", arXiv:2110.00641; AReaL, Fu et
al. 2025, arXiv:2505.24298) separates the policy the clip is anchored to, the *proximal* policy pi_prox (here the
trainer's current weights before the update, recomputed on the batch: the ``old_logp`` pass), from the behaviour
policy mu that sampled (the engine's reported log-probs):

    r_t = pi_theta(o_t) / pi_prox(o_t)                         the PPO ratio, clipped to [1 - eps_low, 1 + eps_high]
    w_t = f(pi_prox(o_t) / mu(o_t))                            truncated (min(., C)) or masked (0 above C), detached
    L   = - agg_t( w_t * min(r_t A_t, clip(r_t, 1 - eps_low, 1 + eps_high) A_t) )

The trust region is kept around pi_prox, however old the sample; w corrects the expectation for sampling from
mu instead of pi_prox. f is `rollout_correction.rollout_is_weights` (the same truncate / mask modes as the
vLLM rollout correction; verl's rollout_corr_helper and AReaL's ``behav_imp_weight_cap``). It reduces to plain
PPO when mu = pi_prox (k = 0 with the policy as its own sampler: w = 1), and to the rollout-correction loss of
a synchronous vLLM run when only kernels differ (s = 0).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlvr.algorithms.losses import ppo_clip
from rlvr.algorithms.rollout_correction import rollout_is_weights


def staleness(versions: Tensor, current: int) -> Tensor:
    """(B,) weight versions that sampled each completion -> (B,) long staleness ``current - version``.

    ``current``: the version the trainer holds (n - 1 before step n's update). Raises ValueError when a version is
    newer than ``current`` (a sample from weights the trainer never had: a bookkeeping bug)."""
    versions = torch.as_tensor(versions, dtype=torch.long)
    out = current - versions
    if bool((out < 0).any()):
        raise ValueError(f"a sample's weight version {int(versions.max())} is newer than the trainer's {current}")
    return out


def within_staleness(versions: Tensor, current: int, max_staleness: int) -> Tensor:
    """(B,) bool: the samples whose staleness is at most ``max_staleness`` (k): the only ones trained on."""
    if max_staleness < 0:
        raise ValueError(f"max_staleness must be >= 0, got {max_staleness}")
    return staleness(versions, current) <= max_staleness


def staleness_histogram(stale: Tensor, max_staleness: int) -> dict[str, float]:
    """Counts of staleness 0 .. k among ``stale`` (B,) as {"async/staleness_hist_<s>": count}."""
    stale = torch.as_tensor(stale, dtype=torch.long)
    return {f"async/staleness_hist_{s}": float((stale == s).sum()) for s in range(max_staleness + 1)}


def decoupled_ppo_loss(
    logp: Tensor, prox_logp: Tensor, behav_logp: Tensor, advantages: Tensor, mask: Tensor, *,
    clip_low: float = 0.2, clip_high: float = 0.2, is_mode: str = "token_truncate", is_cap: float = 2.0,
    agg: str = "token-mean", **agg_kwargs,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The decoupled PPO loss (module docstring), to minimise.

    logp (B,T) log pi_theta with grad; prox_logp (B,T) log pi_prox (no grad); behav_logp (B,T) log mu, the sampler's
    log-probs; advantages (B,T); mask (B,T) bool response tokens. is_mode / is_cap: the weight f (ROLLOUT_IS_MODES;
    "none" gives w = 1, i.e. PPO against pi_prox without correcting for mu). Mask modes also drop the rejected
    tokens from the loss. agg / agg_kwargs: as `losses.ppo_clip`.
    Returns (loss 0-dim, metrics: ppo_clip's plus the weight's ``is_*`` / ``logprob_diff_*``)."""
    weights, keep, w_metrics = rollout_is_weights(prox_logp, behav_logp, mask, is_mode, is_cap)
    loss, metrics = ppo_clip(logp, prox_logp, advantages, keep, clip_low=clip_low, clip_high=clip_high, agg=agg,
                             is_weights=weights if is_mode != "none" else None, **agg_kwargs)
    return loss, {**metrics, **w_metrics}
