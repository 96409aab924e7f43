"""One policy update on a rollout batch: old/reference log-probs, advantages, then epochs x mini-batches of
optimizer steps, each accumulated over micro-batches.

Gradient accumulation is exact: every micro-batch loss is normalised by the counts of its whole mini-batch
(``num_seqs`` / ``num_tokens``), so the summed micro losses equal the mini-batch loss.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch

from rlvr.algorithms import ADVANTAGES, AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSSES
from rlvr.algorithms.entropy import forking_token_mask
from rlvr.algorithms.rollout_correction import rollout_is_weights
from rlvr.config import AlgorithmConfig, TrainerConfig
from rlvr.trainer.batch import RolloutBatch
from rlvr.trainer.policy import Reference, response_logprobs


def _micro_batches(rows: torch.Tensor, size: int) -> list[torch.Tensor]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


@torch.no_grad()
def _logprobs_of(model, batch: RolloutBatch, rows_list, device, temperature, chunk, with_entropy):
    """(B, T) log-probs (and entropies) of every response, computed micro-batch by micro-batch without grad."""
    b, t = batch.response_ids.shape
    logp = torch.zeros(b, t)
    entropy = torch.zeros(b, t) if with_entropy else None
    for rows in rows_list:
        ids, mask, width = batch.model_inputs(rows, device)
        lp, ent = response_logprobs(model, ids, mask, width, temperature=temperature, chunk_size=chunk,
                                    with_entropy=with_entropy)
        logp[rows, :width] = lp.float().cpu()
        if with_entropy:
            entropy[rows, :width] = ent.float().cpu()
    return logp, entropy


def prepare(model, reference: Reference | None, batch: RolloutBatch, algo: AlgorithmConfig, kl_coef: float,
            trainer: TrainerConfig, temperature: float, device, compare_rollout: bool = False):
    """Fill batch.old_logp / batch.ref_logp / batch.is_weights where needed.

    compare_rollout: the completions come from another engine than the policy (vLLM): recompute old_logp even
    for a single update and report how far the engine's log-probs are from it (``rollout/*`` metrics), the
    diagnostic of rollout correction (algorithm.rollout_is), which needs old_logp as well.

    Returns advantages (B, T), pg_mask (B, T) (tokens in the policy-gradient loss: the response, minus truncated
    completions with overlong filtering, restricted to forking tokens when entropy_top_frac < 1, minus tokens a
    rollout_is mask mode rejects), loss_mask (B, T) (the same without the forking and rejection restrictions,
    for KL / entropy terms) and metrics ("adv/*", and "rollout/*" when compared).
    Deviation from "Beyond the 80/20 rule": the top-entropy tokens are chosen over the whole batch from the
    entropy of the policy that sampled (equal to the current policy on the first epoch), so that the
    token-mean denominator is known before the micro-batches run.
    """
    rows_all = _micro_batches(torch.arange(len(batch)), trainer.micro_batch_size)
    loss_mask = batch.response_mask.clone()
    if algo.overlong_filter:
        loss_mask &= ~batch.truncated.unsqueeze(-1)
    forking = algo.entropy_top_frac < 1.0
    several_updates = trainer.epochs * trainer.mini_batches > 1
    correct = batch.rollout_logp is not None and (compare_rollout or algo.rollout_is != "none")
    if several_updates or forking or algo.kl_in == "reward" or correct:
        batch.old_logp, old_entropy = _logprobs_of(model, batch, rows_all, device, temperature,
                                                   algo.logprob_chunk, forking)
    if reference is not None:
        with reference.active() as ref_model:
            batch.ref_logp, _ = _logprobs_of(ref_model, batch, rows_all, device, temperature,
                                             algo.logprob_chunk, False)
    token_kl = None
    if algo.kl_in == "reward" and batch.ref_logp is not None:
        token_kl = KL_ESTIMATORS.get(algo.kl_estimator)(batch.old_logp, batch.ref_logp)
    advantages, metrics = ADVANTAGES.get(algo.advantage)(
        batch.rewards, batch.response_mask, batch.group_ids, token_kl=token_kl, kl_coef=kl_coef,
        norm_by_std=algo.norm_by_std, scale=algo.adv_scale, eps=algo.adv_eps,
    )
    pg_mask = loss_mask
    if forking:
        pg_mask = forking_token_mask(old_entropy, loss_mask, algo.entropy_top_frac)
    metrics = {f"adv/{k}": v for k, v in metrics.items()}
    if correct:  # Yao et al. 2025: weight the pg term by min(pi_old / pi_rollout, C); mask modes drop tokens
        weights, keep, is_metrics = rollout_is_weights(batch.old_logp, batch.rollout_logp, batch.response_mask,
                                                       algo.rollout_is, algo.rollout_is_cap)
        metrics.update({f"rollout/{k}": v for k, v in is_metrics.items()})
        if algo.rollout_is != "none":
            batch.is_weights, pg_mask = weights, pg_mask & keep
    metrics["adv/tokens_in_loss_frac"] = pg_mask.sum() / batch.response_mask.sum().clamp(min=1)
    return advantages, pg_mask, loss_mask, metrics


def update_policy(model, optimizer, scheduler, batch: RolloutBatch, advantages, pg_mask, loss_mask,
                  algo: AlgorithmConfig, kl_coef: float, trainer: TrainerConfig, temperature: float,
                  norm_len: int, device, generator: torch.Generator) -> tuple[dict[str, float], bool]:
    """Run trainer.epochs x trainer.mini_batches optimizer steps. Returns (metrics, all_steps_finite)."""
    policy_loss = POLICY_LOSSES.get(algo.loss)
    aggregate = AGGREGATIONS.get(algo.agg)
    kl_fn = KL_ESTIMATORS.get(algo.kl_estimator)
    params = [p for p in model.parameters() if p.requires_grad]
    sums: dict[str, float] = defaultdict(float)
    updates = 0
    all_finite = True
    for _ in range(trainer.epochs):
        order = torch.randperm(len(batch), generator=generator)
        for mini in torch.tensor_split(order, min(trainer.mini_batches, len(batch))):  # a short dynamic batch
            # whole-mini-batch counts; a row with no token in the loss (e.g. overlong-filtered) is no sequence
            pg_seqs, num_seqs = int(pg_mask[mini].any(-1).sum()), int(loss_mask[mini].any(-1).sum())
            pg_tokens, tokens = int(pg_mask[mini].sum()), int(loss_mask[mini].sum())
            total = 0.0
            optimizer.zero_grad(set_to_none=True)
            for rows in _micro_batches(mini, trainer.micro_batch_size):
                ids, mask, width = batch.model_inputs(rows, device)
                logp, entropy = response_logprobs(
                    model, ids, mask, width, temperature=temperature, chunk_size=algo.logprob_chunk,
                    with_entropy=True, entropy_grad=algo.entropy_coef > 0,
                )
                cut = lambda x: x[rows][:, :width].to(device)  # noqa: E731
                old = cut(batch.old_logp) if batch.old_logp is not None else logp.detach()
                loss, m = policy_loss(
                    logp, old, cut(advantages), cut(pg_mask), clip_low=algo.clip_low, clip_high=algo.clip_high,
                    dual_clip=algo.dual_clip, agg=algo.agg, agg_norm_len=norm_len, num_seqs=max(pg_seqs, 1),
                    num_tokens=max(pg_tokens, 1),
                    is_weights=cut(batch.is_weights) if batch.is_weights is not None else None,
                )
                lmask = cut(loss_mask)
                if batch.ref_logp is not None:
                    kl = kl_fn(logp, cut(batch.ref_logp))
                    kl_term = aggregate(kl, lmask, norm_len=norm_len, num_seqs=max(num_seqs, 1),
                                        num_tokens=max(tokens, 1))
                    m["kl"] = kl_term.detach()
                    if algo.kl_in == "loss":
                        loss = loss + kl_coef * kl_term
                ent_term = aggregate(entropy, lmask, norm_len=norm_len, num_seqs=max(num_seqs, 1),
                                     num_tokens=max(tokens, 1))
                m["entropy"] = ent_term.detach()
                if algo.entropy_coef > 0:
                    loss = loss - algo.entropy_coef * ent_term
                loss.backward()
                total += float(loss.detach())
                for key, value in m.items():
                    # kl / entropy terms are already normalised by the mini-batch counts: their sum is the mean
                    share = 1.0 if key in ("kl", "entropy") else len(rows) / len(mini)
                    sums[key] += float(value) * share
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, trainer.max_grad_norm or math.inf))
            finite = math.isfinite(total) and math.isfinite(grad_norm)
            if finite:
                optimizer.step()
                scheduler.step()
            else:
                optimizer.zero_grad(set_to_none=True)
                all_finite = False
            sums["loss"] += total
            sums["grad_norm"] += grad_norm
            updates += 1
    metrics = {key: value / updates for key, value in sums.items()}
    metrics["optimizer_steps"] = float(updates)
    return metrics, all_finite
