"""The algorithm core: pure tensor functions of the GRPO family, looked up by name in registries.

    from rlvr.algorithms import ADVANTAGES, POLICY_LOSSES, AGGREGATIONS, KL_ESTIMATORS, PRESETS, rollout_is_weights

    adv, m1 = ADVANTAGES.get("grpo")(rewards, response_mask, group_ids)
    loss, m2 = POLICY_LOSSES.get("ppo_clip")(logp, old_logp, adv, response_mask, clip_low=0.2, clip_high=0.28)
    w, keep, m3 = rollout_is_weights(old_logp, rollout_logp, response_mask, "token_truncate", cap=2.0)
    adv, m4 = ADVANTAGES.get("gae")(rewards, response_mask, group_ids, values=values, gamma=1.0, lam=1.0)  # PPO

See docs/algorithms.md for the formulas, papers and presets.
"""

from rlvr.algorithms.advantages import (
    ADVANTAGES,
    combine_group_ids,
    dr_grpo,
    group_stats,
    grpo,
    reinforce_pp,
    reinforce_pp_baseline,
    rloo,
)
from rlvr.algorithms.aggregate import (
    AGGREGATIONS,
    seq_mean_token_mean,
    seq_mean_token_sum,
    seq_mean_token_sum_norm,
    token_mean,
)
from rlvr.algorithms.entropy import forking_token_mask
from rlvr.algorithms.filters import all_equal_groups, overlong_mask, zero_variance_groups
from rlvr.algorithms.guidance import (
    OFF_POLICY_WEIGHTS,
    choose_teachers,
    injection_slots,
    mixed_pg_loss,
    sft_loss,
)
from rlvr.algorithms.kl import KL_ESTIMATORS, adaptive_kl_coef, k1, k2, k3
from rlvr.algorithms.logprobs import entropy_from_logits, token_logprobs, token_logprobs_reference
from rlvr.algorithms.losses import POLICY_LOSSES, clip_cov, clipped_pg_loss, gspo, kl_cov, ppo_clip, token_covariance
from rlvr.algorithms.masks import masked_mean, masked_sum, masked_var, masked_whiten
from rlvr.algorithms.presets import PRESETS
from rlvr.algorithms.rollout_correction import ROLLOUT_IS_MODES, rollout_is_weights
from rlvr.algorithms.value import explained_variance, gae, gae_advantages, token_rewards, value_loss

__all__ = [
    "ADVANTAGES",
    "AGGREGATIONS",
    "KL_ESTIMATORS",
    "OFF_POLICY_WEIGHTS",
    "POLICY_LOSSES",
    "PRESETS",
    "ROLLOUT_IS_MODES",
    "adaptive_kl_coef",
    "all_equal_groups",
    "choose_teachers",
    "clip_cov",
    "clipped_pg_loss",
    "combine_group_ids",
    "dr_grpo",
    "entropy_from_logits",
    "explained_variance",
    "forking_token_mask",
    "gae",
    "gae_advantages",
    "group_stats",
    "grpo",
    "injection_slots",
    "gspo",
    "kl_cov",
    "k1",
    "k2",
    "k3",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "masked_whiten",
    "mixed_pg_loss",
    "overlong_mask",
    "ppo_clip",
    "reinforce_pp",
    "reinforce_pp_baseline",
    "rloo",
    "rollout_is_weights",
    "seq_mean_token_mean",
    "seq_mean_token_sum",
    "seq_mean_token_sum_norm",
    "sft_loss",
    "token_covariance",
    "token_logprobs",
    "token_logprobs_reference",
    "token_mean",
    "token_rewards",
    "value_loss",
    "zero_variance_groups",
]
