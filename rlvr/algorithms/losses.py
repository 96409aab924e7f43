"""Policy-gradient losses of the GRPO family (to minimise), aggregated to one number.

    loss, metrics = POLICY_LOSSES[name](logp, old_logp, advantages, response_mask,
                                        clip_low=0.2, clip_high=0.2, dual_clip=0.0,
                                        agg="token-mean", agg_norm_len=1, num_seqs=None, num_tokens=None,
                                        is_weights=None)

    logp:       (B, T) log pi_theta of the sampled tokens (with grad).
    old_logp:   (B, T) log pi_old (the policy that sampled, or the one before this epoch's updates), no grad.
    advantages: (B, T) constants (see advantages.py).
    response_mask: (B, T) bool.   agg / agg_norm_len / num_seqs / num_tokens: see aggregate.py.
    is_weights: (B, T) or None: rollout-correction importance weights (rollout_correction.rollout_is_weights,
                w = f(pi_old / pi_rollout)); they multiply the per-token loss before aggregation,
                L = agg_t(w_t * L_t), and are detached (no gradient flows into them).  None (the default) leaves
                the loss bit-identical to the uncorrected one.  The clip metrics do not depend on them.
    -> loss 0-dim, metrics {clip_frac_low, clip_frac_high, clip_frac, dual_clip_frac, ratio_mean, ratio_max,
       ppo_kl} as 0-dim detached tensors (token fractions over the valid tokens of this call).

Metrics follow TRL's clip_ratio/{low,high,region}: a token is "low clipped" when rho < 1 - clip_low and A < 0,
"high clipped" when rho > 1 + clip_high and A > 0 (exactly the tokens whose gradient the clip removes).
Why the loss is ~0 at the first epoch: rho = 1, so the loss is -mean(A), and group-centred advantages have
mean ~0; the gradient, -mean(A * grad log pi), is not zero.  See docs/algorithms.md.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlvr.algorithms.aggregate import AGGREGATIONS
from rlvr.algorithms.masks import masked_mean
from rlvr.registry import Registry

POLICY_LOSSES = Registry("policy loss")

LOG_RATIO_CLAMP = 20.0  # verl clamps log(rho) to +-20 before exp: exp(20) ~ 5e8, no inf


def _apply_is_weights(token_loss: Tensor, is_weights: Tensor | None, mask: Tensor) -> Tensor:
    """w_t * L_t on the valid tokens (w detached; whatever w holds outside ``mask`` is ignored)."""
    if is_weights is None:
        return token_loss
    if is_weights.shape != token_loss.shape:
        raise ValueError(f"is_weights must have the shape {tuple(token_loss.shape)}, got {tuple(is_weights.shape)}")
    zero = torch.zeros((), dtype=token_loss.dtype, device=token_loss.device)
    w = torch.where(mask, is_weights.detach().to(token_loss.dtype), zero)
    return token_loss * w


def _token_ratio(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor):
    """(zero, log rho, rho, A) on the valid tokens, (B, T) each: log rho = clamp(logp - old, +-20), 0 and A = 0
    outside ``mask``; old_logp and advantages detached."""
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    log_ratio = torch.where(mask, logp - old_logp.detach(), zero).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    adv = torch.where(mask, advantages.detach().to(logp.dtype), zero)
    return zero, log_ratio, torch.exp(log_ratio), adv


def clipped_pg_loss(
    ratio: Tensor, advantages: Tensor, clip_low: float, clip_high: float, dual_clip: float = 0.0
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-token clipped surrogate (to minimise), with clip-higher and optional dual clip.

        L_t = max(-A rho, -A clip(rho, 1 - clip_low, 1 + clip_high))            (PPO, Schulman et al. 2017;
                                                                                  clip-higher: DAPO, Yu et al. 2025)
        if dual_clip > 1 and A < 0:  L_t = min(L_t, -A * dual_clip)             (dual clip, Ye et al. 2020,
                                                                                  arXiv:1912.09729; verl clip_ratio_c)
    ratio, advantages: (B, T).  Returns the loss (B, T), the dual-clip-active flag (B, T) bool, and the
    clipped surrogate before dual clip (B, T).
    """
    pg_unclipped = -advantages * ratio
    pg_clipped = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(pg_unclipped, pg_clipped)
    dual_active = torch.zeros_like(loss, dtype=torch.bool)
    if dual_clip > 1.0:
        bound = -advantages * dual_clip
        dual_active = (advantages < 0) & (loss > bound)
        loss = torch.where(dual_active, bound, loss)
    return loss, dual_active, pg_clipped


def _clip_metrics(
    ratio: Tensor, log_ratio: Tensor, advantages: Tensor, mask: Tensor, clip_low: float, clip_high: float,
    dual_active: Tensor,
) -> dict[str, Tensor]:
    ratio, log_ratio = ratio.detach(), log_ratio.detach()
    low = (ratio < 1.0 - clip_low) & (advantages < 0)
    high = (ratio > 1.0 + clip_high) & (advantages > 0)
    ratio_max = torch.where(mask, ratio, ratio.new_zeros(())).max()  # ratios are > 0: an empty mask gives 0
    return {
        "clip_frac_low": masked_mean(low.to(ratio.dtype), mask),
        "clip_frac_high": masked_mean(high.to(ratio.dtype), mask),
        "clip_frac": masked_mean((low | high).to(ratio.dtype), mask),
        "dual_clip_frac": masked_mean(dual_active.to(ratio.dtype), mask),
        "ratio_mean": masked_mean(ratio, mask),
        "ratio_max": ratio_max,
        "ppo_kl": masked_mean(-log_ratio, mask),  # k1 estimate of KL(pi_old || pi_theta)
    }


@POLICY_LOSSES.register("ppo_clip")
def ppo_clip(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float = 0.0,
    agg: str = "token-mean",
    agg_norm_len: int = 1,
    num_seqs: int | Tensor | None = None,
    num_tokens: int | Tensor | None = None,
    is_weights: Tensor | None = None,
    **_,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Token-level PPO clipped surrogate with clip_low / clip_high (DAPO clip-higher) and dual clip.

    rho_t = exp(clamp(logp_t - old_logp_t, -20, 20));  L = agg_t(clipped_pg_loss(rho, A)).
    GRPO (arXiv:2402.03300) / DAPO (arXiv:2503.14476) / verl "vanilla" policy loss.
    is_weights (B, T), optional: rollout-correction weights, L = agg_t(w_t * L_t) with w detached
    (Yao et al. 2025 TIS/MIS; see rollout_correction.py).  None: no correction, the same result as without it.
    """
    mask = response_mask.bool()
    zero, log_ratio, ratio, adv = _token_ratio(logp, old_logp, advantages, mask)
    token_loss, dual_active, _ = clipped_pg_loss(ratio, adv, clip_low, clip_high, dual_clip)
    token_loss = _apply_is_weights(token_loss, is_weights, mask)
    loss = AGGREGATIONS.get(agg)(token_loss, mask, norm_len=agg_norm_len, num_seqs=num_seqs, num_tokens=num_tokens)
    return loss, _clip_metrics(ratio, log_ratio, adv, mask, clip_low, clip_high, dual_active)


@POLICY_LOSSES.register("gspo")
def gspo(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    *,
    clip_low: float = 3e-4,
    clip_high: float = 4e-4,
    dual_clip: float = 0.0,
    agg: str = "seq-mean-token-mean",
    agg_norm_len: int = 1,
    num_seqs: int | Tensor | None = None,
    num_tokens: int | Tensor | None = None,
    is_weights: Tensor | None = None,
    **_,
) -> tuple[Tensor, dict[str, Tensor]]:
    """GSPO: clip the sequence-level ratio s_i = exp((1/|o_i|) sum_t log rho_it) instead of per-token ratios.

    Zheng et al. 2025, "Group Sequence Policy Optimization" (arXiv:2507.18071), token form (GSPO-token):
        log s_it = sg[log s_i] + logp_t - sg[logp_t]    (value s_i, gradient s_i * grad logp_t)
    so with advantages constant over a sequence and agg = seq-mean-token-mean this is exactly the paper's
    sequence objective.  Paper clip range: 3e-4 / 4e-4.  The sequence log-ratio is clamped to +-20.
    Deviation: dual_clip is honoured if given (the paper has none).
    is_weights (B, T), optional: rollout-correction weights, L = agg_t(w_t * L_t) with w detached (a sequence
    mode of rollout_correction.py gives each sequence one weight, which then scales its sequence objective).
    None: no correction, the same result as without it.
    """
    mask = response_mask.bool()
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    logp_valid = torch.where(mask, logp, zero)
    log_ratio = torch.where(mask, logp - old_logp.detach(), zero)
    lengths = mask.sum(dim=-1).clamp(min=1).to(logp.dtype)
    log_s = (log_ratio.sum(dim=-1) / lengths).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)  # (B,)
    log_s_tok = log_s.detach()[:, None] + logp_valid - logp_valid.detach()  # (B, T)
    ratio = torch.exp(torch.where(mask, log_s_tok, zero))
    adv = torch.where(mask, advantages.detach().to(logp.dtype), zero)
    token_loss, dual_active, _ = clipped_pg_loss(ratio, adv, clip_low, clip_high, dual_clip)
    token_loss = _apply_is_weights(token_loss, is_weights, mask)
    loss = AGGREGATIONS.get(agg)(token_loss, mask, norm_len=agg_norm_len, num_seqs=num_seqs, num_tokens=num_tokens)
    metrics = _clip_metrics(ratio, log_ratio, adv, mask, clip_low, clip_high, dual_active)
    return loss, metrics


def token_covariance(logp: Tensor, advantages: Tensor, mask: Tensor, eps: float = 0.0) -> Tensor:
    """cov_t = (A_t - mean_m(A)) * (sg logp_t - mean_m(sg logp)) over the valid tokens of this call, (B, T).

    Cui et al. 2025, "The Entropy Mechanism of RL for Reasoning LMs" (arXiv:2505.22617): under policy gradient the
    entropy change is ~ -Cov(logp, A), so the few tokens of highest covariance drive the collapse.  The means are
    masked means with denominator (sum m + eps): eps = 1e-8 in verl's clip_cov, 0 (exact) in its kl_cov.
    Tokens outside ``mask`` get cov 0 (they are never candidates).
    """
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    lp = torch.where(mask, logp.detach(), zero)
    adv = torch.where(mask, advantages, zero)
    count = mask.sum().to(logp.dtype) + eps
    count = count if eps > 0 else count.clamp(min=1)
    cov = (adv - adv.sum() / count) * (lp - lp.sum() / count)
    return torch.where(mask, cov, zero)


def _cov_metrics(ratio: Tensor, log_ratio: Tensor, adv: Tensor, mask: Tensor, clip_low: float, clip_high: float,
                 picked: Tensor, cov: Tensor) -> dict[str, Tensor]:
    """The clip metrics (no dual clip) plus cov_selected_frac (picked / valid tokens) and cov_mean."""
    return {**_clip_metrics(ratio, log_ratio, adv, mask, clip_low, clip_high, torch.zeros_like(mask)),
            "cov_selected_frac": masked_mean(picked.to(ratio.dtype), mask), "cov_mean": masked_mean(cov, mask)}


@POLICY_LOSSES.register("clip_cov")
def clip_cov(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    cov_ratio: float = 2e-4,
    cov_lb: float = 1.0,
    cov_ub: float = 5.0,
    generator: torch.Generator | None = None,
    agg: str = "token-mean",
    agg_norm_len: int = 1,
    num_seqs: int | Tensor | None = None,
    num_tokens: int | Tensor | None = None,
    is_weights: Tensor | None = None,
    **_,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clip-Cov (Cui et al. 2025, arXiv:2505.22617; verl core_algos.compute_policy_loss_clip_cov).

        pg1 = -A rho,  pg2 = -A clip(rho, 1 - clip_low, 1 + clip_high)
        candidates: valid tokens not already clipped (pg2 <= pg1) with cov_lb < cov_t < cov_ub (token_covariance,
                    eps 1e-8)
        pick n = max(int(cov_ratio * sum m), 1) candidates uniformly (torch.randperm over the candidates in
                    row-major order, drawn from ``generator``); their loss is zeroed (the gradient detached) but
                    they stay in the aggregation's denominator
        L = agg_t(max(pg1, pg2) * corr)
    No dual clip (as verl).  The paper's 7B recipe sets clip_low = clip_high = 1 (no ordinary clipping).
    Extra metrics: cov_selected_frac (picked / valid tokens), cov_mean (mean token covariance).
    """
    mask = response_mask.bool()
    zero, log_ratio, ratio, adv = _token_ratio(logp, old_logp, advantages, mask)
    surrogate, _, pg_clipped = clipped_pg_loss(ratio, adv, clip_low, clip_high)  # max(pg1, pg2), pg2
    cov = token_covariance(logp, adv, mask, eps=1e-8)
    candidates = mask & (pg_clipped <= -adv * ratio) & (cov > cov_lb) & (cov < cov_ub)
    flat = candidates.flatten().nonzero().squeeze(-1)
    picked = torch.zeros_like(mask)
    n_valid = int(mask.sum())
    if n_valid and len(flat):
        n = max(int(cov_ratio * n_valid), 1)
        order = torch.randperm(len(flat), generator=generator)[:n].to(flat.device)
        picked.view(-1)[flat[order]] = True
    token_loss = torch.where(picked, zero, surrogate)
    token_loss = _apply_is_weights(token_loss, is_weights, mask)
    loss = AGGREGATIONS.get(agg)(token_loss, mask, norm_len=agg_norm_len, num_seqs=num_seqs, num_tokens=num_tokens)
    return loss, _cov_metrics(ratio, log_ratio, adv, mask, clip_low, clip_high, picked, cov)


@POLICY_LOSSES.register("kl_cov")
def kl_cov(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    cov_ratio: float = 2e-4,
    kl_cov_coef: float = 1.0,
    agg: str = "token-mean",
    agg_norm_len: int = 1,
    num_seqs: int | Tensor | None = None,
    num_tokens: int | Tensor | None = None,
    is_weights: Tensor | None = None,
    **_,
) -> tuple[Tensor, dict[str, Tensor]]:
    """KL-Cov (Cui et al. 2025, arXiv:2505.22617; verl core_algos.compute_policy_loss_kl_cov).

        pg_t = -A_t rho_t everywhere (NO ratio clipping)
        for the top-k valid tokens by cov_t (token_covariance, exact mean; k = max(1, int(cov_ratio * N_valid)),
        torch.topk over the flattened valid tokens):  pg_t += kl_cov_coef * |logp_t - old_logp_t|
        L = agg_t(pg_t)
    verl's defaults: kl_cov_ratio 2e-4, ppo_kl_coef 1 (the original repo's k_percent is in percent).
    clip_low / clip_high only feed the clip metrics (nothing is clipped).
    Extra metrics: cov_selected_frac, cov_mean.
    """
    mask = response_mask.bool()
    zero, log_ratio, ratio, adv = _token_ratio(logp, old_logp, advantages, mask)
    cov = token_covariance(logp, adv, mask)
    picked = torch.zeros_like(mask)
    n_valid = int(mask.sum())
    if n_valid:
        k = max(1, int(cov_ratio * n_valid))
        valid = mask.flatten().nonzero().squeeze(-1)
        top = torch.topk(cov.flatten()[valid], k).indices
        picked.view(-1)[valid[top]] = True
    token_loss = -adv * ratio + torch.where(picked, kl_cov_coef * log_ratio.abs(), zero)
    token_loss = _apply_is_weights(token_loss, is_weights, mask)
    loss = AGGREGATIONS.get(agg)(token_loss, mask, norm_len=agg_norm_len, num_seqs=num_seqs, num_tokens=num_tokens)
    return loss, _cov_metrics(ratio, log_ratio, adv, mask, clip_low, clip_high, picked, cov)
