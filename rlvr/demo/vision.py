"""The vision demo: a tiny Qwen2.5-VL, a counting task drawn with PIL, and a supervised warm-up to a weak base.

    info = build_vision_base("/tmp/vision-demo")      # cached there (default: ~/.cache/rlvr/vision)
    info["model_path"], info["train_path"], info["heldout_path"], info["dev_path"], info["dev_accuracy"]
    rlvr train examples/vision.yaml                   # GRPO from that base (docs/vision.md)

Model: `Qwen2_5_VLForConditionalGeneration` from a small config of the real architecture (a 2-layer, 64-wide
vision tower with 14-pixel patches and 2x2 merging; a 2-layer, 128-wide language model; ~0.6M parameters), over
the demo's character-level tokenizer (rlvr.demo.tiny) plus Qwen's image special tokens, with
`Qwen2VLImageProcessorPil` preprocessing (no torchvision). Its folder loads with AutoModelForImageTextToText and
AutoImageProcessor (rlvr.vision.processor expands the image tokens the Qwen2-VL way).

Tasks (``VisionPretrainConfig.task``), 84 x 84 pictures (6 x 6 patches of 14 pixels, 9 merged image tokens):
  colour (default)  one glyph (circle, square, triangle or cross, radius 10-22, anywhere): "What colour is the
                    shape: red, blue or green?"; completion ``<answer>blue</answer>``, verifier ``classification``
                    against the row's "classes"
  shape             the same pictures: "Which shape is it: circle, square, triangle or cross?"
  count             a 3 x 3 grid of 28-pixel cells with 1-5 red shapes and 0-3 blue or green ones: "How many red
                    shapes?"; ``<answer>3</answer>``, verifier ``exact_match``
Measured (docs/vision.md): in 200 warm-up steps this model learns colour, while shape and count stay near chance,
so the demo's study runs on colour. Problems come from a seeded `random.Random`; train and held-out pictures are
disjoint by construction (a picture's layout key decides its pool, as in rlvr.demo.task).

Warm-up (`warmup`), the text demo's two phases (rlvr.demo.pretrain): cross-entropy on the completion tokens
(prompt and image tokens masked) until the dev greedy accuracy reaches ``target`` (0.9), then ``flawed_steps``
(60) steps on flawed demonstrations whose class is a random wrong one with probability ``slip`` (0.7). The base
then keeps the format and still gives the right class real probability, but names a wrong one often: the
situation GRPO's verifiable reward is for. (A first base, stopped early at 45% dev accuracy, sampled mostly
malformed completions at temperature 1; docs/vision.md reports both.)
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from rlvr.demo.tiny import DEFAULT_ALPHABET, build_char_tokenizer

BASE_VERSION = 2
IMAGE_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
# the demo chat template, with Qwen's image block for every {"type": "image"} content part
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n"
    "{% elif m['role'] == 'user' %}User: "
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for part in m['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}\n"
    "{% else %}Assistant: {{ m['content'] }}{{ eos_token }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant: {% endif %}"
)
SIZE, CELL = 84, 28  # picture side, grid cell (= one merged 2x2 patch token)
COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 170, 60)}
SHAPES = ("circle", "square", "triangle")
HELDOUT_MOD = 8


def build_vision_tokenizer():
    """The demo's char-level tokenizer plus Qwen's image special tokens and an image-aware chat template."""
    tok = build_char_tokenizer(DEFAULT_ALPHABET)
    tok.add_special_tokens({"additional_special_tokens": IMAGE_TOKENS})
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_tiny_vlm(tokenizer, seed: int = 0, *, hidden: int = 128, layers: int = 2, vision_hidden: int = 64,
                   vision_layers: int = 2):
    """A randomly initialised `Qwen2_5_VLForConditionalGeneration` sized for ``tokenizer`` (tied embeddings)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in IMAGE_TOKENS}
    heads = 4
    half = hidden // heads // 2  # mrope sections (temporal, height, width) share the rotary half-dim
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=1024, tie_word_embeddings=True,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id,
                         rope_scaling={"type": "mrope", "mrope_section": [half - 2 * (half // 3), half // 3,
                                                                         half // 3]}),
        vision_config=dict(depth=vision_layers, hidden_size=vision_hidden, intermediate_size=2 * vision_hidden,
                           num_heads=4, out_hidden_size=hidden, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2, window_size=56, fullatt_block_indexes=[vision_layers - 1]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    for key in ("pad_token_id", "eos_token_id", "bos_token_id"):
        setattr(model.generation_config, key, getattr(tokenizer, key))
    return model


def build_image_processor():
    """Qwen2-VL preprocessing at a fixed 84 x 84 (6 x 6 patches of 14, merged 2 x 2: 9 image tokens)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(min_pixels=SIZE * SIZE, max_pixels=SIZE * SIZE, patch_size=14, merge_size=2,
                                    temporal_patch_size=2)


def save_vlm(model, tokenizer, path: str | Path) -> Path:
    """Model (safetensors), tokenizer and image processor: AutoModelForImageTextToText / AutoImageProcessor load it."""
    path = Path(path).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    build_image_processor().save_pretrained(path)
    return path


# ----------------------------------------------------------------------------------------------------------
# the counting task


def draw(layout: list[tuple[int, str, str, int, int, int]]):
    """[(cell, colour, shape, dx, dy, radius)] -> the RGB picture."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (SIZE, SIZE), "white")
    pen = ImageDraw.Draw(img)
    for cell, colour, shape, dx, dy, r in layout:
        cx, cy = (cell % 3) * CELL + CELL // 2 + dx, (cell // 3) * CELL + CELL // 2 + dy
        box = (cx - r, cy - r, cx + r, cy + r)
        fill = COLOURS[colour]
        if shape == "circle":
            pen.ellipse(box, fill=fill)
        elif shape == "square":
            pen.rectangle(box, fill=fill)
        else:
            pen.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return img


CLASSES = ("circle", "square", "triangle", "cross")
QUESTIONS = {"colour": "What colour is the shape: red, blue or green?",
             "shape": "Which shape is it: circle, square, triangle or cross?",
             "count": "How many red shapes?"}
TASKS = tuple(QUESTIONS)


def draw_glyph(shape: str, colour: str, cx: int, cy: int, r: int):
    """One filled glyph of ``shape`` on the white picture (the classification task)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (SIZE, SIZE), "white")
    pen = ImageDraw.Draw(img)
    fill = COLOURS[colour]
    if shape == "circle":
        pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        pen.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "triangle":
        pen.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    else:
        w = max(2, r // 3)
        pen.rectangle((cx - r, cy - w, cx + r, cy + w), fill=fill)
        pen.rectangle((cx - w, cy - r, cx + w, cy + r), fill=fill)
    return img


def make_glyph(rng: random.Random) -> tuple:
    """A random glyph: (shape, colour, centre x, centre y, radius 10-22)."""
    shape, colour, r = rng.choice(CLASSES), rng.choice(sorted(COLOURS)), rng.randint(10, 22)
    return shape, colour, rng.randint(r + 1, SIZE - r - 2), rng.randint(r + 1, SIZE - r - 2), r


def make_layout(rng: random.Random) -> tuple[list, int]:
    """A random picture layout and its number of red shapes (1-5 red, 0-3 others, one shape per cell)."""
    red, other = rng.randint(1, 5), rng.randint(0, 3)
    cells = rng.sample(range(9), red + other)
    layout = []
    for i, cell in enumerate(cells):
        colour = "red" if i < red else rng.choice(["blue", "green"])
        r = rng.randint(6, 9)
        slack = CELL // 2 - r - 1
        layout.append((cell, colour, rng.choice(SHAPES), rng.randint(-slack, slack), rng.randint(-slack, slack), r))
    return layout, red


def generate(split: str, n: int, seed: int, folder: str | Path, task: str = "colour") -> list[dict[str, Any]]:
    """``n`` problems of ``split`` ("train" or "heldout"), pictures written to ``folder``/images/<split>_<i>.png.

    task "colour": the colour of one glyph (3 classes), "shape": which of four glyphs (both: the class name as
    answer, rows carry "classes"); "count": how many red shapes (the count). Rows: {"question", "answer",
    "image" (path relative to ``folder``), "solution"}."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"vision-{task}-{split}-{seed}")
    rows, seen = [], set()
    while len(rows) < n:
        if task == "count":
            layout, answer = make_layout(rng)
        else:
            layout = make_glyph(rng)
            answer = layout[0] if task == "shape" else layout[1]
        key = json.dumps(layout)
        in_heldout = zlib.crc32(key.encode()) % HELDOUT_MOD == 0
        if key in seen or in_heldout != (split == "heldout"):
            continue
        seen.add(key)
        name = f"images/{split}_{len(rows):05d}.png"
        (draw(layout) if task == "count" else draw_glyph(*layout)).save(folder / name)
        row = {"question": QUESTIONS[task], "answer": str(answer), "image": name,
               "solution": f"<answer>{answer}</answer>"}
        if task != "count":
            row["classes"] = list(CLASSES) if task == "shape" else sorted(COLOURS)
        rows.append(row)
    return rows


def write_jsonl(rows: list[dict[str, Any]], path: str | Path) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


# ----------------------------------------------------------------------------------------------------------
# warm-up


@dataclass
class VisionPretrainConfig:
    """Everything that determines the vision base (stored in base.json; a change rebuilds the cache)."""

    n_train: int = 4000
    n_test: int = 256
    n_dev: int = 128
    batch_size: int = 32
    lr: float = 1e-3  # 3e-3 left the shape and count tasks at chance for 200 steps
    warmup_steps: int = 20
    max_steps: int = 1500
    eval_every: int = 5
    min_steps: int = 30
    target: float = 0.9  # phase 1 ends once dev greedy accuracy reaches this: the task is learnt ...
    slip: float = 0.7  # ... then phase 2: demonstrations whose class is a random wrong one with this probability
    flawed_steps: int = 60  # for this many steps: a base of a set weakness that still ranks the right class high
    task: str = "colour"  # colour (3 classes) | shape (4 glyphs) | count (1-5 red shapes); docs/vision.md
    seed: int = 0
    data_seed: int = 0
    version: int = BASE_VERSION


def prompt_text(tokenizer, question: str) -> str:
    """The chat-template prompt of one picture (what rlvr renders with prompt.chat_template: true)."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def supervised_batch(processor, tokenizer, rows, folder) -> dict[str, torch.Tensor]:
    """rows -> model kwargs (left-padded prompts with their pixel inputs, right-padded solutions, labels)."""
    from rlvr.vision.images import open_image
    from rlvr.vision.inputs import forward_inputs

    encoded = [processor.encode(prompt_text(tokenizer, r["question"]), [open_image(str(Path(folder) / r["image"]))])
               for r in rows]
    answers = [tokenizer(r["solution"], add_special_tokens=False).input_ids + [tokenizer.eos_token_id] for r in rows]
    lp, t = max(len(e.input_ids) for e in encoded), max(len(a) for a in answers)
    ids = torch.full((len(rows), lp + t), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (e, a) in enumerate(zip(encoded, answers)):
        ids[i, lp - len(e.input_ids) : lp] = torch.tensor(e.input_ids)
        ids[i, lp : lp + len(a)] = torch.tensor(a)
        mask[i, lp - len(e.input_ids) : lp + len(a)] = 1
        labels[i, lp : lp + len(a)] = torch.tensor(a)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, **forward_inputs(encoded, lp, t, "cpu")}


@torch.no_grad()
def accuracy(model, tokenizer, processor, rows, folder, max_new_tokens: int = 32) -> float:
    """Greedy accuracy (the exact answer in the answer tag) through the project's HF rollout engine."""
    from rlvr.demo.task import extract_answer
    from rlvr.rollout.hf import HFRolloutEngine

    engine = HFRolloutEngine(model, tokenizer, add_special_tokens=False)
    engine.processor, engine.suppress_ids = processor, processor.placeholder_ids()
    prompts = [prompt_text(tokenizer, r["question"]) for r in rows]
    images = [[str(Path(folder) / r["image"])] for r in rows]
    groups = engine.generate(prompts, 1, max_new_tokens=max_new_tokens, temperature=0.0, images=images)
    return sum(extract_answer(g[0].text) == r["answer"] for g, r in zip(groups, rows)) / len(rows)


def flawed(rows: list[dict[str, Any]], slip: float, seed: int) -> list[dict[str, Any]]:
    """The same rows with each solution's class replaced by a random other class with probability ``slip``
    (the answer field keeps the truth): the flawed demonstrations of phase 2."""
    rng = random.Random(f"slip-{seed}")
    out = []
    for r in rows:
        label = r["answer"]
        if r.get("classes") and rng.random() < slip:
            label = rng.choice([c for c in r["classes"] if c != r["answer"]])
        out.append({**r, "solution": f"<answer>{label}</answer>"})
    return out


def warmup(model, tokenizer, processor, train_rows, dev_rows, folder, cfg: VisionPretrainConfig,
           log=print) -> dict[str, Any]:
    """AdamW (betas 0.9/0.98), linear warm-up then constant lr, grad-norm clip 1; the text demo's two phases
    (rlvr.demo.pretrain): correct demonstrations until dev accuracy >= target, then ``flawed_steps`` steps on
    flawed ones (`flawed`), after which the model names a wrong class about as often as the flaw rate says,
    whatever its state after phase 1, while keeping the format and the right class's probability."""
    from rlvr.demo.pretrain import warmup_optimizer

    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    order = random.Random(cfg.seed)
    opt, sched = warmup_optimizer(model, cfg.lr, cfg.warmup_steps)
    indices: list[int] = []
    history, dev, step = [], 0.0, 0
    bad_rows = flawed(train_rows, cfg.slip, cfg.seed)

    def train_step(rows) -> float:
        if len(indices) < cfg.batch_size:
            perm = list(range(len(rows)))
            order.shuffle(perm)
            indices.extend(perm)
        batch = supervised_batch(processor, tokenizer, [rows[i] for i in indices[: cfg.batch_size]], folder)
        del indices[: cfg.batch_size]
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        return loss.item()

    def dev_check(step: int, loss: float) -> float:
        dev = accuracy(model, tokenizer, processor, dev_rows, folder)
        model.train()
        history.append((step, dev))
        log(f"warm-up step {step}: loss {loss:.3f}, dev greedy accuracy {dev:.3f}")
        return dev

    model.train()
    for step in range(1, cfg.max_steps + 1):  # phase 1: learn the task
        loss = train_step(train_rows)
        if step >= cfg.min_steps and step % cfg.eval_every == 0 and dev_check(step, loss) >= cfg.target:
            break
    learn_steps = step
    for step in range(learn_steps + 1, learn_steps + cfg.flawed_steps + 1):  # phase 2: take on the flaw
        loss = train_step(bad_rows)
    dev = dev_check(step, loss)
    model.eval()
    return {"steps": step, "learn_steps": learn_steps, "loss": loss, "dev_accuracy": dev, "history": history,
            "seconds": time.perf_counter() - start}


def cache_root() -> Path:
    """~/.cache/rlvr/vision, or $RLVR_CACHE/vision."""
    return Path(os.environ.get("RLVR_CACHE") or "~/.cache/rlvr").expanduser() / "vision"


def build_vision_base(cache_dir: str | Path | None = None, *, rebuild: bool = False,
                      cfg: VisionPretrainConfig | None = None, log=print) -> dict[str, Any]:
    """Build (or load from the cache) the pictures, the train/held-out/dev files and the weak base.

    Layout: images/  train.jsonl heldout.jsonl dev.jsonl  base/ (model, tokenizer, image processor)  base.json."""
    from rlvr.vision.processor import VisionProcessor

    cfg = cfg or VisionPretrainConfig()
    root = Path(cache_dir).expanduser() if cache_dir else cache_root()
    paths = {"cache_dir": str(root), "model_path": str(root / "base"), "train_path": str(root / "train.jsonl"),
             "heldout_path": str(root / "heldout.jsonl"), "dev_path": str(root / "dev.jsonl")}
    meta_path = root / "base.json"
    if not rebuild and meta_path.is_file() and (root / "base" / "model.safetensors").is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("config") == asdict(cfg):
            return {**meta, **paths, "cached": True}
    root.mkdir(parents=True, exist_ok=True)
    pool = generate("heldout", cfg.n_test + cfg.n_dev, cfg.data_seed, root, cfg.task)
    test_rows, dev_rows = pool[: cfg.n_test], pool[cfg.n_test :]
    train_rows = generate("train", cfg.n_train, cfg.data_seed, root, cfg.task)
    for rows, key in ((train_rows, "train_path"), (test_rows, "heldout_path"), (dev_rows, "dev_path")):
        write_jsonl(rows, paths[key])
    tokenizer = build_vision_tokenizer()
    model = build_tiny_vlm(tokenizer, seed=cfg.seed)
    processor = VisionProcessor(tokenizer, image_processor=build_image_processor())
    result = warmup(model, tokenizer, processor, train_rows, dev_rows, root, cfg, log=log)
    result["heldout_accuracy"] = accuracy(model, tokenizer, processor, test_rows, root)
    tmp = root / "base.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_vlm(model, tokenizer, tmp)
    shutil.rmtree(root / "base", ignore_errors=True)
    tmp.rename(root / "base")
    meta = {"config": asdict(cfg), **result, "parameters": sum(p.numel() for p in model.parameters())}
    meta_path.write_text(json.dumps(meta, indent=2))
    return {**meta, **paths, "cached": False}


def main(argv: list[str] | None = None) -> None:
    """``python -m rlvr.demo.vision [--cache DIR] [--seed N] [--task shape|count] [--rebuild]``: build the base."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rlvr.demo.vision", description=main.__doc__)
    parser.add_argument("--cache", default=None, help="folder (default ~/.cache/rlvr/vision)")
    parser.add_argument("--seed", type=int, default=0, help="initial weights and order of the warm-up")
    parser.add_argument("--task", default="colour", choices=list(TASKS))
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args(argv)
    info = build_vision_base(args.cache, rebuild=args.rebuild,
                             cfg=VisionPretrainConfig(seed=args.seed, task=args.task))
    print(json.dumps({k: v for k, v in info.items() if k != "history"}, indent=2))


if __name__ == "__main__":
    main()
