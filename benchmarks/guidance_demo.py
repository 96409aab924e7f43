"""Teacher guidance (LUFFY, AMPO, ReLIFT) vs GRPO on problems out of the demo base's reach; TTRL on the held-out set.

    python -c "from rlvr.demo.pretrain import build_base; build_base()"     # the demo's base + data, once
    PYTHONPATH=. python benchmarks/guidance_demo.py data                    # the study's train / held-out files
    PYTHONPATH=. python benchmarks/guidance_demo.py train --jobs 2          # 4 arms x seeds 0 1 2
    PYTHONPATH=. python benchmarks/guidance_demo.py eval                    # rlvr eval + rlvr compare per run
    PYTHONPATH=. python benchmarks/guidance_demo.py ttrl --jobs 2           # test-time RL without answers
    PYTHONPATH=. python benchmarks/guidance_demo.py report                  # tables (stdout, --json) + plots

The hard part: problems whose first operand has three digits ("237+5+8-8"), which the warm-up never showed;
the base solves none of them (greedy 0/64, 0 of 64 at pass@16 at T 1; measured before the study). Training data:
2000 problems of the demo's train.jsonl (two-digit start, "easy") + 2000 three-digit ones ("hard", the train
pool of rlvr.demo.task), each row with its worked solution (``solution``, the task's own generator) as the
teacher completion. Held-out: the demo's heldout.jsonl (easy, 256) and 256 three-digit held-out-pool problems.

Every run is `rlvr train examples/demo.yaml` (P = 16 x G = 8, the demo's lr / schedule / base), ``--steps``
steps (default 40: what this shared 2-core machine allowed for 12 runs), rollout.max_new_tokens 80 (a three-digit solution is up to 68 characters + EOS). The arms
differ only in the guidance: the presets' guidance section, with the demo's GRPO advantage (group std),
token-mean and no entropy bonus kept for all arms, so that the teacher is the only difference:

- grpo:    the demo as shipped;
- luffy:   algorithm=luffy: one teacher completion in every group, off-policy tokens -A p/(p + 0.1);
- ampo:    algorithm=ampo: teachers only in all-failing groups (here 1: one solution per problem), comprehension
           selection, teacher reward forced to 1, dual clip 10;
- relift:  algorithm=relift: all-failing prompts queue their solution; a supervised step every 16 of them
           (sft_buffer_size 16 = one step's prompts, ReLIFT's 128 = its batch) at the RL learning rate.

`eval`: every final checkpoint (and the base) by `rlvr eval`: the first 128 hard held-out problems with n = 16 at
T = 1 plus one greedy sample (pass@1, pass@16, greedy pass@1), the 256 easy ones greedily; then `rlvr compare` of
each guided run against the GRPO run of the same seed and against the base on the hard part: the "expanded" count
is the hard problems a guided run solves (at least once in 16) that the other does not. (16 samples of all 256
problems of both parts took 4+ minutes per model on the shared machine; this protocol fits.)

The measured study (docs/guidance.md) ran ``--seeds 0 1`` for train / eval and ttrl: the third seed did not fit
the session's time on the shared 2-core machine.

`ttrl`: test-time RL on the demo's held-out problems with the answers removed (a copy of heldout.jsonl without
its answer field), reward majority_vote (G = 8 votes, all trained on), 3 seeds, 40 steps; the accuracy against
the hidden answers before / after (greedy, exact match) and the label accuracy (vote/label_accuracy, the
majority answer against the hidden one: the rows keep it in a field the reward never reads) per step.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CACHE = Path(os.environ.get("RLVR_CACHE", Path.home() / ".cache" / "rlvr")) / "demo"
HARD = (100, 999)
HARD_EVAL = 128  # hard held-out problems sampled 16 times each
COMMON = ["algorithm.norm_by_std=true", "algorithm.agg=token-mean", "algorithm.entropy_coef=0.0",
          "data.teacher_field=solution"]
ARMS = {
    "grpo": [],
    "luffy": ["algorithm=luffy", *COMMON],
    "ampo": ["algorithm=ampo", *COMMON],
    "relift": ["algorithm=relift", *COMMON, "algorithm.guidance.sft_buffer_size=16", "algorithm.guidance.sft_lr=2e-4"],
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def build_data(out: Path) -> None:
    from rlvr.demo import task

    out.mkdir(parents=True, exist_ok=True)
    easy = task.read_jsonl(CACHE / "train.jsonl")[:2000]
    hard = task.generate("train", 2000, 0, first=HARD)
    rows = [{**r, "part": "easy"} for r in easy] + [{**r, "part": "hard"} for r in hard]
    random.Random(0).shuffle(rows)
    task.write_jsonl(rows, out / "train.jsonl")
    task.write_jsonl(task.read_jsonl(CACHE / "heldout.jsonl"), out / "heldout_easy.jsonl")
    task.write_jsonl(task.generate("heldout", 256, 0, first=HARD), out / "heldout_hard.jsonl")
    # TTRL: the held-out problems without answers (the hidden answer kept under a name no reward reads)
    task.write_jsonl([{"question": r["question"], "hidden_answer": r["answer"]}
                      for r in task.read_jsonl(CACHE / "heldout.jsonl")], out / "heldout_noanswer.jsonl")
    print(f"wrote {len(rows)} train rows ({len(hard)} hard), held-out 256 easy + 256 hard, to {out}")


def train(arm: str, seed: int, args, extra: list[str] | None = None, data: Path | None = None) -> dict:
    out = Path(args.out) / f"{arm}_seed{seed}"
    final = out / "checkpoints" / f"step_{args.steps:06d}"
    t0 = time.time()
    if not final.is_dir():
        if out.exists():
            shutil.rmtree(out)
        cmd = [sys.executable, "-m", "rlvr.cli", "train", str(ROOT / "examples" / "demo.yaml"),
               f"output_dir={out}", f"trainer.seed={seed}", f"trainer.steps={args.steps}",
               f"trainer.warmup_steps={min(10, args.steps // 10)}", f"model.path={CACHE / 'base'}",
               f"data.source={data or Path(args.data) / 'train.jsonl'}", "eval.every=0",
               "rollout.max_new_tokens=80", "logging.progress=false", *(extra if extra is not None else ARMS[arm])]
        log = out.parent / f"{out.name}.log"
        out.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as f:
            subprocess.run(cmd, env=ENV, check=True, stdout=f, stderr=subprocess.STDOUT)
    return {"arm": arm, "seed": seed, "final": str(final), "train_s": time.time() - t0}


def rlvr_eval(model: str, part: str, out: Path, args, data: Path | None = None) -> dict:
    if not (out / "results.json").is_file():
        # hard: 16 samples at T 1 (pass@1, pass@16: the support) + one greedy, on the first HARD_EVAL problems;
        # easy: greedy only, all 256 (what the machine's time allowed: 16 samples of 256 took 4+ min per model)
        sampled = part == "hard"
        cmd = [sys.executable, "-m", "rlvr.cli", "eval", "--model", model,
               "--data", str(data or Path(args.data) / f"heldout_{part}.jsonl"),
               *(["--n", "16", "--k", "1,16", "--temperature", "1.0", "--greedy", "--limit", str(HARD_EVAL)] if sampled
                 else ["--n", "1", "--k", "1", "--temperature", "0.0", "--no-greedy"]),
               "--max-new-tokens", "80", "--batch-size", "1088", "--verifier", "exact_match", "--template",
               "{question}\n", "--set", "reward.components=[{name: exact_match, params: {extract: answer_tag}}]",
               "--output-dir", str(out), "--no-progress", "--device", "cpu", "--dtype", "float32"]
        subprocess.run(cmd, env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((out / "results.json").read_text())


def summary_of(results: dict) -> dict:
    s = results.get("summary", results)
    out = {k: s.get(k) for k in ("pass@1", "pass@16", "greedy_pass@1", "solved_frac")}
    if out["greedy_pass@1"] is None and s.get("n") == 1:  # greedy-only run: its pass@1 is the greedy one
        out["greedy_pass@1"] = s.get("pass@1")
    return out


def compare(a: Path, b: Path, out: Path) -> dict:
    if not (out / "compare.json").is_file():
        subprocess.run([sys.executable, "-m", "rlvr.cli", "compare", str(a), str(b), "--output-dir", str(out)],
                       env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((out / "compare.json").read_text())["support"]["counts"]


def run_evals(args) -> None:
    out = Path(args.out)
    rows = []
    jobs = [("base", None, str(CACHE / "base"))] + [
        (arm, seed, str(out / f"{arm}_seed{seed}" / "checkpoints" / f"step_{args.steps:06d}"))
        for seed in args.seeds for arm in args.arms]

    def one(job):
        arm, seed, model = job
        name = "base" if seed is None else f"{arm}_seed{seed}"
        while not (Path(model) / "config.json").is_file():  # `train` may still be running: evaluate as runs end
            time.sleep(20)
        time.sleep(5)
        return {"arm": arm, "seed": seed, **{part: summary_of(rlvr_eval(model, part, out / "eval" / f"{name}_{part}",
                                                                      args)) for part in ("easy", "hard")}}

    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(one, jobs))
    for row in rows:
        if row["seed"] is None:
            continue
        name = f"{row['arm']}_seed{row['seed']}"
        for part in ("hard",):  # support needs the 16 samples
            row[part]["vs_base"] = compare(out / "eval" / f"base_{part}", out / "eval" / f"{name}_{part}",
                                           out / "eval" / f"compare_base_{name}_{part}")
            if row["arm"] != "grpo":
                row[part]["vs_grpo"] = compare(out / "eval" / f"grpo_seed{row['seed']}_{part}",
                                               out / "eval" / f"{name}_{part}",
                                               out / "eval" / f"compare_grpo_{name}_{part}")
    (out / "eval.json").write_text(json.dumps(rows, indent=2))
    print(json.dumps(rows, indent=1))


TTRL = ["reward.components=[{name: majority_vote, params: {extract: answer_tag}}]", "data.answer_field=hidden_answer"]


def run_ttrl(args) -> None:
    data = Path(args.data) / "heldout_noanswer.jsonl"
    ttrl_args = argparse.Namespace(**{**vars(args), "out": str(Path(args.out) / "ttrl"), "steps": args.ttrl_steps})
    # data.answer_field=hidden_answer only for the label_accuracy metric: majority_vote never reads the answer
    # (a run with the field absent trains too: tests/rewards/test_vote.py)
    jobs = [("ttrl", seed) for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda job: train(*job, ttrl_args, extra=TTRL, data=data), jobs))
    hidden = Path(args.data) / "heldout_easy.jsonl"
    rows = []
    base = summary_of(rlvr_eval(str(CACHE / "base"), "easy", Path(ttrl_args.out) / "eval_base", args, hidden))
    for run in runs:
        after = summary_of(rlvr_eval(run["final"], "easy", Path(ttrl_args.out) / f"eval_seed{run['seed']}", args,
                                     hidden))
        lines = [json.loads(x) for x in (Path(run["final"]).parents[1] / "metrics.jsonl").read_text().splitlines()]
        rows.append({"seed": run["seed"], "before": base, "after": after,
                     "label_accuracy": [x.get("vote/label_accuracy") for x in lines],
                     "majority_ratio": [x.get("vote/majority_ratio") for x in lines],
                     "train_accuracy_vs_label": [x.get("accuracy") for x in lines]})
    (Path(ttrl_args.out) / "ttrl.json").write_text(json.dumps(rows, indent=2))
    print(json.dumps([{k: v for k, v in r.items() if k in ("seed", "before", "after")} for r in rows], indent=1))


def _med(values):
    values = [v for v in values if v is not None]
    return (statistics.median(values), min(values), max(values)) if values else (None, None, None)


def report(args) -> None:
    out = Path(args.out)
    rows = json.loads((out / "eval.json").read_text())
    fmt = lambda t: "-" if t[0] is None else f"{100 * t[0]:.1f}% ({100 * t[1]:.1f}-{100 * t[2]:.1f})"  # noqa: E731
    summary = {}
    print("| arm | hard greedy pass@1 | hard pass@1 (T 1) | hard pass@16 | easy greedy pass@1 | "
          "hard expanded vs GRPO | hard expanded vs base |")
    print("|---|---|---|---|---|---|---|")
    for arm in ["base", *args.arms]:
        mine = [r for r in rows if r["arm"] == arm]
        cells = {f"{part}_{k}": _med([r[part][k] for r in mine]) for part in ("easy", "hard")
                 for k in ("greedy_pass@1", "pass@1", "pass@16")}  # easy: greedy only
        exp_grpo = [r["hard"].get("vs_grpo", {}).get("expanded") for r in mine]
        exp_base = [r["hard"].get("vs_base", {}).get("expanded") for r in mine]
        summary[arm] = {**cells, "hard_expanded_vs_grpo": exp_grpo, "hard_expanded_vs_base": exp_base,
                        "runs": mine}
        print(f"| {arm} | {fmt(cells['hard_greedy_pass@1'])} | {fmt(cells['hard_pass@1'])} | "
              f"{fmt(cells['hard_pass@16'])} | {fmt(cells['easy_greedy_pass@1'])} | "
              f"{exp_grpo if arm not in ('grpo', 'base') else '-'} | {exp_base if arm != 'base' else '-'} |")
    for r in rows:
        print(r["arm"], r["seed"], {p: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r[p].items()}
                                    for p in ("easy", "hard")})
    plots(args, rows)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


def plots(args, rows) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    arms = ["base", *args.arms]
    for ax, part in zip(axes, ("hard", "easy")):
        for i, key in enumerate(("greedy_pass@1", "pass@16")):
            for j, arm in enumerate(arms):
                vals = [r[part][key] for r in rows if r["arm"] == arm and r[part][key] is not None]
                if not vals:
                    continue
                x = j + (i - 0.5) * 0.35
                ax.bar(x, statistics.median(vals), 0.35, color=f"C{i}", alpha=0.8,
                       label=key if j == 0 else None)
                ax.scatter([x] * len(vals), vals, color="k", s=6, zorder=3)
        ax.set_xticks(range(len(arms)), arms)
        ax.set_title(f"{part} held-out (median, dots = seeds)")
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=8)
    axes[1].set_title("easy held-out, greedy (median, dots = seeds)")
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "guidance_study.png", dpi=80)
    ttrl = out / "ttrl" / "ttrl.json"
    if ttrl.is_file():
        data = json.loads(ttrl.read_text())
        fig, ax = plt.subplots(figsize=(5, 3))
        for r in data:
            ax.plot(r["label_accuracy"], label=f"seed {r['seed']}")
        ax.set_xlabel("step")
        ax.set_ylabel("label accuracy (majority vs hidden answer)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(ROOT / "docs" / "guidance_ttrl.png", dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["data", "train", "eval", "ttrl", "report", "all"])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--ttrl-steps", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (each on one thread)")
    parser.add_argument("--data", default="runs/guidance_demo/data")
    parser.add_argument("--out", default="runs/guidance_demo")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    if args.what in ("data", "all"):
        build_data(Path(args.data))
    if args.what in ("train", "all"):
        jobs = [(arm, seed) for seed in args.seeds for arm in args.arms]
        with ThreadPoolExecutor(args.jobs) as pool:
            for row in pool.map(lambda job: train(*job, args), jobs):
                print(f"{row['arm']} seed {row['seed']}: {row['train_s'] / 60:.1f} min", flush=True)
    if args.what in ("eval", "all"):
        run_evals(args)
    if args.what in ("ttrl", "all"):
        run_ttrl(args)
    if args.what in ("report", "all"):
        report(args)


if __name__ == "__main__":
    main()
