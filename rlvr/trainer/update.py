"""One policy update on a rollout batch: old/reference log-probs, advantages, then epochs x mini-batches of
optimizer steps, each accumulated over micro-batches. With PPO's critic (rlvr/trainer/critic.py) the old values
and GAE returns are filled first, and the critic trains on the same mini-batches (a shared head in the policy's
own backward).

Gradient accumulation is exact: every micro-batch loss is normalised by the counts of its whole mini-batch
(``num_seqs`` / ``num_tokens``), so the summed micro losses equal the mini-batch loss. That is also why the
speed options may regroup rows freely (an `UpdateRuntime`, kept across steps by the loop):

- trainer.compile: the forward passes go through ``torch.compile`` (policy.Forward; eager fallback, warned);
- trainer.packing: a mini-batch's sequences are packed into rows of the longest one's length (block-diagonal
  causal attention, positions restarting per sequence) instead of padded micro-batches (batch.Packed);
  checked once against the padded log-probs on one packed row, abandoned with a warning if off;
- one update per batch with rollout correction (a vLLM engine, or an asynchronous run's decoupled PPO, whose pi_prox
  is then the policy itself): old_logp is the update's own detached log-probs, and the correction weights
  f(pi_old / pi_rollout) are computed per micro-batch from them (``fuse_is``) instead of by a no-grad pass first;
  truncate modes only (a mask mode changes the loss denominators, which must be known before the first micro-batch);
- trainer.reuse_rollout_logprobs: with the HF engine sampling exactly softmax(logits / T) from the policy
  itself (top_k 0, top_p 1, no dropout), old_logp is the engine's sampled-token log-probs instead of a no-grad
  pass; checked once against a recomputation on one micro-batch (REUSE_TOL), abandoned with a warning if off.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict

import torch

from rlvr.algorithms import ADVANTAGES, AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSSES
from rlvr.algorithms.entropy import forking_token_mask
from rlvr.algorithms.guidance import guided_pg_loss
from rlvr.algorithms.rollout_correction import rollout_is_weights
from rlvr.algorithms.value import explained_variance
from rlvr.config import AlgorithmConfig, TrainerConfig
from rlvr.trainer.batch import RolloutBatch
from rlvr.trainer.policy import Forward, Reference, packed_response_logprobs, response_logprobs

log = logging.getLogger("rlvr")

# Largest |rollout log-prob - recomputed log-prob| over a checked micro-batch's response tokens for which the
# rollout's log-probs stand in for old_logp (also the packed-vs-padded check). Measured on the demo model (32
# completions of up to 64 tokens, T 1 and 0.7): fp32 generation (KV cache, one token at a time) and the full
# forward differ by 1e-6 (packed vs padded 5e-7), so 1e-4 leaves room for longer sequences; bf16 3e-3 to 5e-3
# (packed vs padded 2e-3), so 5e-2 there.
REUSE_TOL = {torch.float32: 1e-4, torch.float64: 1e-4, torch.bfloat16: 5e-2, torch.float16: 5e-2}


def reuse_refusal(cfg, model) -> str:
    """Why the rollout's log-probs cannot stand in for old_logp ("" when they can, subject to the runtime check):
    they must be the policy's own softmax(logits / T) at the update's precision and in the same mode."""
    r = cfg.rollout
    if cfg.trainer.reuse_rollout_logprobs == "never":
        return "trainer.reuse_rollout_logprobs is never"
    if r.engine != "hf":
        return f"rollout.engine is {r.engine}, not the policy itself (hf)"
    if r.top_k != 0 or r.top_p < 1.0:
        return f"rollout.top_k = {r.top_k} / top_p = {r.top_p} truncate the sampling distribution"
    if r.temperature <= 0:
        return "greedy rollouts"
    for name, module in model.named_modules():  # generation runs in eval mode, the update in train mode
        if isinstance(module, torch.nn.Dropout) and module.p > 0:
            return f"dropout p = {module.p} in {name or 'the model'}"
    return ""


class UpdateRuntime:
    """What the speed options keep across steps: the (compiled) forward, packing, and the reuse decision.

    ``reuse``: the configuration allows old_logp = rollout log-probs (`reuse_refusal` gave ""); the first batch
    that would use them checks them (``reuse_checked``) and a mismatch turns reuse off for the rest of the run.
    """

    def __init__(self, compile: bool = False, packing: bool = False, reuse: bool = False, fuse_is: bool = False):
        self.forward = Forward(compile)
        self.packing = packing
        self.reuse = reuse
        self.fuse_is = fuse_is
        self.reuse_checked = False
        self.packing_checked = False

    def check_packing(self, model, batch: RolloutBatch, device, temperature, chunk, metrics) -> None:
        """Once, on the first packed row holding two or more sequences: its log-probs must equal the padded
        ones (a model whose attention ignores packed position ids would let sequences see each other);
        otherwise warn and pad from now on."""
        packed = batch.packed_micro_batches(torch.arange(len(batch)), 1, device)
        shared = next(((rows, pack) for rows, pack in packed if len(rows) >= 2), None)
        if shared is None:
            return
        rows, pack = shared
        kwargs = dict(temperature=temperature, chunk_size=chunk, with_entropy=False)
        with torch.no_grad():
            got, _, width, _ = _forward(model, batch, rows, pack, device, None, **kwargs)
            want, _, _, _ = _forward(model, batch, rows, None, device, None, **kwargs)
        mask = batch.response_mask[rows][:, :width].to(device)
        diff = float((got.float() - want.float()[:, :width]).abs().masked_fill(~mask, 0).max())
        tol = REUSE_TOL.get(next(model.parameters()).dtype, 5e-2)
        self.packing_checked = True
        metrics["perf/packing_check_diff"] = diff
        if not diff <= tol:
            self.packing = False
            log.warning("trainer.packing: packed log-probs differ from the padded ones by up to %.3g (> %.0e): this "
                        "model's attention does not keep packed sequences apart; padding from now on", diff, tol)

    @classmethod
    def from_config(cls, cfg, model, sharded: bool = False) -> "UpdateRuntime":
        refusal = reuse_refusal(cfg, model)
        if refusal and cfg.trainer.reuse_rollout_logprobs != "never":
            log.info("old log-probs are recomputed (not the rollout's): %s", refusal)
        compile = cfg.trainer.compile
        if compile and sharded:  # a compile failure on one rank would desynchronise the ranks' collectives
            log.warning("trainer.compile is not used on FSDP ranks (distributed.trainer_workers); the update runs "
                        "eagerly")
            compile = False
        return cls(compile, cfg.trainer.packing, reuse=not refusal, fuse_is=not sharded)

    def micro_batches(self, batch: RolloutBatch, rows: torch.Tensor, size: int, device, shard=None) -> list:
        """[(rows, Packed or None)]: packed rows with trainer.packing, otherwise slices of ``size`` rows. With a
        `Shard`: this rank's share of ``rows`` only, padded with None (dummy micro-batches) to the ranks' most."""
        if shard is not None:
            own = shard.part(rows)
            return shard.align(self.micro_batches(batch, own, size, device) if len(own) else [])
        if self.packing and batch.vision is None:  # images: padded rows (3-D positions come from the mask)
            return batch.packed_micro_batches(rows, size, device)
        return [(r, None) for r in _micro_batches(rows, size)]


def _micro_batches(rows: torch.Tensor, size: int) -> list[torch.Tensor]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def _forward(model, batch: RolloutBatch, rows, pack, device, forward, value_head=None, **kwargs):
    """logp, entropy (len(rows), width), width and the shared critic head's values (len(rows), width) or None
    (no ``value_head``) of one micro-batch, padded (pack None) or packed."""
    if pack is not None:
        scores = packed_response_logprobs(model, pack, forward=forward, value_head=value_head, **kwargs)
        width = pack.out_shape[1]
    else:
        ids, mask, width = batch.model_inputs(rows, device)
        scores = response_logprobs(model, ids, mask, width, forward=forward, value_head=value_head,
                                   extra=batch.vision_inputs(rows, device), **kwargs)
    logp, entropy, *values = scores
    return logp, entropy, width, values[0] if values else None


FUSED_IS_MODES = ("none", "token_truncate", "sequence_truncate")  # the modes that leave the loss mask as it is
DUMMY_ROWS = torch.tensor([0])  # a rank's dummy micro-batch (Shard.align): one row, its result unused


@torch.no_grad()
def _logprobs_of(model, batch: RolloutBatch, rows_list, device, temperature, chunk, with_entropy, forward=None,
                 shard=None):
    """(B, T) log-probs (and entropies) of every response, computed micro-batch by micro-batch without grad.
    rows_list: row tensors, or (rows, Packed or None) pairs, or None (a dummy). With a `Shard`, each rank fills
    its own rows and the sum over the ranks gives every row."""
    b, t = batch.response_ids.shape
    logp = torch.zeros(b, t)
    entropy = torch.zeros(b, t) if with_entropy else None
    for item in rows_list:
        if item is None:
            _forward(model, batch, DUMMY_ROWS, None, device, forward, temperature=temperature, chunk_size=chunk,
                     with_entropy=False)
            continue
        rows, pack = item if isinstance(item, tuple) else (item, None)
        lp, ent, width, _ = _forward(model, batch, rows, pack, device, forward, temperature=temperature,
                                     chunk_size=chunk, with_entropy=with_entropy)
        logp[rows, :width] = lp.float().cpu()
        if with_entropy:
            entropy[rows, :width] = ent.float().cpu()
    if shard is not None:
        shard.sum_(logp)
        if with_entropy:
            shard.sum_(entropy)
    return logp, entropy


def _reused_old_logp(runtime: UpdateRuntime, model, batch: RolloutBatch, micros, device, temperature, chunk,
                     metrics) -> torch.Tensor | None:
    """batch.rollout_logp as old_logp, checked against a recomputation on one micro-batch the first time; None
    (and reuse off from now on) when they differ by more than REUSE_TOL."""
    if not runtime.reuse_checked:
        rows, pack = micros[0]
        check, _ = _logprobs_of(model, batch, [(rows, pack)], device, temperature, chunk, False,
                                runtime.forward)
        mask = batch.response_mask[rows]
        diff = float((check[rows] - batch.rollout_logp[rows]).abs().masked_fill(~mask, 0).max())
        dtype = next(model.parameters()).dtype
        tol = REUSE_TOL.get(dtype, 5e-2)
        runtime.reuse_checked = True
        metrics["perf/reuse_check_diff"] = diff
        if not diff <= tol:  # NaN fails too
            runtime.reuse = False
            log.warning("the rollout's log-probs differ from the policy's recomputed ones by up to %.3g (> %.0e "
                        "for %s): old log-probs are recomputed for the rest of the run", diff, tol, dtype)
            return None
        log.info("old log-probs: the rollout's (max diff %.2g to a recomputation on %d rows)", diff, len(rows))
    return batch.rollout_logp.masked_fill(~batch.response_mask, 0.0)


def prepare(model, reference: Reference | None, batch: RolloutBatch, algo: AlgorithmConfig, kl_coef: float,
            trainer: TrainerConfig, temperature: float, device, compare_rollout: bool = False,
            runtime: UpdateRuntime | None = None, shard=None, is_mode: str | None = None, critic=None):
    """Fill batch.old_logp / batch.ref_logp / batch.is_weights where needed (and, with a `Critic`,
    batch.old_values / batch.returns: PPO).

    compare_rollout: the completions come from another engine than the policy (vLLM): recompute old_logp even
    for a single update and report how far the engine's log-probs are from it (``rollout/*`` metrics), the
    diagnostic of rollout correction (algorithm.rollout_is), which needs old_logp as well.
    runtime: the speed options (module docstring); None = eager, padded, always recomputed.
    shard: this rank's `rlvr.trainer.shard.Shard` under FSDP (each rank computes its rows' log-probs); None = all.
    is_mode: the rollout-correction mode instead of algorithm.rollout_is (asynchronous runs: decoupled PPO, where
    old_logp is pi_prox and the weight is f(pi_prox / mu), rlvr/algorithms/off_policy.py); it implies the comparison.

    Returns advantages (B, T), pg_mask (B, T) (tokens in the policy-gradient loss: the response, minus truncated
    completions with overlong filtering, restricted to forking tokens when entropy_top_frac < 1, minus tokens a
    rollout_is mask mode rejects), loss_mask (B, T) (the same without the forking and rejection restrictions,
    for KL / entropy terms) and metrics ("adv/*", and "rollout/*" when compared).
    Deviation from "Beyond the 80/20 rule": the top-entropy tokens are chosen over the whole batch from the
    entropy of the policy that sampled (equal to the current policy on the first epoch), so that the
    token-mean denominator is known before the micro-batches run.
    """
    runtime = runtime or UpdateRuntime()
    perf: dict[str, float] = {}
    if runtime.packing and not runtime.packing_checked and batch.vision is None:
        runtime.check_packing(model, batch, device, temperature, algo.logprob_chunk, perf)
    every_row = torch.arange(len(batch))
    micros = runtime.micro_batches(batch, every_row, trainer.micro_batch_size, device, shard)
    loss_mask = batch.response_mask.clone()
    if algo.overlong_filter:
        loss_mask &= ~batch.truncated.unsqueeze(-1)
    forking = algo.entropy_top_frac < 1.0
    several_updates = trainer.epochs * trainer.mini_batches > 1
    mode = is_mode if is_mode is not None else algo.rollout_is
    correct = batch.rollout_logp is not None and (compare_rollout or is_mode is not None or mode != "none")
    fwd, chunk = runtime.forward, algo.logprob_chunk
    # one update, no forking: pi_old is the update's own forward, and truncate-mode weights follow from it (fuse_is)
    fused = (runtime.fuse_is and correct and shard is None and not several_updates and not forking
             and algo.kl_in != "reward" and mode in FUSED_IS_MODES)
    batch.is_mode = mode if fused else None
    if (several_updates or forking or algo.kl_in == "reward" or correct) and not fused:
        # forking needs the old entropy, and rollout correction compares old_logp with the rollout's: recompute
        reused = None
        if runtime.reuse and not forking and not correct and batch.rollout_logp is not None:
            first = runtime.micro_batches(batch, every_row, trainer.micro_batch_size, device)[:1]  # same on all ranks
            reused = fwd.guard(lambda: _reused_old_logp(runtime, model, batch, first, device, temperature, chunk,
                                                        perf))
        perf["perf/old_logp_reused"] = float(reused is not None)
        if reused is not None:
            batch.old_logp, old_entropy = reused, None
        else:
            batch.old_logp, old_entropy = fwd.guard(
                lambda: _logprobs_of(model, batch, micros, device, temperature, chunk, forking, fwd, shard))
    if reference is not None:
        with reference.active() as ref_model:
            ref_fwd = fwd if reference.model is not None else None  # a LoRA reference (adapters off): eager
            batch.ref_logp, _ = fwd.guard(
                lambda: _logprobs_of(ref_model, batch, micros, device, temperature, chunk, False, ref_fwd, shard))
    if critic is not None:  # PPO: V(s_t) before the update, GAE's baseline and the value clip's centre
        def shared_forward(rows, pack):
            _, _, width, values = _forward(model, batch, rows, pack, device, fwd, value_head=critic.head_values,
                                           temperature=temperature, chunk_size=chunk, with_entropy=False)
            return values, width

        batch.old_values = fwd.guard(lambda: critic.values(batch, micros, device, fwd, shared_forward))
    token_kl = None
    if algo.kl_in == "reward" and batch.ref_logp is not None:
        token_kl = KL_ESTIMATORS.get(algo.kl_estimator)(batch.old_logp, batch.ref_logp)
    advantages, metrics = ADVANTAGES.get(algo.advantage)(
        batch.rewards, batch.response_mask, batch.group_ids, token_kl=token_kl, kl_coef=kl_coef,
        norm_by_std=algo.norm_by_std, scale=algo.adv_scale, eps=algo.adv_eps,
        values=batch.old_values, gamma=algo.gamma, lam=algo.lam,
    )
    batch.returns = metrics.pop("returns", None)  # the critic's targets (gae)
    if critic is not None:
        metrics["critic/explained_var"] = explained_variance(batch.old_values, batch.returns, batch.response_mask)
        metrics["critic/value_mean"] = metrics.pop("values_mean")
    pg_mask = loss_mask
    if forking:
        pg_mask = forking_token_mask(old_entropy, loss_mask, algo.entropy_top_frac)
    metrics = {**{k if k.startswith("critic/") else f"adv/{k}": v for k, v in metrics.items()}, **perf}
    if correct and not fused:  # Yao et al. 2025: weight the pg term by min(pi_old / pi_rollout, C); masks drop tokens
        weights, keep, is_metrics = rollout_is_weights(batch.old_logp, batch.rollout_logp, batch.response_mask,
                                                       mode, algo.rollout_is_cap)
        metrics.update({f"rollout/{k}": v for k, v in is_metrics.items()})
        if mode != "none":
            batch.is_weights, pg_mask = weights, pg_mask & keep
    metrics["adv/tokens_in_loss_frac"] = pg_mask.sum() / batch.response_mask.sum().clamp(min=1)
    return advantages, pg_mask, loss_mask, metrics


def update_policy(model, optimizer, scheduler, batch: RolloutBatch, advantages, pg_mask, loss_mask,
                  algo: AlgorithmConfig, kl_coef: float, trainer: TrainerConfig, temperature: float,
                  norm_len: int, device, generator: torch.Generator,
                  runtime: UpdateRuntime | None = None, shard=None, critic=None,
                  train_policy: bool = True) -> tuple[dict[str, float], bool]:
    """Run trainer.epochs x trainer.mini_batches optimizer steps. Returns (metrics, all_steps_finite).
    shard: this rank's `rlvr.trainer.shard.Shard` under FSDP: it runs its share of each mini-batch's rows, with
    the whole mini-batch's counts, and the loss and metrics are summed over the ranks.
    critic: PPO's `rlvr.trainer.critic.Critic` (batch.old_values / returns filled by prepare): a shared head's value
    loss joins the policy loss of each micro-batch; a separate critic takes its own step after the policy's, on
    the same mini-batch. train_policy False (critic warm-up): only the critic learns."""
    runtime = runtime or UpdateRuntime()
    policy_loss = POLICY_LOSSES.get(algo.loss)
    aggregate = AGGREGATIONS.get(algo.agg)
    kl_fn = KL_ESTIMATORS.get(algo.kl_estimator)
    params = [p for p in model.parameters() if p.requires_grad]
    sums: dict[str, float] = defaultdict(float)
    updates = policy_steps = 0
    all_finite = True
    shared_head = critic is not None and critic.shared
    value_head = (lambda h: critic.head_values(h, detach=not train_policy)) if shared_head else None

    def accumulate(mini):
        """zero_grad, then forward/backward of every micro-batch of ``mini``: (summed loss, metric sums).
        Restartable (the compile fallback runs it again eagerly)."""
        # whole-mini-batch counts; a row with no token in the loss (e.g. overlong-filtered) is no sequence
        pg_seqs, num_seqs = int(pg_mask[mini].any(-1).sum()), int(loss_mask[mini].any(-1).sum())
        pg_tokens, tokens = int(pg_mask[mini].sum()), int(loss_mask[mini].sum())
        response_tokens = max(int(batch.response_mask[mini].sum()), 1)
        total, mini_sums = 0.0, defaultdict(float)
        optimizer.zero_grad(set_to_none=True)
        for item in runtime.micro_batches(batch, mini, trainer.micro_batch_size, device, shard):
            if item is None:  # this rank has fewer micro-batches: a dummy keeps FSDP's collectives in step
                logp, _, _, _ = _forward(model, batch, DUMMY_ROWS, None, device, runtime.forward,
                                         temperature=temperature, chunk_size=algo.logprob_chunk,
                                         with_entropy=False)
                (logp.sum() * 0.0).backward()
                continue
            rows, pack = item
            logp, entropy, width, values = _forward(
                model, batch, rows, pack, device, runtime.forward, value_head=value_head, temperature=temperature,
                chunk_size=algo.logprob_chunk, with_entropy=True, entropy_grad=algo.entropy_coef > 0,
            )
            cut = lambda x: x[rows][:, :width].to(device)  # noqa: E731
            old = cut(batch.old_logp) if batch.old_logp is not None else logp.detach()
            is_weights = cut(batch.is_weights) if batch.is_weights is not None else None
            is_metrics = {}
            if batch.is_mode is not None:  # fused rollout correction: pi_old is this forward (prepare, fuse_is)
                w, _, is_metrics = rollout_is_weights(old, cut(batch.rollout_logp), cut(batch.response_mask),
                                                      batch.is_mode, algo.rollout_is_cap)
                is_weights = w if batch.is_mode != "none" else None
            pg_kwargs = dict(agg=algo.agg, agg_norm_len=norm_len, num_seqs=max(pg_seqs, 1),
                             num_tokens=max(pg_tokens, 1), is_weights=is_weights)
            if batch.off_policy_mask is None:
                loss, m = policy_loss(logp, old, cut(advantages), cut(pg_mask), clip_low=algo.clip_low,
                                      clip_high=algo.clip_high, dual_clip=algo.dual_clip, cov_ratio=algo.cov_ratio,
                                      cov_lb=algo.cov_lb, cov_ub=algo.cov_ub, kl_cov_coef=algo.kl_cov_coef,
                                      generator=generator, **pg_kwargs)
            else:  # teacher completions in the groups (algorithm.guidance): on- plus off-policy parts
                loss, m = guided_pg_loss(policy_loss, algo, logp, old, cut(advantages), cut(pg_mask),
                                         cut(batch.off_policy_mask), **pg_kwargs)
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
            if not train_policy:  # critic warm-up: the policy's terms are left out (and its metrics)
                loss, m, is_metrics = torch.zeros((), device=device), {}, {}
            if values is not None:  # a shared critic head: its value loss in the same backward
                value_term, vm = critic.loss(values, batch, rows, width, response_tokens, device)
                loss = loss + value_term
                mini_sums["critic/value_loss"] += float(vm["value_loss"])
                share_tokens = int(batch.response_mask[rows].sum()) / response_tokens
                mini_sums["critic/value_clip_frac"] += float(vm["value_clip_frac"]) * share_tokens
            (loss * shard.loss_scale if shard is not None else loss).backward()
            total += float(loss.detach())
            for key, value in m.items():
                # kl / entropy terms (and guidance's loss parts) are already normalised by the mini-batch counts:
                # their sum is the mean
                share = 1.0 if key in ("kl", "entropy", "guidance/on_loss", "guidance/off_loss") \
                    else len(rows) / len(mini)
                mini_sums[key] += float(value) * share
            micro_tokens = int(batch.response_mask[rows].sum())
            for key, value in is_metrics.items():  # token means over the mini-batch; the max of the maxima
                name = f"rollout/{key}"
                if key.endswith("_max"):
                    mini_sums[name] = max(mini_sums[name], float(value))
                else:
                    mini_sums[name] += float(value) * micro_tokens / response_tokens
        if shard is not None:  # every rank's share adds up to the mini-batch's loss and metrics
            summed = shard.sum_dict({**mini_sums, "__loss__": total})
            total = summed.pop("__loss__")
            mini_sums = defaultdict(float, summed)
        return total, mini_sums

    for _ in range(trainer.epochs):
        order = torch.randperm(len(batch), generator=generator)
        for mini in torch.tensor_split(order, min(trainer.mini_batches, len(batch))):  # a short dynamic batch
            if train_policy or shared_head:  # (a separate critic warming up needs no policy forward)
                total, mini_sums = runtime.forward.guard(lambda: accumulate(mini))
                for key, value in mini_sums.items():
                    sums[key] += value
            if train_policy:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, trainer.max_grad_norm or math.inf)
                grad_norm = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)
                finite = math.isfinite(total) and math.isfinite(grad_norm)
                if finite:
                    optimizer.step()
                    scheduler.step()
                else:
                    optimizer.zero_grad(set_to_none=True)
                    all_finite = False
                sums["loss"] += total
                sums["grad_norm"] += grad_norm
                policy_steps += 1
            if critic is not None:
                if shared_head:
                    critic_metrics = critic.step()
                else:
                    micros = runtime.micro_batches(batch, mini, trainer.micro_batch_size, device)
                    critic_metrics = runtime.forward.guard(
                        lambda: critic.train_mini(batch, mini, micros, device, runtime.forward))
                all_finite &= not critic_metrics["critic/skipped"]
                for key, value in critic_metrics.items():
                    sums[key] += value
            updates += 1
    metrics = {key: value / updates for key, value in sums.items()}
    metrics["optimizer_steps"] = float(policy_steps)
    metrics.update(runtime.forward.settle())
    return metrics, all_finite
