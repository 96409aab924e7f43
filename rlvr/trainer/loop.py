"""The GRPO training loop: sample -> verify -> advantages -> update, one step at a time.

    from rlvr.config import load_config
    from rlvr.trainer import train
    train(load_config("examples/demo.yaml", ["trainer.steps=20"]))

Every step: take P prompts from the resumable sampler, sample G completions each, score them in worker
processes, (optionally) drop zero-variance groups and sample more, turn rewards into advantages, run the policy
update, log metrics and completions, and checkpoint every ``checkpoint.every`` steps. All randomness of a step
comes from (trainer.seed, step), and a prompt's completions from (trainer.seed, step, its position in the step),
so a resumed run continues exactly where the checkpoint left it.

Where the work runs is `start_workers`' choice: this process (the learner, an HF or vLLM engine, a reward process
pool), or Ray actors with ``distributed.backend: ray`` (FSDP2 trainer ranks, rollout and reward workers; see
rlvr/distributed/). This loop is the same for both.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from contextlib import ExitStack, nullcontext
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.utils import logging as transformers_logging

from rlvr.algorithms.filters import all_equal_groups, std_ema_filter, zero_variance_groups
from rlvr.algorithms.kl import adaptive_kl_coef
from rlvr.config import RunConfig, source_name, to_dict, to_yaml
from rlvr.data import check_template, load_examples, render_prompt
from rlvr.data.checks import drop_long_prompts
from rlvr.data.sampler import make_sampler
from rlvr.eval.runner import image_kwargs
from rlvr.logging import MetricsLogger
from rlvr.rewards import RewardScorer
from rlvr.rewards.vote import label_free, train_votes, vote_metrics
from rlvr.rollout import make_engine
from rlvr.rollout.multi_turn import add_env_rewards, prompt_tools, trajectory_metrics
from rlvr.trainer import guard, state as ckpt
from rlvr.trainer.batch import build_batch
from rlvr.trainer.guidance import Guide
from rlvr.trainer.learner import Learner, step_seed
from rlvr.trainer.pipeline import AsyncRollout, PipelineError, probe_ids_for, thread_split
from rlvr.trainer.policy import load_tokenizer, resolve_device, resolve_dtype
from rlvr.trainer.progress import StepProgress
from rlvr.vision.images import image_label
from rlvr.types import Example

log = logging.getLogger("rlvr")


class TrainingDiverged(RuntimeError):
    """Raised after ``trainer.max_bad_steps`` consecutive steps with a non-finite loss or gradient norm."""


def seed_step(seed: int, step: int) -> None:
    """Seed torch / python / numpy from (seed, step)."""
    mixed = step_seed(seed, step)
    torch.manual_seed(mixed)
    random.seed(mixed)
    np.random.seed(mixed)


def prompt_seeds(seed: int, step: int, first: int, count: int) -> list[int]:
    """The sampling seeds of the step's prompts ``first`` .. ``first + count - 1`` (in the order drawn): a
    prompt's completions depend on (seed, step, its position), not on which batch or worker samples it."""
    return [int(np.random.SeedSequence([seed, step, k]).generate_state(1, np.uint64)[0] >> np.uint64(1))
            for k in range(first, first + count)]


def start_workers(cfg: RunConfig, tokenizer, prompts: list[str], resume_from: Path | None, examples=None):
    """(learner, rollout engine, reward scorer), each with ``close()``: in this process, or as Ray actors with
    distributed.backend: ray (the same methods; rlvr/distributed/). The learner starts from ``resume_from``;
    ``examples``: what a multi-turn environment resets from."""
    if cfg.distributed.backend == "ray":
        from rlvr.distributed.workers import start_ray_workers

        return start_ray_workers(cfg, prompts, resume_from)
    device = resolve_device(cfg.model.device)
    dtype = resolve_dtype(cfg.model.dtype, device)
    learner = Learner(cfg, device, dtype, resume=resume_from)
    if cfg.async_.max_staleness > 0:  # the engine in a process of its own, so that sampling overlaps the update
        from rlvr.rollout.process import RolloutProcess
        from rlvr.trainer.pipeline import thread_split

        from rlvr.distributed.workers import for_workers  # absolute paths, vLLM sized for these prompts

        engine = RolloutProcess(for_workers(cfg, prompts), thread_split(cfg)[1], cfg.async_.start_timeout_s,
                                cfg.async_.partial_rollout)
    else:
        engine = make_engine(cfg, learner.model, tokenizer, device, dtype, prompts, examples=examples)
    r = cfg.reward
    scorer = RewardScorer(r.components, r.timeout_s, r.num_workers, memory_limit_mb=r.memory_limit_mb)
    if scorer.needs_policy:  # a model-based reward (rlpr) scores with the live policy, in this process
        scorer.attach_policy(learner.model, tokenizer, device, add_special_tokens=not cfg.prompt.chat_template)
    return learner, engine, scorer


def load_data(cfg: RunConfig) -> tuple[list, list]:
    """Training (and held-out) examples; bad rows reported once. Runs before any model or tokenizer loads."""
    if cfg.selfplay.enabled:  # self-play proposes its own tasks; data.eval_source may hold held-out ones
        return [], load_examples(cfg.data, eval=True).examples if cfg.data.eval_source else []
    needs_answer = not label_free(cfg.reward.components)  # TTRL / RLCCF: rows without answers train
    report = load_examples(cfg.data, answer_required=needs_answer)
    if report.bad_rows or report.notes:  # skipped rows, duplicate rows
        log.warning(report.summary())
    held_out = load_examples(cfg.data, eval=True, answer_required=needs_answer).examples if cfg.data.eval_source else []
    check_template(cfg.prompt, report.examples + held_out)
    return report.examples, held_out


def render_prompts(cfg: RunConfig, tokenizer, *example_lists) -> None:
    """Each example's prompt, under its data.sources entry's own template where it has one."""
    prompts = {source_name(s): dataclasses.replace(cfg.prompt, template=s.template)
               for s in cfg.data.sources if s.template}
    for origin, prompt in prompts.items():
        check_template(prompt, [ex for ex in example_lists[0] if ex.origin == origin][:1], tokenizer)
    check_template(cfg.prompt, [ex for ex in example_lists[0] if ex.origin not in prompts][:1], tokenizer)
    tools = prompt_tools(cfg)  # multi-turn with format chat_template: the template's tools=
    for examples in example_lists:
        for ex in examples:
            ex.prompt = render_prompt(ex, prompts.get(ex.origin, cfg.prompt), tokenizer, tools=tools)


def correct_flags(cfg: RunConfig, results) -> list[bool]:
    """Whether each completion counts as correct: its first reward component (the verifier) >= correct_threshold."""
    first = [next(iter(x.components.values())) if x.components else x.score for x in results]
    return [s >= cfg.reward.correct_threshold for s in first]


def sample_groups(cfg: RunConfig, sampler, engine, scorer, step: int,
                  generate=None, counters: dict | None = None, guide: Guide | None = None
                  ) -> tuple[list, list, list, dict[str, float]]:
    """P prompts x G completions, scored. With dynamic sampling (DAPO), groups whose rewards all agree are
    dropped and more prompts are sampled until P groups are kept or ``max_sample_batches`` is reached; with
    algorithm.std_filter (RLPR) so are groups whose reward std is below beta x its running mean (kept in
    ``counters["std_ema"]``, checkpointed with the counters).
    ``generate``: what samples (default engine.generate; the async producer's resumes partial rollouts).
    ``guide``: algorithm.guidance (rlvr/trainer/guidance.py): teacher completions take slots of the scored groups.
    A vote reward's n_train keeps the first n_train completions of each group after the vote (TTRL)."""
    generate = generate or engine.generate
    r, a = cfg.rollout, cfg.algorithm
    kept_ex, kept_comp, kept_res = [], [], []
    batches = dropped = drawn = 0
    seconds = {"rollout": 0.0, "reward": 0.0}
    all_rewards: list[float] = []
    workers: dict[str, float] = {}  # Ray workers' timings and restarts (engine / scorer .last_metrics)
    std_dropped = 0
    refill = a.dynamic_sampling or a.std_filter
    while len(kept_ex) < r.prompts_per_step and batches < (a.max_sample_batches if refill else 1):
        examples = sampler.next_batch()
        seeds = prompt_seeds(cfg.trainer.seed, step, drawn, len(examples))
        drawn += len(examples)
        t0 = time.perf_counter()
        groups = generate([ex.prompt for ex in examples], r.n, max_new_tokens=r.max_new_tokens,
                                 temperature=r.temperature, top_p=r.top_p, top_k=r.top_k, batch_size=r.batch_size,
                                 seeds=seeds, **image_kwargs(examples))  # images: a vision-language policy
        t1 = time.perf_counter()
        flat_ex = [ex for ex in examples for _ in range(r.n)]
        flat = [c for g in groups for c in g]
        extra = [{"completion_tokens": len(c.token_ids), "finish_reason": c.finish_reason, "sample_seed": seeds[p]}
                 for p, g in enumerate(groups) for c in g]  # sample_seed: pairwise_judge's reference draw
        results = add_env_rewards(scorer.score(flat_ex, [c.text for c in flat], extra), flat)  # multi-turn env
        if (n := train_votes(cfg.reward.components) or r.n) < r.n:  # TTRL: all r.n vote, n_train are trained on
            groups, results = [g[:n] for g in groups], [x for k, x in enumerate(results) if k % r.n < n]
        seconds["rollout"] += t1 - t0
        seconds["reward"] += time.perf_counter() - t1
        for key, value in {**getattr(engine, "last_metrics", {}), **getattr(scorer, "last_metrics", {})}.items():
            workers[key] = workers.get(key, 0.0) + value  # seconds and restarts add up over sampling batches
        batches += 1
        all_rewards.extend(x.score for x in results)
        correct = np.array(correct_flags(cfg, results), dtype=np.float64).reshape(len(examples), n)
        sampler.observe(examples, correct.mean(axis=1).tolist())  # curricula (weakness, skip_solved) learn here
        if guide is not None:  # teacher completions replace slots (LUFFY / AMPO) or queue for SFT (ReLIFT)
            groups, results, guided = guide.apply(examples, groups, results, correct, scorer, step)
            for key, value in guided.items():
                workers[key] = workers.get(key, 0.0) + value
        rewards = torch.tensor([x.score for x in results]).view(len(examples), n)
        keep = zero_variance_groups(rewards) if a.dynamic_sampling else torch.ones(len(examples), dtype=torch.bool)
        if a.std_filter:  # RLPR: composes with dynamic sampling (a group is kept when both keep it)
            wide, counters["std_ema"] = std_ema_filter(rewards, counters.get("std_ema"), a.std_filter_beta,
                                                       a.std_filter_ema)
            std_dropped += int((keep & ~wide).sum())
            keep = keep & wide
        for p in range(len(examples)):
            if keep[p] and len(kept_ex) < r.prompts_per_step:
                kept_ex.append(examples[p])
                kept_comp.append(groups[p])
                kept_res.extend(results[p * n : (p + 1) * n])
        dropped += int((~keep).sum())
    if not kept_ex:  # every group had zero variance in every batch: nothing to learn from this step
        kept_ex, kept_comp, kept_res = examples, groups, results
    metrics = {"time/rollout_s": seconds["rollout"], "time/reward_s": seconds["reward"],
               "sampling/batches": float(batches), "sampling/groups_dropped": float(dropped),
               "sampling/groups_kept": float(len(kept_ex)),
               "sampling/reward_mean_all": float(np.mean(all_rewards)),  # before filtering: unbiased
               **({"sampling/std_filtered": float(std_dropped), "sampling/std_ema": counters["std_ema"]}
                  if a.std_filter else {}),
               **workers, **sampler.metrics()}
    return kept_ex, kept_comp, kept_res, metrics


def reward_metrics(cfg: RunConfig, batch, examples, results) -> dict[str, float]:
    n = len(batch) // len(examples) if examples else cfg.rollout.n  # n_train of a vote reward: fewer than rollout.n
    rewards = batch.rewards.view(-1, n)
    lengths = batch.response_mask.sum(-1).float()
    correct = correct_flags(cfg, results)
    metrics = {
        "reward/mean": float(rewards.mean()),
        "reward/std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
        "accuracy": float(np.mean(correct)),
        "frac_reward_zero_std": float(all_equal_groups(rewards).float().mean()),  # the dynamic-sampling test
        "completions/mean_length": float(lengths.mean()),
        "completions/max_length": float(lengths.max()),
        "completions/clipped_ratio": float(batch.truncated.float().mean()),
        # share with no <answer>/\boxed{} span under answer_format tag | boxed | tag_or_boxed (first component)
        "reward/no_answer_frac": float(np.mean([bool((x.details or {}).get("no_answer_span")) for x in results]))
        if results else 0.0,
    }
    names = {name for x in results for name in x.components}
    for name in sorted(names):
        metrics[f"reward/{name}/mean"] = float(np.mean([x.components.get(name, 0.0) for x in results]))
    metrics.update(vote_metrics(results))  # majority_vote / collective_vote: label accuracy, majority ratio
    origins = np.repeat([ex.origin for ex in examples or []], n)
    for origin in sorted(set(origins.tolist()) - {""}):  # a data.sources mixture: each source's part of the batch
        rows = origins == origin
        metrics[f"reward/source/{origin}/mean"] = float(rewards.flatten()[torch.from_numpy(rows)].mean())
        metrics[f"accuracy/source/{origin}"] = float(np.mean(np.asarray(correct)[rows]))
        metrics[f"data/source/{origin}/share"] = float(rows.mean())
    return metrics


def completion_rows(cfg, step, examples, groups, results) -> list[dict[str, Any]]:
    flat = [(ex, c) for ex, g in zip(examples, groups) for c in g]
    return [{"step": step, "index": ex.index, "prompt": ex.prompt, "completion": c.text, "answer": ex.answer,
             "reward": x.score, "correct": ok, "components": x.components, "reason": x.reason,
             "extracted": x.extracted, **({"details": x.details} if x.details else {}),
             "finish_reason": c.finish_reason, "tokens": len(c.token_ids), "version": c.version,
             **({"segments": c.segments} if c.segments else {}), **({"turns": c.turns} if c.turns else {}),
             **({"images": [image_label(ref) for ref in ex.images]} if ex.images else {}),  # never the pixels
             **({"source": ex.origin} if ex.origin else {}), **({"teacher": True} if c.off_policy else {})}
            for (ex, c), x, ok in zip(flat, results, correct_flags(cfg, results))]


@guard.guarded  # model folder and output folders checked first; the output lock released on exit
def train(cfg: RunConfig) -> dict[str, Any]:
    """Run (or resume) training as configured; returns the last step's metrics."""
    if cfg.stages:  # cascaded stages: each one a run of this function in a folder of its own
        from rlvr.trainer.stages import train_stages

        return train_stages(cfg)
    out = Path(cfg.output_dir)  # created once the data and tokenizer checks have passed (nothing written before)
    t, a = cfg.trainer, cfg.algorithm
    transformers_logging.disable_progress_bar()
    if t.deterministic:
        torch.use_deterministic_algorithms(True)
    torch.manual_seed(t.seed)
    examples, held_out = load_data(cfg)
    tokenizer = load_tokenizer(cfg.model)
    render_prompts(cfg, tokenizer, examples, held_out)
    examples, held_out = drop_long_prompts(cfg, tokenizer, examples, held_out)  # skipped before the model loads
    guard.claim_output(out)  # mkdir, lock output_dir (one run at a time), remove stale *.tmp checkpoints
    (out / "config.yaml").write_text(to_yaml(cfg))  # the resolved config, for `rlvr data select` and readers
    if cfg.selfplay.enabled:  # Absolute Zero: the batch comes from the game (rlvr/selfplay/game.py)
        from rlvr.selfplay.game import SelfPlay

        sampler = SelfPlay(cfg, lambda text: render_prompt(Example(text, None), cfg.prompt, tokenizer))
    else:
        sampler = make_sampler(cfg.data, examples, cfg.rollout.prompts_per_step, t.seed)  # uniform | weakness | mix
    counters = {"step": 0, "kl_coef": a.kl_coef, "bad_streak": 0, "best_reward": -math.inf, "since_best": 0,
                "std_ema": None,  # algorithm.std_filter: the running mean of group reward stds
                "reference_reset": False}
    resume_from = ckpt.find_resume(out, cfg.checkpoint.resume)
    saved_async = None  # an async run's sampled batches not trained on yet (rlvr/trainer/pipeline.py)
    guide = Guide.from_config(cfg, tokenizer)  # algorithm.guidance: teacher completions (None when off)
    if resume_from is not None:
        saved = ckpt.restore_driver(resume_from, sampler, counters)  # the learner loads the rest
        saved_async = saved.get("async")
        if guide is not None:
            guide.load_state_dict(saved.get("guidance"))
        log.info("resumed from %s (step %d)", resume_from, counters["step"])
    start = counters["step"]
    later = [c for c in ckpt.list_checkpoints(out) if ckpt.step_of(c) > start]
    if later:
        raise FileExistsError(
            f"{out / 'checkpoints'} already holds checkpoints past step {start} (up to {later[-1].name}); this run "
            "would mix with them. Use checkpoint.resume=auto to continue the latest, a new output_dir, or delete them.")
    if start >= t.steps:
        message = (f"nothing to do: the checkpoint {resume_from} is at step {start} and trainer.steps = {t.steps}; "
                   "raise trainer.steps to train further")
        print(message)
        return {"step": start, "message": message}

    interrupted = {"flag": False}

    def on_signal(signum, frame):  # SIGINT and SIGTERM
        if interrupted["flag"]:
            raise KeyboardInterrupt
        interrupted["flag"] = True
        print(f"\n{signal.Signals(signum).name}: finishing this step, writing a checkpoint, then exiting "
              "(Ctrl-C again to abort)")

    def save(step: int) -> None:
        with pipeline.paused() if pipeline is not None and not pipeline.failed else nullcontext():
            driver_state = {"sampler": sampler.state_dict(), "counters": counters}
            if pipeline is not None:  # batches sampled ahead (and their versions) resume with the run
                driver_state["async"] = pipeline.state_dict()
            if guide is not None:  # ReLIFT's buffer and supervised optimizer
                driver_state["guidance"] = guide.state_dict()
            learner.save(out, step, tokenizer, driver_state, cfg.checkpoint.keep, counters["reference_reset"])

    in_main_thread = threading.current_thread() is threading.main_thread()
    metrics: dict[str, Any] = {}
    pipeline = None  # async.max_staleness > 0: the producer of rollouts that overlap the updates
    with ExitStack() as stack:  # closes (in reverse) the workers, the logger and the signal handlers
        if cfg.async_.max_staleness > 0 and cfg.distributed.backend == "none":
            stack.callback(torch.set_num_threads, torch.get_num_threads())
            torch.set_num_threads(thread_split(cfg)[0])  # the cores the rollout process leaves
        sizing = sampler.sizing_prompts() if cfg.selfplay.enabled else []  # the engine's context size
        learner, engine, scorer = start_workers(cfg, tokenizer, [ex.prompt for ex in examples + held_out] + sizing,
                                                resume_from, examples + held_out)
        for worker in (learner, engine, scorer):
            stack.callback(worker.close)
        if guide is not None:
            guide.attach(learner.model, learner.device)
        if cfg.async_.max_staleness > 0:
            pipeline = AsyncRollout(cfg, engine, lambda generate, k: sample_groups(cfg, sampler, engine, scorer, k,
                                                                                   generate),
                                    probe_ids_for(tokenizer, examples[0].prompt, not cfg.prompt.chat_template),
                                    saved_async)
            stack.callback(pipeline.close)
            pipeline.start(start, learner)  # the engine gets these (resumed) weights as version `start`
        else:
            engine.sync_weights(learner.policy)  # a separate engine (vLLM, Ray) starts from these (resumed) weights
        if cfg.selfplay.enabled and start == 0:
            if cfg.selfplay.seed_tasks:
                sampler.add_seed_tasks(cfg.selfplay.seed_tasks)
            sampler.fill(engine)  # selfplay.seed_buffer_size: the base model's valid proposals, before step 1
        logger = MetricsLogger(out, cfg.logging.backends, cfg.logging.project, cfg.logging.run_name, to_dict(cfg))
        stack.callback(logger.close)
        logger.truncate_after(start)
        if in_main_thread:
            for sig in (signal.SIGINT, signal.SIGTERM):  # SIGTERM: Slurm, Kubernetes
                stack.callback(signal.signal, sig, signal.signal(sig, on_signal))
        progress = stack.enter_context(StepProgress(t.steps, start, enabled=cfg.logging.progress))
        for step in range(start + 1, t.steps + 1):
            try:
                metrics = train_step(cfg, step, sampler, learner, engine, scorer, pipeline, counters, tokenizer, guide)
                if held_out and cfg.eval.every and (step % cfg.eval.every == 0 or step == t.steps):
                    run_eval = lambda: evaluate_held_out(cfg, engine, scorer, held_out, step)  # noqa: E731
                    metrics.update(pipeline.call(run_eval) if pipeline is not None else run_eval())
            except PipelineError as err:  # a weight sync failed: stop resumably, never train on
                if counters["step"] == start:
                    raise PipelineError(f"{err}. No step of this run finished; nothing was written") from err
                save(counters["step"])
                raise PipelineError(f"{err}. A checkpoint of step {counters['step']} was written (with the batches "
                                    "already sampled); resume with the same command") from err
            sampled = metrics.pop("_rows")  # not a metric: what completions.jsonl is made of
            logger.log(step, metrics)
            if cfg.logging.log_completions:
                logger.log_completions(step, completion_rows(cfg, step, *sampled))
            progress.advance(step, metrics)
            if counters["bad_streak"] >= t.max_bad_steps:
                raise TrainingDiverged(
                    f"{counters['bad_streak']} consecutive steps had a non-finite loss or gradient norm (last: "
                    f"step {step}); stopping. The last good checkpoint is intact in {out / 'checkpoints'}; lower "
                    "trainer.lr, check rewards for extreme values, or raise trainer.max_bad_steps.")
            last = step == t.steps
            if (cfg.checkpoint.every and step % cfg.checkpoint.every == 0) or interrupted["flag"] or \
                    (last and cfg.checkpoint.save_final):
                save(step)
            if interrupted["flag"]:
                print(f"checkpoint written at step {step}; resume with the same command")
                break
    from rlvr.eval.plots import plot_curves

    plot_curves(out / "metrics.jsonl", out / "curves.png")  # reward and eval/* accuracy over steps
    return {"step": counters["step"], **metrics}


def train_step(cfg: RunConfig, step: int, sampler, learner, engine, scorer, pipeline, counters,
               tokenizer, guide: Guide | None = None) -> dict[str, Any]:
    """One step: sampled groups (sampled now, or by the async pipeline ahead of time), the update, the weight
    push, the counters. Returns the step's metrics (with "_rows": what completion_rows needs)."""
    t, a = cfg.trainer, cfg.algorithm
    step_start = time.perf_counter()
    seed_step(t.seed, step)
    if pipeline is not None:
        batch_examples, groups, results, metrics = pipeline.next_batch(step)
    elif cfg.selfplay.enabled:  # proposer and solver groups of every task type, with their rewards
        batch_examples, groups, results, metrics = sampler.play(engine, step)
    else:
        batch_examples, groups, results, metrics = sample_groups(cfg, sampler, engine, scorer, step,
                                                                 counters=counters, guide=guide)
    batch = build_batch(batch_examples, groups, results, tokenizer.pad_token_id, a.group_key)
    if pipeline is None:
        engine.sleep()  # vLLM sleep mode (GPU): its KV cache is freed during the update
    t0 = time.perf_counter()
    update_metrics, finite = learner.update(batch, counters["kl_coef"], step)
    if guide is not None:  # ReLIFT: the interleaved supervised step once its buffer is full
        metrics.update(guide.sft_step(learner.model, step))
    metrics["time/update_s"] = time.perf_counter() - t0
    # the next rollout samples from the new weights (async: the producer loads them, checked, when it is due)
    metrics.update(pipeline.push(step, learner) if pipeline is not None else engine.sync_weights(learner.policy))
    metrics.update(reward_metrics(cfg, batch, batch_examples, results))
    metrics.update(trajectory_metrics(groups))  # multi-turn only: turns, tool calls and errors, observations
    metrics.update(update_metrics)
    counters["step"] = step
    counters["bad_streak"] = 0 if finite else counters["bad_streak"] + 1
    if not finite:
        log.warning("step %d: non-finite loss or gradient norm (loss %s, grad norm %s); update skipped",
                    step, update_metrics.get("loss"), update_metrics.get("grad_norm"))
    if a.kl_coef > 0:  # a reference policy exists
        if a.kl_target > 0 and "kl" in update_metrics:
            counters["kl_coef"] = adaptive_kl_coef(counters["kl_coef"], update_metrics["kl"], a.kl_target,
                                                   a.kl_horizon, len(batch))
        maybe_reset_reference(cfg, counters, metrics["reward/mean"], step, learner)
    elapsed = time.perf_counter() - step_start
    metrics.update({"step_time_s": elapsed, "kl_coef": counters["kl_coef"],
                    "skipped": float(not finite), "num_tokens": float(batch.response_mask.sum()),
                    "tokens_per_s": float(batch.response_mask.sum()) / elapsed,
                    "completions_per_s": len(batch) / elapsed, "epoch": float(sampler.epoch),
                    "_rows": (batch_examples, groups, results)})
    return metrics


def maybe_reset_reference(cfg, counters, reward_mean, step, learner) -> None:
    """ProRL: hard-reset the reference to the current policy (and the optimizer state) every N steps or when the
    mean reward has not improved for ``ref_reset_patience`` steps."""
    a = cfg.algorithm
    if reward_mean > counters["best_reward"]:
        counters["best_reward"], counters["since_best"] = reward_mean, 0
    else:
        counters["since_best"] += 1
    due = (a.ref_reset_every and step % a.ref_reset_every == 0) or \
        (a.ref_reset_patience and counters["since_best"] >= a.ref_reset_patience)
    if due:
        learner.reset_reference()
        counters.update(reference_reset=True, since_best=0, best_reward=-math.inf)
        log.info("step %d: reference policy and optimizer state reset", step)


def evaluate_held_out(cfg: RunConfig, engine, scorer, held_out, step: int) -> dict[str, float]:
    from rlvr.eval import evaluate

    e = cfg.eval
    result = evaluate(engine, scorer, held_out, n=e.n, ks=e.k, temperature=e.temperature, top_p=1.0,
                      max_new_tokens=e.max_new_tokens or cfg.rollout.max_new_tokens,
                      batch_size=cfg.rollout.batch_size, greedy=e.temperature == 0, progress=False,
                      correct_threshold=cfg.reward.correct_threshold, seed=cfg.trainer.seed + step)
    return {f"eval/{k}": float(v) for k, v in result.summary.items() if isinstance(v, (int, float))}
