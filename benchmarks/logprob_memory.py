"""Peak memory of token log-probs: chunked + checkpointed ``token_logprobs`` vs plain full-logits log_softmax.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/logprob_memory.py            # B=8, L=512, H=64, V=150000
    PYTHONPATH=. python benchmarks/logprob_memory.py --batch 2 --chunk-size 512

Each variant runs forward + backward in a fresh subprocess (so one variant's freed memory cannot hide the
other's peak).  torch keeps no CPU allocator statistics and tracemalloc does not see torch tensors, so we read
the process's resident-set high-water mark (VmHWM, Linux): reset it after setup by writing 5 to
/proc/self/clear_refs, run the step, and report VmHWM - RSS before the step.  The plain variant materialises
B x L x V fp32 logits (8 x 512 x 150k x 4 B = 2.46 GB) and keeps the log-softmax for backward; the chunked
one holds a few chunk_size x V buffers at a time.  Goal: chunked / plain <= 0.5.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def run_variant(variant: str, batch: int, length: int, hidden_size: int, vocab: int, chunk_size: int, entropy: bool) -> dict:
    """Run inside the child process: one forward + backward, return the peak extra memory in MiB."""
    import torch

    from rlvr.algorithms.logprobs import entropy_from_logits, token_logprobs

    torch.manual_seed(0)
    hidden = torch.randn(batch, length, hidden_size, requires_grad=True)
    weight = (torch.randn(vocab, hidden_size) * 0.02).requires_grad_(True)
    labels = torch.randint(0, vocab, (batch, length))
    upstream = torch.randn(batch, length)
    base = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    start = time.perf_counter()
    if variant == "plain":
        logits = (hidden @ weight.T).float()
        logp = torch.log_softmax(logits, dim=-1).gather(-1, labels[..., None]).squeeze(-1)
        ent = entropy_from_logits(logits.detach()) if entropy else None
        (logp * upstream).sum().backward()
        del logits
    else:
        logp, ent = token_logprobs(hidden, weight, labels, chunk_size=chunk_size, with_entropy=entropy)
        (logp * upstream).sum().backward()
    seconds = time.perf_counter() - start
    peak = _rss_kib("VmHWM")
    return {
        "variant": variant,
        "peak_extra_mib": (peak - base) / 1024,
        "seconds": seconds,
        "logp_sum": float(logp.detach().double().sum()),
        "grad_norm": float(hidden.grad.norm()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=512)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=150_000)
    ap.add_argument("--chunk-size", type=int, default=1024)
    ap.add_argument("--no-entropy", action="store_true", help="log-probs only (the plain variant skips it too)")
    ap.add_argument("--child", choices=["plain", "chunked"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    shape = (args.batch, args.length, args.hidden, args.vocab, args.chunk_size, not args.no_entropy)
    if args.child:
        print(json.dumps(run_variant(args.child, *shape)))
        return
    results = {}
    for variant in ("plain", "chunked"):
        cmd = [sys.executable, __file__, "--child", variant, "--batch", str(args.batch), "--length", str(args.length),
               "--hidden", str(args.hidden), "--vocab", str(args.vocab), "--chunk-size", str(args.chunk_size)]
        if args.no_entropy:
            cmd.append("--no-entropy")
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    p, c = results["plain"], results["chunked"]
    full_gb = args.batch * args.length * args.vocab * 4 / 2**30
    print(f"B={args.batch} L={args.length} H={args.hidden} V={args.vocab} chunk={args.chunk_size} "
          f"entropy={not args.no_entropy}  (one fp32 B x L x V tensor = {full_gb:.2f} GiB)")
    print(f"plain   log_softmax: peak +{p['peak_extra_mib']:8.0f} MiB  {p['seconds']:.2f} s")
    print(f"chunked token_logprobs: peak +{c['peak_extra_mib']:8.0f} MiB  {c['seconds']:.2f} s")
    print(f"ratio chunked / plain: {c['peak_extra_mib'] / p['peak_extra_mib']:.3f}  (goal <= 0.5)")
    print(f"same result: logp sum {p['logp_sum']:.4f} vs {c['logp_sum']:.4f}, grad norm {p['grad_norm']:.6f} vs {c['grad_norm']:.6f}")


if __name__ == "__main__":
    main()
