"""The demo's "pre-training": a short supervised run that leaves a weak but not hopeless base model.

    info = build_base()                 # cached under ~/.cache/rlvr/demo (RLVR_CACHE overrides ~/.cache/rlvr)
    info["model_path"], info["train_path"], info["heldout_path"], info["dev_pass1"]

A fresh tiny char-level Llama (rlvr.demo.tiny) is trained with next-token cross-entropy on the completion
tokens (prompt tokens masked with -100) of <think>/<answer> worked solutions of the arithmetic task
(rlvr.demo.task). Every `eval_every` steps the greedy pass@1 on a small *dev* set (held-out pool, disjoint from
the test problems the demo reports on) is measured; training stops at the first check where it reaches
`target` (default 0.30), so RL has room to improve it. Accuracy jumps
sharply at this scale (e.g. 20% -> 53% within 50 steps): when the stopping check lands above `ceiling` (0.45)
the weights of the previous check are restored instead (when that check scored > 0). Everything is seeded: the same settings on the same
machine give the same base. `rebuild=True` (the CLI's --rebuild) ignores the cache.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from rlvr.demo import task
from rlvr.demo.evaluate import evaluate
from rlvr.demo.tiny import DEFAULT_ALPHABET, build_char_tokenizer, build_tiny_llama, save_tiny

BASE_VERSION = 3  # bump when the recipe changes, so stale caches rebuild


@dataclass
class PretrainConfig:
    """Everything that determines the base model (stored next to it; a change triggers a rebuild)."""

    hidden: int = 128
    layers: int = 4
    heads: int = 4
    intermediate: int = 256  # MLP width (0.67M parameters in all)
    n_train: int = 20000  # train problems written to train.jsonl (the RL prompts come from the same file)
    n_test: int = 256  # held-out problems the demo reports on (heldout.jsonl)
    n_dev: int = 128  # held-out-pool problems used only for early stopping (dev.jsonl)
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 50
    max_steps: int = 3000
    eval_every: int = 25
    min_steps: int = 500  # no dev check before (the model is at ~0% until ~600 steps)
    target: float = 0.30  # stop at the first dev greedy pass@1 >= target (it jumps by ~10-30 points per 100 steps)
    ceiling: float = 0.45  # ... and if that check overshot the ceiling, go back to the previous check's weights
    max_new_tokens: int = 72  # the longest solution is 63 characters + EOS
    seed: int = 0
    version: int = BASE_VERSION


def cache_root() -> Path:
    """~/.cache/rlvr/demo, or $RLVR_CACHE/demo."""
    root = os.environ.get("RLVR_CACHE") or "~/.cache/rlvr"
    return Path(root).expanduser() / "demo"


def _batch(tokenizer, rows: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """rows -> input_ids (N, L), attention_mask (N, L), labels (N, L): right-padded, loss on solution + EOS."""
    seqs, labs = [], []
    for r in rows:
        p = tokenizer(task.render_prompt(r["question"]), add_special_tokens=False).input_ids
        s = tokenizer(r["solution"], add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        seqs.append(p + s)
        labs.append([-100] * len(p) + s)
    width = max(len(s) for s in seqs)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (s, lab) in enumerate(zip(seqs, labs)):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
        labels[i, : len(s)] = torch.tensor(lab)
    return ids, mask, labels


def supervised_warmup(
    model,
    tokenizer,
    train_rows: list[dict[str, Any]],
    dev_rows: list[dict[str, Any]],
    cfg: PretrainConfig,
    on_step: Callable[[int, float, float | None], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place until dev greedy pass@1 >= cfg.target (checked every cfg.eval_every steps).

    AdamW (betas 0.9, 0.98; no weight decay), linear warmup then constant lr, grad-norm clip 1.0.
    on_step(step, loss, dev_pass1 or None) is called after every step (progress bars).
    Returns {"steps", "loss", "dev_pass1", "history": [(step, dev_pass1)], "seconds"}; when the stopping check
    overshoots cfg.ceiling the previous check's weights are restored and "steps"/"dev_pass1" are that check's
    (the history then ends with that check repeated).
    """
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    order = random.Random(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)))
    indices: list[int] = []
    history: list[tuple[int, float]] = []
    dev_pass1, loss_value = 0.0, math.nan
    step = 0
    previous: tuple[int, float, dict[str, torch.Tensor]] | None = None  # (step, dev pass@1, weights)
    model.train()
    for step in range(1, cfg.max_steps + 1):
        if len(indices) < cfg.batch_size:  # a fresh shuffled epoch
            perm = list(range(len(train_rows)))
            order.shuffle(perm)
            indices.extend(perm)
        batch_rows = [train_rows[i] for i in indices[: cfg.batch_size]]
        del indices[: cfg.batch_size]
        ids, mask, labels = _batch(tokenizer, batch_rows)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss_value = loss.item()
        checked = None
        if step >= cfg.min_steps and step % cfg.eval_every == 0:
            dev_pass1 = evaluate(model, tokenizer, dev_rows, max_new_tokens=cfg.max_new_tokens)["pass@1"]
            model.train()
            history.append((step, dev_pass1))
            checked = dev_pass1
        if on_step is not None:
            on_step(step, loss_value, checked)
        if checked is not None and checked >= cfg.target:
            if checked > cfg.ceiling and previous is not None and previous[1] > 0:
                step, dev_pass1, weights = previous  # overshot: the previous check is the weaker base we want
                model.load_state_dict(weights)
                history.append((step, dev_pass1))
            break
        if checked is not None:
            previous = (step, checked, {k: v.detach().clone() for k, v in model.state_dict().items()})
    model.eval()
    return {
        "steps": step,
        "loss": loss_value,
        "dev_pass1": dev_pass1,
        "history": history,
        "seconds": time.perf_counter() - start,
    }


def build_base(
    cache_dir: str | Path | None = None,
    *,
    rebuild: bool = False,
    cfg: PretrainConfig | None = None,
    on_step: Callable[[int, float, float | None], None] | None = None,
) -> dict[str, Any]:
    """Build (or load from the cache) the demo's data files and weak base model.

    Layout of ``cache_dir`` (default cache_root()):
        train.jsonl  heldout.jsonl  dev.jsonl   question / answer / solution rows
        base/        the base model + tokenizer (Auto classes load it)
        base.json    the PretrainConfig and what the warm-up measured
    Returns base.json's content plus the paths (model_path, train_path, heldout_path, dev_path, cache_dir)
    and "cached": whether nothing had to be built.
    """
    cfg = cfg or PretrainConfig()
    root = Path(cache_dir).expanduser() if cache_dir else cache_root()
    paths = {
        "cache_dir": str(root),
        "model_path": str(root / "base"),
        "train_path": str(root / "train.jsonl"),
        "heldout_path": str(root / "heldout.jsonl"),
        "dev_path": str(root / "dev.jsonl"),
    }
    meta_path = root / "base.json"
    if not rebuild and meta_path.is_file() and (root / "base" / "model.safetensors").is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("config") == asdict(cfg) and all(Path(p).exists() for p in paths.values()):
            return {**meta, **paths, "cached": True}

    root.mkdir(parents=True, exist_ok=True)
    heldout_pool = task.generate("heldout", cfg.n_test + cfg.n_dev, seed=cfg.seed)
    test_rows, dev_rows = heldout_pool[: cfg.n_test], heldout_pool[cfg.n_test :]
    train_rows = task.generate("train", cfg.n_train, seed=cfg.seed)
    task.write_jsonl(train_rows, paths["train_path"])
    task.write_jsonl(test_rows, paths["heldout_path"])
    task.write_jsonl(dev_rows, paths["dev_path"])

    tokenizer = build_char_tokenizer(DEFAULT_ALPHABET)
    model = build_tiny_llama(
        tokenizer, hidden=cfg.hidden, layers=cfg.layers, heads=cfg.heads, seed=cfg.seed,
        intermediate=cfg.intermediate,
    )
    result = supervised_warmup(model, tokenizer, train_rows, dev_rows, cfg, on_step=on_step)

    tmp = root / "base.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_tiny(model, tokenizer, tmp)
    shutil.rmtree(root / "base", ignore_errors=True)
    tmp.rename(root / "base")
    meta = {"config": asdict(cfg), **result, "torch_threads": torch.get_num_threads()}
    meta_path.write_text(json.dumps(meta, indent=2))
    return {**meta, **paths, "cached": False}
