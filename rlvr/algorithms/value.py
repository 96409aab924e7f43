"""PPO with a learned critic: token-level rewards, GAE advantages and returns, the clipped value loss.

    token_r = token_rewards(rewards, response_mask, token_kl, kl_coef)      # (B, T)
    adv, ret = gae(token_r, values, response_mask, gamma=1.0, lam=1.0)      # (B, T), (B, T)
    adv, metrics = ADVANTAGES["gae"](rewards, response_mask, group_ids, values=values, gamma=1.0, lam=1.0)
    loss, m = value_loss(new_values, old_values, returns, response_mask, clip_value=0.5, num_tokens=N)

Shapes: B completions, T response tokens (right-padded). ``values`` (B, T) is V(s_t), the critic's estimate at
the state that predicts response token t (the prompt and tokens < t), as in verl's ``values[:, -T-1:-1]``.

Masks may have holes (a multi-turn trajectory's observation tokens are context, not actions): GAE runs over the
model tokens only, as if the holes were not there. The last model token before a hole bootstraps from the value
of the next model token after it, and an advantage computed before the hole carries over it. This is what verl's
multi-turn GAE does (``compute_gae_advantage_return`` with a response mask that skips observations).

Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage Estimation"
(arXiv:1506.02438); the clipped value loss of PPO2 (OpenAI baselines; verl ``compute_value_loss``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlvr.algorithms.advantages import ADVANTAGES, _last_token_onehot, _metrics, _out_dtype, group_stats
from rlvr.algorithms.masks import masked_mean, masked_sum, masked_var, masked_whiten


def token_rewards(rewards: Tensor, response_mask: Tensor, token_kl: Tensor | None = None,
                  kl_coef: float = 0.0) -> Tensor:
    """r_t = R * 1[t = last model token] - kl_coef * kl_t on model tokens, 0 elsewhere.

    rewards: (B,) outcome rewards; response_mask: (B, T) bool; token_kl: (B, T) per-token KL of the sampling
    policy to the reference (e.g. k1 = logp_old - logp_ref), a constant; None or kl_coef 0 = no KL penalty
    (Ziegler et al. 2019's per-token KL in the reward). Returns (B, T) float64.
    """
    mask = response_mask.bool()
    zero = torch.zeros((), dtype=torch.float64, device=mask.device)
    r = torch.where(_last_token_onehot(mask), rewards.detach().to(torch.float64)[:, None], zero)
    if token_kl is not None and kl_coef:
        r = r - kl_coef * torch.where(mask, token_kl.detach().to(torch.float64), zero)
    return r


def gae(token_r: Tensor, values: Tensor, response_mask: Tensor, *, gamma: float = 1.0,
        lam: float = 1.0) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over the model tokens of each row, from the end backwards:

        delta_t = r_t + gamma * V(s_next(t)) - V(s_t)       next(t): the next model token (V = 0 past the last)
        A_t     = delta_t + gamma * lam * A_next(t)          returns G_t = A_t + V(s_t)

    Positions outside the mask (padding, observation tokens) get A = G = 0 and are skipped: their rewards and
    values are never read. With gamma = lam = 1, A_t = sum_{s >= t} r_s - V(s_t) (the Monte-Carlo return minus the
    baseline).

    token_r, values: (B, T) float; response_mask: (B, T) bool. Returns (advantages, returns), (B, T) float64,
    detached (constants of the losses).
    """
    mask = response_mask.bool()
    r = token_r.detach().to(torch.float64)
    v = values.detach().to(torch.float64)
    b, t_len = mask.shape
    next_value = torch.zeros(b, dtype=torch.float64, device=mask.device)
    next_adv = torch.zeros_like(next_value)
    adv = torch.zeros_like(r)
    for t in reversed(range(t_len)):
        valid = mask[:, t]
        delta = r[:, t] + gamma * next_value - v[:, t]
        a_t = delta + gamma * lam * next_adv
        adv[:, t] = torch.where(valid, a_t, torch.zeros_like(a_t))
        next_value = torch.where(valid, v[:, t], next_value)  # a hole passes the next model token's value on
        next_adv = torch.where(valid, a_t, next_adv)
    returns = torch.where(mask, adv + v, torch.zeros_like(adv))
    return adv, returns


@ADVANTAGES.register("gae")
def gae_advantages(
    rewards: Tensor,
    response_mask: Tensor,
    group_ids: Tensor,
    *,
    values: Tensor | None = None,
    token_kl: Tensor | None = None,
    kl_coef: float = 0.0,
    gamma: float = 1.0,
    lam: float = 1.0,
    norm_by_std: bool = True,
    eps: float = 1e-8,
    **_,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO's GAE with a learned critic (``values``, needs critic.path or critic.shared), whitened over the batch.

    Schulman et al. 2016 (arXiv:1506.02438) and PPO (arXiv:1707.06347). Token rewards: ``token_rewards`` (the
    outcome reward on the last model token, optional per-token KL penalty with kl_in: reward); advantages:
    ``gae``; then whitened over all valid tokens of the batch (``masked_whiten``, as verl) unless
    norm_by_std is false. No group baseline: group_ids only feed the frac_zero_std_groups metric.
    Besides the usual metrics, ``metrics["returns"]`` is the (B, T) returns tensor (the critic's targets), and
    returns_mean / returns_std / values_mean describe it.
    """
    if values is None:
        raise ValueError("the gae advantage needs the critic's values: set critic.path or critic.shared: true")
    mask = response_mask.bool()
    adv, returns = gae(token_rewards(rewards, mask, token_kl, kl_coef), values, mask, gamma=gamma, lam=lam)
    if norm_by_std:
        adv = masked_whiten(adv, mask, eps=eps)
    adv = adv.to(_out_dtype(rewards))
    _m, _s, _n, zero_std = group_stats(rewards, group_ids)
    metrics = _metrics(adv, mask, zero_std)
    metrics.update({
        "returns_mean": masked_mean(returns, mask).float(),
        "returns_std": masked_var(returns, mask).sqrt().float(),
        "values_mean": masked_mean(values.detach().to(torch.float64), mask).float(),
        "returns": returns.to(torch.float32),
    })
    return adv, metrics


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, response_mask: Tensor, *,
               clip_value: float = 0.0, num_tokens: int | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """The (clipped) value loss, token-mean (to minimise):

        V_clip = old_V + clip(V - old_V, -clip_value, clip_value)
        L      = 0.5 * sum_t max((V - G)^2, (V_clip - G)^2) / num_tokens        (clip_value 0: 0.5 (V - G)^2)

    values: (B, T) the critic's output now (with grad); old_values: (B, T) its output before the update (the ones
    GAE used); returns G: (B, T) constants. num_tokens: the denominator (the whole mini-batch's valid tokens for
    exact gradient accumulation); None = this call's valid tokens.
    -> loss 0-dim, metrics {value_clip_frac: share of tokens whose clipped term is the larger}.
    PPO2 (OpenAI baselines) / verl ``compute_value_loss``; Andrychowicz et al. 2020 found the clip rarely helps,
    so critic.clip_value 0 turns it off.
    """
    mask = response_mask.bool()
    g = returns.detach().to(values.dtype)
    err = (values - g) ** 2
    if clip_value > 0:
        old = old_values.detach().to(values.dtype)
        clipped = old + torch.clamp(values - old, -clip_value, clip_value)
        err_clipped = (clipped - g) ** 2
        token_loss = torch.maximum(err, err_clipped)
        clip_frac = masked_mean((err_clipped > err).to(values.dtype), mask).detach()
    else:
        token_loss = err
        clip_frac = values.new_zeros(())
    denom = num_tokens if num_tokens is not None else int(mask.sum())
    loss = 0.5 * masked_sum(token_loss, mask) / max(denom, 1)
    return loss, {"value_clip_frac": clip_frac}


def explained_variance(values: Tensor, returns: Tensor, response_mask: Tensor) -> Tensor:
    """1 - Var(G - V) / Var(G) over the valid tokens (0-dim float): 1 = the critic predicts the returns exactly,
    0 = no better than their mean, < 0 = worse (verl's ``critic/vf_explained_var``). Var(G) is floored at 1e-8,
    so a batch of equal returns gives 1 when V = G and a large negative number otherwise."""
    mask = response_mask.bool()
    g, v = returns.detach().to(torch.float64), values.detach().to(torch.float64)
    var_g = masked_var(g, mask)
    return (1.0 - masked_var(g - v, mask) / var_g.clamp(min=1e-8)).float()
