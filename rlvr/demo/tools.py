"""The multi-turn demo: the arithmetic task with a ``calculator`` tool (docs/multi_turn.md).

    info = build_tool_base()        # the demo base (rlvr.demo.pretrain) warmed up to call the calculator sometimes
    evaluate_tools(info["model_path"], rows)   # greedy held-out accuracy and tool-use rate, through the tool loop

A tool-using solution, in the default json format (the model writes turn 1 and turn 2, the loop inserts the reply):

    47+8-5+9\\n<tool_call>{"name": "calculator", "arguments": {"expression": "47+8-5+9"}}</tool_call>
    <tool_response>59</tool_response><answer>59</answer><eos>

`build_tool_base` fine-tunes the weak demo base for ``steps`` steps on a mix of such trajectories (share
``tool_frac``; loss on the model's tokens only, the reply masked like the prompt) and the base's own flawed
worked solutions (the rest), so the result still answers mostly by hand (and mostly wrong) but calls the
calculator on some problems: the tool-use rate GRPO can raise.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from rlvr.demo import task
from rlvr.demo.pretrain import build_base, supervised_step

TOOL_BASE_VERSION = 1


@dataclass
class ToolBaseConfig:
    tool_frac: float = 0.2  # share of the fine-tuning rows that call the calculator
    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    slip: float = 0.75  # the other rows: flawed worked solutions, as the base's phase 2
    seed: int = 0
    version: int = TOOL_BASE_VERSION


def tool_call_text(question: str) -> str:
    return "<tool_call>" + json.dumps({"name": "calculator", "arguments": {"expression": question}}) + "</tool_call>"


def tool_pieces(question: str, answer: str) -> list[tuple[str, bool]]:
    """The model's and the tool's parts of a tool-using solution: [(text, is_model)], EOS not included."""
    return [(tool_call_text(question), True), (f"<tool_response>{answer}</tool_response>", False),
            (f"<answer>{answer}</answer>", True)]


def _rows_batch(tokenizer, rows: list[dict[str, Any]]):
    """rows with "pieces" [(text, is_model)] -> input_ids, attention_mask, labels (N, L), right-padded; labels
    -100 on the prompt and on tool replies."""
    seqs, labs = [], []
    for r in rows:
        ids = tokenizer(task.render_prompt(r["question"]), add_special_tokens=False).input_ids
        lab = [-100] * len(ids)
        for text, is_model in r["pieces"]:
            piece = tokenizer(text, add_special_tokens=False).input_ids
            ids, lab = ids + piece, lab + (piece if is_model else [-100] * len(piece))
        ids, lab = ids + [tokenizer.eos_token_id], lab + [tokenizer.eos_token_id]
        seqs.append(ids)
        labs.append(lab)
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (s, lab) in enumerate(zip(seqs, labs)):
        input_ids[i, : len(s)], mask[i, : len(s)], labels[i, : len(s)] = torch.tensor(s), 1, torch.tensor(lab)
    return input_ids, mask, labels


def build_tool_base(cfg: ToolBaseConfig | None = None, rebuild: bool = False, cache_dir: str | Path | None = None,
                    base_cfg=None) -> dict[str, Any]:
    """The demo base (`build_base` with ``base_cfg``) fine-tuned to call the calculator on some problems, cached
    in <cache_dir, default the demo cache>/tool_base. Returns the paths (model_path, train/heldout/dev_path)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = cfg or ToolBaseConfig()
    base = build_base(cache_dir, cfg=base_cfg)
    root = Path(base["cache_dir"])
    folder, meta_path = root / "tool_base", root / "tool_base.json"
    meta = {"config": asdict(cfg), "base": base["model_path"], "base_config": base["config"]}
    if not rebuild and meta_path.is_file() and (folder / "model.safetensors").is_file():
        saved = json.loads(meta_path.read_text())
        if saved.get("config") == meta["config"] and saved.get("base_config") == meta["base_config"]:
            return {**meta, "model_path": str(folder), **{k: base[k] for k in ("train_path", "heldout_path",
                                                                                "dev_path")}}
    tokenizer = AutoTokenizer.from_pretrained(base["model_path"])
    model = AutoModelForCausalLM.from_pretrained(base["model_path"], dtype=torch.float32)
    train_rows = task.read_jsonl(base["train_path"])
    flawed = task.generate("train", len(train_rows), seed=base["config"]["data_seed"], slip=cfg.slip)
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=0.0)
    model.train()
    for _ in range(cfg.steps):
        batch = []
        for i in rng.sample(range(len(train_rows)), min(cfg.batch_size, len(train_rows))):
            row = train_rows[i]
            pieces = tool_pieces(row["question"], row["answer"]) if rng.random() < cfg.tool_frac else \
                [(flawed[i]["solution"], True)]
            batch.append({"question": row["question"], "pieces": pieces})
        loss = supervised_step(model, opt, *_rows_batch(tokenizer, batch))
    model.eval()
    tmp = root / "tool_base.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    meta["loss"] = float(loss)
    meta_path.write_text(json.dumps(meta, indent=2))
    return {**meta, "model_path": str(folder), **{k: base[k] for k in ("train_path", "heldout_path", "dev_path")}}


def evaluate_tools(model_path: str | Path, rows: list[dict[str, Any]], max_new_tokens: int = 160,
                   max_turns: int = 2, samples: int = 0) -> dict[str, float]:
    """Greedy decoding of ``rows`` through the calculator loop: accuracy (the last <answer> equals the answer)
    and the share of trajectories that called the tool (and got a correct answer when they did). With
    ``samples`` > 0 also ``samples`` trajectories per problem at temperature 1 (problem i seeded with i):
    sampled_accuracy and sampled_tool_use."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.config import MultiTurnConfig
    from rlvr.rollout.hf import HFRolloutEngine
    from rlvr.rollout.multi_turn import MultiTurnEngine

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32)
    engine = MultiTurnEngine(HFRolloutEngine(model, tokenizer, add_special_tokens=False), tokenizer,
                             MultiTurnConfig(tools=["calculator"], max_turns=max_turns))
    prompts = [task.render_prompt(r["question"]) for r in rows]
    try:
        groups = engine.generate(prompts, 1, max_new_tokens=max_new_tokens, temperature=0.0)
        sampled = engine.generate(prompts, samples, max_new_tokens=max_new_tokens, temperature=1.0,
                                  seeds=list(range(len(rows)))) if samples else []
    finally:
        engine.close()
    flat = [g[0] for g in groups]
    correct = [task.is_correct(c.text, r["answer"]) for c, r in zip(flat, rows)]
    used = [any(t["role"] == "tool" for t in c.turns) for c in flat]
    n_used = sum(used)
    out = {"accuracy": sum(correct) / len(rows), "tool_use": n_used / len(rows),
           "accuracy_with_tool": sum(c for c, u in zip(correct, used) if u) / n_used if n_used else 0.0,
           "accuracy_without_tool": sum(c for c, u in zip(correct, used) if not u) / max(1, len(rows) - n_used)}
    if samples:
        pairs = [(c, r) for g, r in zip(sampled, rows) for c in g]
        out["sampled_accuracy"] = sum(task.is_correct(c.text, r["answer"]) for c, r in pairs) / len(pairs)
        out["sampled_tool_use"] = sum(any(t["role"] == "tool" for t in c.turns) for c, _ in pairs) / len(pairs)
    return out


def plot_runs(run_dirs: list[str | Path], base_dev_accuracy: float, out: str | Path) -> Path:
    """The held-out curve of the multi-turn demo runs: dev greedy pass@1 (eval/pass@1, through the tool loop;
    step 0 = the base) and the training batches' tool-use rate, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc, tools) = plt.subplots(1, 2, figsize=(10, 3.6))
    for run in run_dirs:
        rows = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]
        evals = [(0, base_dev_accuracy)] + [(r["step"], r["eval/pass@1"]) for r in rows if "eval/pass@1" in r]
        acc.plot(*zip(*evals), marker="o", label=Path(run).name)
        tools.plot([r["step"] for r in rows], [r["multi_turn/tool_use_frac"] for r in rows], alpha=0.8,
                   label=Path(run).name)
    acc.set(xlabel="GRPO step", ylabel="dev greedy pass@1", title="held-out accuracy (with the calculator)",
            ylim=(0, 1))
    tools.set(xlabel="GRPO step", ylabel="share of trajectories", title="tool use (training batches, T = 1)",
              ylim=(0, 1))
    for ax in (acc, tools):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
