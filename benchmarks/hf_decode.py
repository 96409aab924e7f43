"""Tokens per second of the HF rollout engine's decode paths (issue 18): raw transformers `generate`, the engine's
``decode: generate``, ``decode: loop`` (static cache, eager), ``decode: loop`` with a dynamic cache, and ``decode:
loop`` + ``compile: true``, on random-init character-level Llamas.

    python benchmarks/hf_decode.py                      # demo shape and a ~10x larger one, B = 128 and 16
    python benchmarks/hf_decode.py --shapes demo --batches 128 --repeats 3 --ragged

Shapes: ``demo`` = build_tiny_llama(hidden=128, layers=4, intermediate=256) (the `rlvr demo` model), ``large`` =
hidden 512, 8 layers, intermediate 1024 (~13x the demo's non-embedding parameters). B rows = B/8 prompts x 8
completions, prompts 14 tokens, 64 new tokens, T = 1 (sampling), top-k / top-p off.

A random-init model rarely samples EOS, so nearly every row runs the full 64 tokens and row dropping has little to
drop. ``--ragged`` adds a run where 10% of the vocabulary counts as EOS (rows stop after ~10 tokens, spread
geometrically) to show what dropping finished rows buys.

Every setting is timed ``--repeats`` times after one warm-up call (which, for compile, is where compilation happens:
its seconds are printed separately, from ``engine.compile_seconds``); the table shows the median. Tokens/s counts
the tokens actually generated (up to and including EOS); the ratio is against raw `generate` measured in the same
run and shape. Generation runs under torch's default thread count unless ``--threads`` says otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformers import GenerationConfig  # noqa: E402

from rlvr.demo.tiny import build_char_tokenizer, build_tiny_llama  # noqa: E402
from rlvr.rollout.hf import HFRolloutEngine  # noqa: E402

SHAPES = {"demo": dict(hidden=128, layers=4, intermediate=256), "large": dict(hidden=512, layers=8, intermediate=1024)}
N = 8  # completions per prompt
PROMPT_TOKENS = 14
NEW_TOKENS = 64


def prompts_for(rows: int) -> list[str]:
    """rows / N distinct prompts of exactly PROMPT_TOKENS characters (= tokens)."""
    out = []
    for i in range((rows + N - 1) // N):
        text = f"Q: {i * 37 % 100:02d}+{i * 11 % 100:02d}-{i % 10}\nA: "
        out.append(text[:PROMPT_TOKENS].ljust(PROMPT_TOKENS, " "))
    return out


def raw_generate(model, tokenizer, prompts, eos_ids):
    """Plain transformers generate, sampling at T = 1, no warpers, no log-prob capture."""
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    config = GenerationConfig(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, num_return_sequences=N,
                              max_new_tokens=NEW_TOKENS, pad_token_id=tokenizer.pad_token_id, eos_token_id=eos_ids)
    with torch.no_grad():
        out = model.generate(**enc, generation_config=config)
    new = out[:, enc["input_ids"].shape[1]:]
    is_eos = torch.isin(new, torch.tensor(eos_ids))
    first = torch.where(is_eos.any(1), is_eos.float().argmax(1) + 1, torch.full((new.shape[0],), new.shape[1]))
    return int(first.sum())


def engine_call(engine, prompts):
    groups = engine.generate(prompts, N, max_new_tokens=NEW_TOKENS, temperature=1.0)
    return sum(len(c.token_ids) for g in groups for c in g)


def timed(fn, repeats):
    fn()  # warm-up (compile happens here for the compiled engine)
    runs = []
    for r in range(repeats):
        torch.manual_seed(100 + r)
        start = time.perf_counter()
        tokens = fn()
        runs.append((time.perf_counter() - start, tokens))
    seconds = statistics.median(s for s, _ in runs)
    tokens = statistics.median(t for _, t in runs)
    rate = statistics.median(t / s for s, t in runs)
    return seconds, tokens, rate


def bench(shape: str, rows: int, repeats: int, ragged: bool, with_compile: bool) -> list[dict]:
    tokenizer = build_char_tokenizer()
    model = build_tiny_llama(tokenizer, seed=0, **SHAPES[shape]).eval()
    if ragged:  # 10% of the vocabulary ends a completion
        model.generation_config.eos_token_id = [tokenizer.eos_token_id] + list(range(10, 10 + len(tokenizer) // 10))
    prompts = prompts_for(rows)
    settings = [("transformers generate", None), ("engine decode=generate", dict(decode="generate")),
                ("engine loop static", dict(decode="loop", cache="static")),
                ("engine loop dynamic", dict(decode="loop", cache="dynamic"))]
    if with_compile:
        settings.append(("engine loop static+compile", dict(decode="loop", cache="static", compile=True)))
    results = []
    for name, kwargs in settings:
        if kwargs is None:
            eos = HFRolloutEngine(model, tokenizer, decode="generate").eos_ids
            seconds, tokens, rate = timed(lambda: raw_generate(model, tokenizer, prompts, eos), repeats)
            compile_s = 0.0
        else:
            engine = HFRolloutEngine(model, tokenizer, **kwargs)
            torch.manual_seed(0)
            seconds, tokens, rate = timed(lambda: engine_call(engine, prompts), repeats)
            compile_s = engine.compile_seconds
            if kwargs.get("compile") and not engine.compile:
                name += f" (fell back: {engine.fallback_reason[:60]})"
        results.append(dict(shape=shape + (" ragged" if ragged else ""), rows=rows, name=name, seconds=seconds,
                            tokens=tokens, rate=rate, compile_s=compile_s))
        print(f"  {shape:5s} B={rows:3d} {name:28s} {seconds:7.3f} s  {tokens:6.0f} tok  {rate:8.0f} tok/s"
              + (f"  (compile {compile_s:.1f} s)" if compile_s else ""), flush=True)
    base = results[0]["rate"]
    for r in results:
        r["ratio"] = r["rate"] / base
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["demo", "large"], choices=list(SHAPES))
    parser.add_argument("--batches", nargs="+", type=int, default=[128, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ragged", action="store_true", help="also a run with 10%% of the vocabulary as EOS")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled loop")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; prompts {PROMPT_TOKENS} tokens, "
          f"{NEW_TOKENS} new tokens, T=1, median of {args.repeats}")
    table = []
    for shape in args.shapes:
        for rows in args.batches:
            table += bench(shape, rows, args.repeats, False, not args.no_compile)
            if args.ragged:
                table += bench(shape, rows, args.repeats, True, not args.no_compile)
    print()
    print("| shape | B | setting | s / call | tokens | tokens/s | vs transformers generate |")
    print("|---|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['shape']} | {r['rows']} | {r['name']} | {r['seconds']:.3f} | {r['tokens']:.0f} | "
              f"{r['rate']:.0f} | {r['ratio']:.2f}x |")
    compiled = [r for r in table if "compile" in r["name"]]
    if compiled:
        print()
        print("compile seconds (one engine per row; its warm-up call plus any new batch shape in the repeats; 0 = "
              "every shape was compiled by an earlier engine of this process, whose graphs it reused):")
        for r in compiled:
            print(f"  {r['shape']} B={r['rows']}: {r['compile_s']:.1f} s")


if __name__ == "__main__":
    main()
