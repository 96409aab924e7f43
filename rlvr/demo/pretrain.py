"""The demo's "pre-training": a short supervised run that leaves a weak but not hopeless base model.

    info = build_base()                 # cached under ~/.cache/rlvr/demo (RLVR_CACHE overrides ~/.cache/rlvr)
    info["model_path"], info["train_path"], info["heldout_path"], info["dev_pass1"]

A fresh tiny char-level Llama (rlvr.demo.tiny) is trained with next-token cross-entropy on the completion
tokens (prompt tokens masked with -100) of <think>/<answer> worked solutions of the arithmetic task
(rlvr.demo.task), in two phases (see supervised_warmup):
  1. correct solutions until the greedy pass@1 on a small *dev* set (held-out pool, disjoint from the test
     problems the demo reports on) reaches `target` (0.5): the model has learnt the arithmetic. When that
     happens depends on the seed and on the machine (the accuracy jumps within 50-100 steps somewhere between
     step 450 and 900), so this phase waits for it instead of counting steps;
  2. `flawed_steps` (200) steps on *flawed demonstrations*: the same problems, each carry or borrow dropped with
     probability `slip` (0.75; "47+8=45"). The model takes on the flaw at that rate whatever its state after
     phase 1, so the base is weak by a set amount (greedy decoding mostly drops carries) on any machine, while
     the correct carry keeps a probability of about 1 - slip: the verifiable reward has something to amplify.
Everything is seeded (`seed`: initial weights and problem order; `data_seed`: the problems): the same settings
on the same machine give the same base. `rebuild=True` (the CLI's --rebuild) ignores the cache.
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

BASE_VERSION = 4  # bump when the recipe changes, so stale caches rebuild


@dataclass
class PretrainConfig:
    """Everything that determines the base model (stored next to it; a change triggers a rebuild).

    flawed_steps and slip were chosen once (measured in docs/demo.md) and are recorded in base.json."""

    hidden: int = 128
    layers: int = 4
    heads: int = 4
    intermediate: int = 256  # MLP width (0.67M parameters in all)
    n_train: int = 20000  # train problems written to train.jsonl (the RL prompts come from the same file)
    n_test: int = 256  # held-out problems the demo reports on (heldout.jsonl)
    n_dev: int = 128  # held-out-pool problems used only to end phase 1 (dev.jsonl)
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 50
    max_steps: int = 3000  # cap of phase 1
    eval_every: int = 25  # phase 1: dev checks every 25 steps from min_steps once the loss shows the jump ...
    min_steps: int = 200
    check_loss: float = 0.08  # ... (running mean of the train loss below this; every 100 steps regardless)
    target: float = 0.5  # ... until dev greedy pass@1 >= target: the model has learnt the arithmetic
    slip: float = 0.75  # phase 2: flawed demonstrations, each carry/borrow dropped with this probability ...
    flawed_steps: int = 200  # ... for this many steps (the model takes on the flaw: a base of a set strength)
    max_new_tokens: int = 72  # the longest solution is 63 characters + EOS
    seed: int = 0  # initial weights and the order of the training problems
    data_seed: int = 0  # the problems themselves (train/held-out/dev files): the same for every seed
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


def supervised_step(model, opt, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> float:
    """One cross-entropy step on (B, L) ids / mask / labels (-100 = not trained on), gradients clipped at norm 1."""
    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()


def warmup_optimizer(model, lr: float, warmup_steps: int):
    """AdamW (betas 0.9/0.98, no weight decay) and a linear warm-up to a constant lr: the demos' warm-ups."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, warmup_steps)))


def supervised_warmup(
    model,
    tokenizer,
    train_rows: list[dict[str, Any]],
    flawed_rows: list[dict[str, Any]],
    dev_rows: list[dict[str, Any]],
    cfg: PretrainConfig,
    on_step: Callable[[int, float, float | None], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place in two phases (AdamW, betas 0.9/0.98, no weight decay, linear warm-up then
    constant lr, grad-norm clip 1.0; the same shuffled order of problems throughout):

    1. on correct worked solutions (``train_rows``) until dev greedy pass@1 >= cfg.target (at most
       cfg.max_steps), checked every cfg.eval_every steps from cfg.min_steps while the running mean of the
       loss (EMA, 0.9) is below cfg.check_loss, and every 4 x eval_every steps regardless. Accuracy jumps from ~0% to
       ~60% within 50-100 steps, at a step that depends on the seed and the machine's floating-point rounding
       (450 to 900 steps seen), so phase 1 waits for it rather than counting steps;
    2. cfg.flawed_steps steps on the same problems with flawed solutions (``flawed_rows``: each carry or borrow
       dropped with probability cfg.slip). The model takes on the flaw at that rate, whatever its state after
       phase 1: greedy decoding drops most carries and the base is weak by a set amount, while correct
       solutions keep a probability of about 1 - slip per carry, which is what GRPO's reward then amplifies.

    on_step(step, loss, dev_pass1 or None) is called after every step (progress bars).
    Returns {"steps" (both phases), "learn_steps" (phase 1), "loss", "dev_pass1" (after phase 2),
    "history": [(step, dev_pass1)], "seconds"}.
    """
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    order = random.Random(cfg.seed)
    opt, sched = warmup_optimizer(model, cfg.lr, cfg.warmup_steps)
    indices: list[int] = []
    history: list[tuple[int, float]] = []

    def train_step(rows: list[dict[str, Any]]) -> float:
        if len(indices) < cfg.batch_size:  # a fresh shuffled epoch
            perm = list(range(len(rows)))
            order.shuffle(perm)
            indices.extend(perm)
        ids, mask, labels = _batch(tokenizer, [rows[i] for i in indices[: cfg.batch_size]])
        del indices[: cfg.batch_size]
        loss = supervised_step(model, opt, ids, mask, labels)
        sched.step()
        return loss

    def dev_check(step: int) -> float:
        dev = evaluate(model, tokenizer, dev_rows, max_new_tokens=cfg.max_new_tokens)["pass@1"]
        model.train()
        history.append((step, dev))
        return dev

    def due(step: int, loss_mean: float) -> bool:  # dev checks cost ~2 s: only once the loss says the jump began
        if step < cfg.min_steps or step % cfg.eval_every:
            return False
        return loss_mean < cfg.check_loss or step % (4 * cfg.eval_every) == 0

    model.train()
    loss_value, loss_mean, step = math.nan, math.inf, 0
    for step in range(1, cfg.max_steps + 1):  # phase 1: learn the arithmetic
        loss_value = train_step(train_rows)
        loss_mean = loss_value if step == 1 else 0.9 * loss_mean + 0.1 * loss_value
        checked = dev_check(step) if due(step, loss_mean) else None
        if on_step is not None:
            on_step(step, loss_value, checked)
        if checked is not None and checked >= cfg.target:
            break
    learn_steps = step
    for step in range(learn_steps + 1, learn_steps + cfg.flawed_steps + 1):  # phase 2: take on the flaw
        loss_value = train_step(flawed_rows)
        if on_step is not None:
            on_step(step, loss_value, None)
    dev_pass1 = dev_check(step)
    if on_step is not None:
        on_step(step, loss_value, dev_pass1)
    model.eval()
    return {
        "steps": step,
        "learn_steps": learn_steps,
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
    heldout_pool = task.generate("heldout", cfg.n_test + cfg.n_dev, seed=cfg.data_seed)
    test_rows, dev_rows = heldout_pool[: cfg.n_test], heldout_pool[cfg.n_test :]
    train_rows = task.generate("train", cfg.n_train, seed=cfg.data_seed)
    flawed_rows = task.generate("train", cfg.n_train, seed=cfg.data_seed, slip=cfg.slip)
    task.write_jsonl(train_rows, paths["train_path"])
    task.write_jsonl(test_rows, paths["heldout_path"])
    task.write_jsonl(dev_rows, paths["dev_path"])

    tokenizer = build_char_tokenizer(DEFAULT_ALPHABET)
    model = build_tiny_llama(
        tokenizer, hidden=cfg.hidden, layers=cfg.layers, heads=cfg.heads, seed=cfg.seed,
        intermediate=cfg.intermediate,
    )
    result = supervised_warmup(model, tokenizer, train_rows, flawed_rows, dev_rows, cfg, on_step=on_step)
    meta = publish_base(model, tokenizer, root, {"config": asdict(cfg), **result,
                                                 "torch_threads": torch.get_num_threads()})
    return {**meta, **paths, "cached": False}


def publish_base(model, tokenizer, root: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Save the model as ``root/base`` (written to base.tmp, then renamed: a crash leaves no half model) and
    ``meta`` as ``root/base.json``; returns meta."""
    tmp = root / "base.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_tiny(model, tokenizer, tmp)
    shutil.rmtree(root / "base", ignore_errors=True)
    tmp.rename(root / "base")
    (root / "base.json").write_text(json.dumps(meta, indent=2))
    return meta
