"""Per-token KL estimators between the policy and the reference, and the adaptive KL controller.

With r = pi_ref / pi_theta sampled from pi_theta (Schulman 2020, "Approximating KL Divergence",
http://joschu.net/blog/kl-approx.html):
    k1 = log pi_theta - log pi_ref = -log r         unbiased, high variance, can be negative
    k2 = 0.5 * (log r)^2                             biased, low variance, gradient = that of the true KL
    k3 = r - log r - 1                               unbiased, low variance, always >= 0 (GRPO's KL term)

All: logp, ref_logp (B, T) -> (B, T) (unmasked; aggregate with a mask).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlvr.registry import Registry

KL_ESTIMATORS = Registry("KL estimator")


@KL_ESTIMATORS.register("k1")
def k1(logp: Tensor, ref_logp: Tensor, **_) -> Tensor:
    """k1 = logp - ref_logp (verl "kl"); the estimator REINFORCE++ folds into the token reward."""
    return logp - ref_logp


@KL_ESTIMATORS.register("k2")
def k2(logp: Tensor, ref_logp: Tensor, **_) -> Tensor:
    """k2 = 0.5 * (logp - ref_logp)^2 (verl "mse")."""
    return 0.5 * (logp - ref_logp).square()


@KL_ESTIMATORS.register("k3")
def k3(logp: Tensor, ref_logp: Tensor, **_) -> Tensor:
    """k3 = exp(ref - logp) - (ref - logp) - 1, as verl "low_var_kl": ref - logp clamped to +-20, result to [-10, 10]."""
    log_r = torch.clamp(ref_logp - logp, min=-20.0, max=20.0)
    return torch.clamp(torch.exp(log_r) - log_r - 1.0, min=-10.0, max=10.0)


KL_ESTIMATORS.register("low_var_kl", k3, doc="Alias of k3 (verl's name).")


def adaptive_kl_coef(coef: float, observed_kl: float, target: float, horizon: int, n_steps: int) -> float:
    """Proportional KL controller (Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences").

        e = clip(observed_kl / target - 1, -0.2, 0.2);   coef <- coef * (1 + e * n_steps / horizon)

    coef: current beta; observed_kl: mean KL of the last step; target: the KL aimed at; horizon: how many
    samples (or steps) it takes to move the coefficient by a factor e; n_steps: samples (or steps) since the
    last update, in the same unit as horizon.  Returns the new coefficient.
    """
    if target <= 0 or horizon <= 0:
        raise ValueError(f"adaptive_kl_coef needs target > 0 and horizon > 0, got {target}, {horizon}")
    error = min(max(float(observed_kl) / target - 1.0, -0.2), 0.2)
    return float(coef) * (1.0 + error * n_steps / horizon)
