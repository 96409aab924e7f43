"""One step of Absolute Zero self-play: propose, validate, estimate learnability, solve; the batch for the update.

The trainer's loop (rlvr/trainer/loop.py) asks ``SelfPlay.play(engine, step)`` for its batch instead of sampling
data prompts; everything after that (advantages, the update, logging, checkpoints, resume) is the loop's own.
For each task type t in ``selfplay.task_types``:

1. **Propose**: ``propose_per_type`` prompts, each with K = ``n_refs`` reference triplets drawn from the t buffer
   (induction: one program drawn from the deduction and abduction buffers), ``rollout.n`` completions each.
2. **Validate** every parsed proposal in the sandbox (rlvr.selfplay.executor: parses, no forbidden import, runs,
   deterministic, plain data); the outputs come from that execution, never from the model.
3. **Learnability**: each valid proposal is posed to the solver ``n_solve`` times; its proposer reward is
   1 - solve rate when strictly between 0 and 1, else 0 (rlvr.selfplay.rewards). Valid tasks join the buffer.
4. **Solve**: ``solve_per_type`` tasks (this step's new valid ones first, then the buffer's), ``rollout.n``
   completions each, checked by execution.

Each prompt becomes an Example whose ``origin`` is "<type>/<role>" (so completions.jsonl rows carry it as
``source`` and the loop logs reward/accuracy per type and role) and whose ``metadata["task_role"]`` is the same:
with ``algorithm.group_key: task_role`` (preset ``azr``) GRPO's baseline is one mean/std per task type x role,
Absolute Zero's TRR++. Sampling seeds come from (trainer.seed, step, phase, prompt), buffers are the
checkpointed state (``state_dict``), so a resumed run continues with the same buffers and draws.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any, Callable

import numpy as np

from rlvr.selfplay.buffer import TaskBuffers
from rlvr.selfplay.executor import Executor
from rlvr.selfplay.rewards import check_solutions, composite_reward, proposer_reward, solver_result
from rlvr.selfplay.tasks import Proposal, Task, answer_of, parse_proposal, propose_prompt, solve_prompt
from rlvr.types import Completion, Example, RewardResult

log = logging.getLogger("rlvr")

_PHASES = {"propose": 1, "learnability": 2, "solve": 3, "fill": 4}


def _seeds(seed: int, step: int, phase: str, count: int) -> list[int]:
    return [int(np.random.SeedSequence([seed, step, _PHASES[phase], k]).generate_state(1, np.uint64)[0]
                >> np.uint64(1)) for k in range(count)]


class SelfPlay:
    """The self-play game: buffers, executor and the step's sampling. ``render`` turns a raw task prompt into the
    model's prompt (the run's template / chat template)."""

    epoch = 0  # the loop logs the data epoch; self-play has none

    def __init__(self, cfg, render: Callable[[str], str]):
        s = cfg.selfplay
        self.cfg, self.s, self.render = cfg, s, render
        self.buffers = TaskBuffers(s.task_types, s.buffer_size)
        self.executor = Executor(call_timeout_s=s.call_timeout_s, memory_mb=s.memory_mb,
                                 max_program_chars=s.max_program_chars,
                                 forbidden_modules=s.forbidden_modules, forbidden_names=s.forbidden_names)
        self.rejections: Counter = Counter()  # over the whole run (checkpointed)

    # ------------------------------------------------------------------------------------------------------
    # the loop's sampler interface

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "selfplay", "buffers": self.buffers.state_dict(), "rejections": dict(self.rejections)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != "selfplay":
            from rlvr.data import DataError

            raise DataError("the checkpoint was written by a run without self-play; it cannot resume one")
        self.buffers.load_state_dict(state["buffers"])
        self.rejections = Counter(state.get("rejections", {}))

    def sizing_prompts(self) -> list[str]:
        """Prompts as long as a step's can be (the engine sizes its context from them): K identity references."""
        refs = [self.buffers.tasks["deduction"][0]] * self.s.n_refs
        return [self.render(propose_prompt(t, refs, self.s.style, self.s.n_inputs)) for t in self.s.task_types]

    # ------------------------------------------------------------------------------------------------------

    def _generate(self, engine, prompts: list[str], n: int, seeds: list[int], greedy: bool = False):
        r = self.cfg.rollout
        return engine.generate([self.render(p) for p in prompts], n, max_new_tokens=r.max_new_tokens,
                               temperature=0.0 if greedy else r.temperature, top_p=r.top_p, top_k=r.top_k,
                               batch_size=r.batch_size, seeds=seeds)

    def _proposals(self, engine, step: int, per_type: int, phase: str, rng: np.random.Generator):
        """Proposer prompts for every task type, their completions, and each completion's Proposal."""
        s = self.s
        kinds, prompts, bases = [], [], []
        for t in s.task_types:
            for _ in range(per_type):
                if t == "induction":
                    programs = self.buffers.programs()
                    base = programs[int(rng.integers(len(programs)))]
                    refs = [base]
                else:
                    base, refs = None, self.buffers.sample(t, s.n_refs, rng)
                kinds.append(t)
                prompts.append(propose_prompt(t, refs, s.style, s.n_inputs))
                bases.append(base)
        n = self.cfg.rollout.n
        groups = self._generate(engine, prompts, n, _seeds(self.cfg.trainer.seed, step, phase, len(prompts)))
        parsed = [[parse_proposal(t, answer_of(c.text, s.require_think), program=base.program if base else "",
                                  n_inputs=s.n_inputs) for c in g] for t, base, g in zip(kinds, bases, groups)]
        return kinds, prompts, groups, parsed

    def _validate(self, kinds: list[str], parsed: list[list[Proposal]]) -> list[list[tuple[Task | None, str]]]:
        """Per proposal: (the verified Task, "") or (None, rejection reason)."""
        flat = [(t, p) for t, ps in zip(kinds, parsed) for p in ps]
        todo = [k for k, (_, p) in enumerate(flat) if not p.error]
        verdicts = self.executor.validate([flat[k][1].program for k in todo], [flat[k][1].inputs for k in todo])
        out: list[tuple[Task | None, str]] = [(None, "format")] * len(flat)
        for k, v in zip(todo, verdicts):
            p = flat[k][1]
            out[k] = (Task(p.program, p.inputs, v.outputs, p.message), "") if v.ok else (None, v.reason)
        n = len(parsed[0]) if parsed else 0
        return [out[i * n:(i + 1) * n] for i in range(len(parsed))]

    def _solve_rates(self, engine, step: int, items: list[tuple[str, Task]]) -> list[float]:
        """The solver's mean success over ``n_solve`` samples of each (type, task)."""
        if not items:
            return []
        k = self.s.n_solve
        prompts = [solve_prompt(t, task, self.s.style) for t, task in items]
        groups = self._generate(engine, prompts, k, _seeds(self.cfg.trainer.seed, step, "learnability", len(items)))
        checks = check_solutions([t for t, _ in items for _ in range(k)], [x for _, x in items for _ in range(k)],
                                 [c.text for g in groups for c in g], self.executor,
                                 require_think=self.s.require_think)
        return [float(np.mean([bool(ok) for ok, _ in checks[i * k:(i + 1) * k]])) for i in range(len(items))]

    def add_seed_tasks(self, path: str) -> int:
        """Rows {"program", "inputs"} (or "input") of ``path``, validated like proposals (their outputs from
        execution), into the deduction and abduction buffers. A row that fails is a DataError naming its line."""
        import json
        from pathlib import Path

        from rlvr.data import DataError

        lines = [(k, line) for k, line in enumerate(Path(path).expanduser().read_text().splitlines(), 1) if line.strip()]
        rows = []
        for k, line in lines:
            try:
                row = json.loads(line)
                rows.append((k, str(row["program"]), [str(x) for x in row.get("inputs") or [row["input"]]]))
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise DataError(f"selfplay.seed_tasks {path} line {k}: expected {{program, inputs}} ({err})") from None
        verdicts = self.executor.validate([p for _, p, _ in rows], [i for _, _, i in rows])
        added = 0
        for (k, program, inputs), v in zip(rows, verdicts):
            if not v.ok:
                raise DataError(f"selfplay.seed_tasks {path} line {k}: invalid program ({v.reason}: {v.detail})")
            for t in ("deduction", "abduction"):
                added += self.buffers.add(t, Task(program, inputs[:1], v.outputs[:1]))
        return added

    def fill(self, engine) -> dict[str, float]:
        """Grow each buffer to ``seed_buffer_size`` tasks with the starting model's valid proposals (no update;
        at most 20 rounds), as the paper does before training. Returns what it did."""
        target, rounds, added = self.s.seed_buffer_size, 0, 0
        rng = np.random.default_rng([self.cfg.trainer.seed, 0, _PHASES["fill"]])
        while target and rounds < 20 and any(len(self.buffers.tasks[t]) < target for t in self.s.task_types):
            kinds, _, _, parsed = self._proposals(engine, rounds, self.s.propose_per_type, "fill", rng)
            for t, row in zip(kinds, self._validate(kinds, parsed)):
                for task, _reason in row:
                    if task is not None and len(self.buffers.tasks[t]) < target:
                        added += self.buffers.add(t, task)
            rounds += 1
        if target:
            log.info("self-play: filled the buffers with %d tasks in %d rounds (%s)", added, rounds,
                     {t: len(self.buffers.tasks[t]) for t in self.s.task_types})
        return {"selfplay/fill_rounds": float(rounds), "selfplay/fill_added": float(added)}

    def play(self, engine, step: int) -> tuple[list[Example], list[list[Completion]], list[RewardResult],
                                                 dict[str, float]]:
        """The step's batch: (examples, completion groups, rewards, metrics), as the loop's sample_groups gives."""
        s, n = self.s, self.cfg.rollout.n
        rng = np.random.default_rng([self.cfg.trainer.seed, step])
        t0 = time.perf_counter()
        kinds, prompts, groups, parsed = self._proposals(engine, step, s.propose_per_type, "propose", rng)
        t1 = time.perf_counter()
        verdicts = self._validate(kinds, parsed)
        valid = [(t, task) for t, row in zip(kinds, verdicts) for task, _ in row if task is not None]
        t2 = time.perf_counter()
        rates = iter(self._solve_rates(engine, step, valid))
        t3 = time.perf_counter()

        examples, out_groups, results = [], [], []
        metrics: dict[str, float] = {}
        fresh: dict[str, list[Task]] = {t: [] for t in s.task_types}
        reasons: Counter = Counter()
        duplicates = 0
        for t, prompt, group, row, props in zip(kinds, prompts, groups, verdicts, parsed):
            examples.append(self._example(t, "propose", prompt, None))
            out_groups.append(group)
            for task, reason in row:
                if task is None:
                    reasons[reason] += 1
                    results.append(RewardResult(composite_reward(reason != "format", False, 0.0) if s.composite
                                                else 0.0, reason=f"invalid: {reason}", components={"correct": 0.0}))
                    continue
                rate = next(rates)
                r = proposer_reward(rate)
                task.step = step
                if self.buffers.add(t, task):
                    fresh[t].append(task)
                else:
                    duplicates += 1
                results.append(RewardResult(composite_reward(True, True, r) if s.composite else r,
                                            reason=f"valid, solve rate {rate:.2f}", components={"correct": 1.0},
                                            details={"solve_rate": rate, "task": task.to_dict()}))
        self.rejections.update(reasons)

        t4 = time.perf_counter()
        solve_items: list[tuple[str, Task]] = []
        for t in s.task_types:
            tasks = fresh[t][: s.solve_per_type]
            if len(tasks) < s.solve_per_type:
                tasks += self.buffers.sample(t, s.solve_per_type - len(tasks), rng)
            solve_items += [(t, task) for task in tasks]
        solve_groups = self._generate(engine, [solve_prompt(t, task, s.style) for t, task in solve_items], n,
                                      _seeds(self.cfg.trainer.seed, step, "solve", len(solve_items)))
        t5 = time.perf_counter()
        checks = check_solutions([t for t, _ in solve_items for _ in range(n)],
                                 [x for _, x in solve_items for _ in range(n)],
                                 [c.text for g in solve_groups for c in g], self.executor,
                                 require_think=s.require_think)
        for i, ((t, task), group) in enumerate(zip(solve_items, solve_groups)):
            examples.append(self._example(t, "solve", solve_prompt(t, task, s.style), task))
            out_groups.append(group)
            results += [solver_result(ok, reason, s.composite) for ok, reason in checks[i * n:(i + 1) * n]]
        t6 = time.perf_counter()

        metrics.update(self._metrics(examples, out_groups, results, parsed, reasons, duplicates))
        metrics.update({"time/rollout_s": (t1 - t0) + (t3 - t2) + (t5 - t4), "time/reward_s": (t2 - t1) + (t6 - t5),
                        "time/learnability_s": t3 - t2})
        return examples, out_groups, results, metrics

    def _example(self, task_type: str, role: str, prompt: str, task: Task | None) -> Example:
        key = f"{task_type}/{role}"
        return Example(question=prompt, answer=None, verifier="selfplay", source="selfplay", origin=key,
                       prompt=self.render(prompt),
                       metadata={"task_role": key, "task_type": task_type, "role": role,
                                 **({"task": task.to_dict()} if task else {})})

    def _metrics(self, examples, groups, results, parsed, reasons: Counter, duplicates: int) -> dict[str, float]:
        n = self.cfg.rollout.n
        m: dict[str, float] = {}
        for t in self.s.task_types:
            for role in ("propose", "solve"):
                rows = [i for i, ex in enumerate(examples) if ex.origin == f"{t}/{role}"]
                res = [results[i * n + j] for i in rows for j in range(n)]
                if not res:
                    continue
                score = float(np.mean([x.components["correct"] for x in res]))
                m[f"selfplay/{t}/{role}/reward"] = float(np.mean([x.score for x in res]))
                m[f"selfplay/{t}/{role}/{'validity' if role == 'propose' else 'solve_rate'}"] = score
                if role == "propose":
                    rates = [x.details["solve_rate"] for x in res if "solve_rate" in x.details]
                    if rates:
                        m[f"selfplay/{t}/propose/learnable"] = float(np.mean([0 < r < 1 for r in rates]))
                        m[f"selfplay/{t}/propose/solve_rate"] = float(np.mean(rates))
                    programs = [x.details["task"]["program"] for x in res if "task" in x.details]
                    if programs:
                        m[f"selfplay/{t}/propose/program_chars"] = float(np.mean([len(p) for p in programs]))
        for reason in sorted(reasons):
            m[f"selfplay/rejected/{reason}"] = float(reasons[reason])
        m["selfplay/duplicates"] = float(duplicates)
        m.update(self.buffers.metrics())
        return m
