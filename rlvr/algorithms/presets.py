"""Named algorithm presets: each is a dict of ``AlgorithmConfig`` field values.

``algorithm: dapo`` in a config applies PRESETS["dapo"] over the AlgorithmConfig defaults; keys given next to
``name`` override the preset field by field.  Each entry below names its paper and where rlvr deviates.
Fields a preset does not set keep the AlgorithmConfig defaults (advantage grpo, ppo_clip, clip 0.2/0.2,
token-mean, no KL, no entropy bonus, no filters).  Settings outside the algorithm section (group size,
learning rate, temperature, max length) are recipe advice in docs/algorithms.md, not part of a preset.
"""

from __future__ import annotations

from rlvr.registry import Registry

PRESETS = Registry("algorithm preset")

_GRPO = {
    "advantage": "grpo",
    "norm_by_std": True,
    "adv_scale": "group",
    "loss": "ppo_clip",
    "clip_low": 0.2,
    "clip_high": 0.2,
    "agg": "token-mean",
    "kl_coef": 0.0,
    "kl_estimator": "k3",
    "kl_in": "loss",
}

PRESETS.register(
    "grpo",
    dict(_GRPO),
    doc="GRPO (DeepSeekMath, arXiv:2402.03300): group mean/std advantage, PPO clip 0.2, token-mean. "
    "Deviations: token-mean (paper: seq-mean-token-mean, which favours short wrong answers); no KL by "
    "default (paper beta 0.04; set kl_coef: 0.04).",
)

PRESETS.register(
    "dr_grpo",
    {
        "advantage": "dr_grpo",
        "norm_by_std": False,
        "adv_scale": "none",
        "loss": "ppo_clip",
        "clip_low": 0.2,
        "clip_high": 0.2,
        "agg": "seq-mean-token-sum-norm",
        "agg_norm_len": 0,
        "kl_coef": 0.0,
    },
    doc="Dr. GRPO (arXiv:2503.20783): r - group mean (no std), token sum / max length (agg_norm_len 0 = "
    "rollout.max_new_tokens), no KL.",
)

_DAPO = {
    "advantage": "grpo",
    "norm_by_std": True,
    "adv_scale": "group",
    "loss": "ppo_clip",
    "clip_low": 0.2,
    "clip_high": 0.28,
    "agg": "token-mean",
    "kl_coef": 0.0,
    "dynamic_sampling": True,
    "max_sample_batches": 10,
    "overlong_filter": False,
}
PRESETS.register(
    "dapo",
    dict(_DAPO),
    doc="DAPO (arXiv:2503.14476): clip 0.2/0.28, token-mean, no KL, dynamic sampling. Soft overlong punishment "
    "is a reward component (rewards side); overlong_filter stays off as in the paper's final recipe.",
)

PRESETS.register(
    "clip_cov",
    {**_DAPO, "loss": "clip_cov", "clip_low": 1.0, "clip_high": 1.0, "cov_ratio": 2e-4, "cov_lb": 1.0,
     "cov_ub": 5.0},
    doc="Clip-Cov (Entropy Mechanism, arXiv:2505.22617; verl clip_cov): DAPO with dynamic sampling, token-mean, "
    "no KL; per step a random 2e-4 of the unclipped tokens with covariance in (1, 5) get no gradient; "
    "clip 1/1 (the 7B recipe: no ordinary clipping).",
)

PRESETS.register(
    "kl_cov",
    {**_DAPO, "loss": "kl_cov", "cov_ratio": 2e-3, "kl_cov_coef": 1.0},
    doc="KL-Cov (Entropy Mechanism, arXiv:2505.22617; verl kl_cov): DAPO with dynamic sampling, token-mean, "
    "no KL; no ratio clip; the top 0.2% tokens by covariance (the 7B recipe's k_percent 0.2) get "
    "+ 1.0 |logp - old| in their loss.",
)

PRESETS.register(
    "gspo",
    {
        "advantage": "grpo",
        "norm_by_std": True,
        "adv_scale": "group",
        "loss": "gspo",
        "clip_low": 3e-4,
        "clip_high": 4e-4,
        "agg": "seq-mean-token-mean",
        "kl_coef": 0.0,
    },
    doc="GSPO (arXiv:2507.18071): sequence-level ratio (geometric mean of token ratios), clip 3e-4/4e-4, "
    "GRPO advantage, seq-mean-token-mean, no KL.",
)

PRESETS.register(
    "rloo",
    {
        "advantage": "rloo",
        "loss": "ppo_clip",
        "clip_low": 0.2,
        "clip_high": 0.2,
        "agg": "token-mean",
        "kl_coef": 0.0,
    },
    doc="RLOO (arXiv:2402.14740): leave-one-out baseline r_i - mean_{j!=i} r_j, PPO clip 0.2, token-mean. "
    "Deviation: the paper's REINFORCE update is single-epoch (clip never fires at ratio 1); KL in reward omitted.",
)

PRESETS.register(
    "reinforce_pp",
    {
        "advantage": "reinforce_pp",
        "loss": "ppo_clip",
        "clip_low": 0.2,
        "clip_high": 0.2,
        "agg": "token-mean",
        "kl_coef": 0.001,
        "kl_estimator": "k1",
        "kl_in": "reward",
    },
    doc="REINFORCE++ (arXiv:2501.03262): k1 KL (beta 0.001) folded into the token reward, return with gamma 1, "
    "batch-whitened; PPO clip 0.2, token-mean.",
)

PRESETS.register(
    "reinforce_pp_baseline",
    {
        "advantage": "reinforce_pp_baseline",
        "loss": "ppo_clip",
        "clip_low": 0.2,
        "clip_high": 0.2,
        "agg": "token-mean",
        "kl_coef": 0.001,
        "kl_estimator": "k3",
        "kl_in": "loss",
    },
    doc="REINFORCE++-baseline (arXiv:2501.03262): r - group mean, then batch whitening; k3 KL (beta 0.001) in "
    "the loss as in OpenRLHF/verl; PPO clip 0.2, token-mean.",
)

PRESETS.register(
    "prorl",
    {
        **_DAPO,
        "clip_high": 0.4,
        "kl_coef": 1e-4,
        "kl_estimator": "k3",
        "kl_in": "loss",
        "ref_reset_every": 200,
    },
    doc="ProRL (arXiv:2505.24864): DAPO with clip_high 0.4, k3 KL beta 1e-4 in the loss, hard reset of the "
    "reference (and optimizer state) every 200 steps. Deviation: the paper resets at plateaus (no public code); "
    "beta and the period are our guesses.",
)

PRESETS.register(
    "one_shot",
    {**_GRPO, "kl_coef": 0.001, "entropy_coef": 0.001},
    doc="One-shot RLVR (arXiv:2504.20571): GRPO with k3 (low_var_kl) KL 0.001 and an entropy bonus "
    "loss = pg - 0.001 * H, clip 0.2, token-mean (verl's default); pick the example in the data config.",
)

PRESETS.register(
    "forking_tokens",
    {**_DAPO, "entropy_top_frac": 0.2},
    doc="80/20 forking tokens (arXiv:2506.01939): DAPO settings, policy gradient only on the top 20% "
    "highest-entropy tokens of each micro-batch.",
)

PRESETS.register(
    "ppo",
    {
        "advantage": "gae",
        "gamma": 1.0,
        "lam": 1.0,
        "norm_by_std": True,
        "loss": "ppo_clip",
        "clip_low": 0.2,
        "clip_high": 0.2,
        "agg": "token-mean",
        "kl_coef": 0.0,
    },
    doc="PPO with a learned critic (arXiv:1707.06347) and GAE (arXiv:1506.02438): gamma = lambda = 1 (verl's "
    "defaults for outcome rewards), advantages whitened over the batch, clip 0.2, token-mean, no KL (add kl_coef "
    "with kl_in: reward for the per-token KL penalty). Needs critic.path or critic.shared: true.",
)

PRESETS.register(
    "writing_zero",
    {**_GRPO, "advantage": "brpo"},
    doc="Writing-Zero BRPO (arXiv:2506.00103): advantage = the +-1 outcome of a pairwise judge against a seeded "
    "random reference completion of the group (0 for ties and the reference), PPO clip 0.2, token-mean, no KL. "
    "Needs a pairwise_judge reward component (it picks the reference and asks the judge).",
)

PRESETS.register(
    "rlpr",
    {**_GRPO, "std_filter": True, "std_filter_beta": 0.5, "std_filter_ema": 0.99},
    doc="RLPR (arXiv:2506.18254): GRPO advantages with the std-EMA prompt filter (drop groups whose reward std < "
    "0.5 x EMA_0.99(std)); pair it with the rlpr reward component. Only the filter and the reward are the paper's; "
    "the rest of its recipe (optimiser settings, clip values, KL) is not reproduced.",
)

# Off-policy teacher guidance (ALGORITHMS.md section 18; docs/guidance.md). All four: A = r - group mean (no std),
# the T_max-sum aggregation (seq-mean-token-sum-norm over rollout.max_new_tokens), entropy bonus 0.001, no KL.
_GUIDED = {**_GRPO, "norm_by_std": False, "agg": "seq-mean-token-sum-norm", "agg_norm_len": 0, "entropy_coef": 0.001}
_LUFFY_GUIDANCE = {"trigger": "always", "n_inject": 1, "select": "first", "placement": "in_group",
                   "off_weight": "luffy", "gamma": 0.1, "adv_scale": "none", "on_clip": False}

PRESETS.register(
    "luffy",
    {**_GUIDED, "guidance": dict(_LUFFY_GUIDANCE)},
    doc="LUFFY (arXiv:2504.14945): one teacher completion in every group (7 on-policy + 1), off-policy tokens "
    "-A p/(p+0.1) (policy shaping), on-policy unclipped -A rho, A = r - mean of the mixed group, T_max-sum, "
    "entropy 0.001. Needs data.teacher_field. Deviation: all G are sampled and the last replaced (LUFFY samples 7).",
)

PRESETS.register(
    "rl_plus",
    {**_GUIDED, "guidance": {**_LUFFY_GUIDANCE, "off_weight": "rlplus", "adv_scale": "explore"}},
    doc="RL-PLUS (arXiv:2508.00222): LUFFY's data, teacher tokens weighted by the multiple importance sampling "
    "weight p/(0.75 p_old + 0.25) with the exploration advantage A (1 - p)^0.5. Needs data.teacher_field.",
)

PRESETS.register(
    "ampo",
    {**_GUIDED, "clip_low": 0.2, "clip_high": 0.2, "dual_clip": 10.0,
     "guidance": {"trigger": "all_fail", "n_inject": 2, "select": "comprehension", "placement": "in_group",
                  "off_weight": "luffy", "gamma": 0.1, "adv_scale": "none", "on_clip": True,
                  "force_teacher_reward": 1.0}},
    doc="AMPO (arXiv:2510.02227): only groups where every rollout fails get teachers, 2 failed slots replaced by "
    "the teachers the policy comprehends best (its probability of the gold answer after them, RLPR score, "
    "negative -> 0), teacher reward forced to 1; on-policy clip 0.2 with dual clip 10, off-policy -A p/(p+0.1).",
)

PRESETS.register(
    "relift",
    {**_GUIDED, "guidance": {"trigger": "all_fail", "n_inject": 1, "select": "first", "placement": "sft_buffer",
                             "off_weight": "none", "sft_buffer_size": 128, "sft_lr": 1e-6,
                             "sft_entropy_coef": 0.001}},
    doc="ReLIFT (arXiv:2506.07527): plain GRPO steps (A = r - mean); prompts whose rollouts all fail queue a "
    "demonstration, and every 128 of them one interleaved supervised step (NLL - 0.001 entropy, own AdamW, lr 1e-6). "
    "Deviation: the RL loss keeps ppo_clip (inactive with one update per batch: ReLIFT removes the clip).",
)

PRESETS.register(
    "azr",
    {**_GRPO, "clip_high": 0.28, "group_key": "task_role"},
    doc="Absolute Zero's TRR++ (arXiv:2505.03335): one reward mean/std per task type x role (six baselines with "
    "deduction, abduction, induction x propose, solve: group_key task_role, which rlvr selfplay sets on every "
    "prompt), PPO clip 0.2/0.28, token-mean, no KL, no entropy bonus. The paper's lr 1e-6 is trainer.lr.",
)
