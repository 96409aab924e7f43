"""The vLLM rollout engine: fast sampling in the trainer's process, with weights pushed after every update.

    engine = VLLMRolloutEngine(model_path, tokenizer, cfg.rollout.vllm, dtype="float32", max_model_len=512)
    groups = engine.generate(prompts, n=8, max_new_tokens=256, temperature=1.0)   # same output as the HF engine
    engine.sleep()               # GPU with sleep_mode: free the KV cache while the trainer updates
    engine.sync_weights(model)   # new weights in, prefix cache reset, checked against the trainer's log-probs

Sampling is exactly softmax(logits / T) with optional top-k / top-p: no setting of the model's
generation_config.json leaks in (``generation_config="vllm"``), and the log-prob kept for each sampled token is
the one of the processed distribution (``logprobs_mode="processed_logprobs"``: after temperature and top-k/p),
as the HF engine's `compute_transition_scores` gives. Prompts go in as token ids encoded by the trainer's own
tokenizer, so both engines see the same tokens. Each prompt is one request whose vLLM seed is derived from that
prompt's seed (``generate(..., seeds=[...])``, or drawn per prompt from torch's RNG, which the trainer seeds from
(trainer.seed, step): a resumed run samples the same completions) and ``cfg.seed``, never from its position in the
call: vLLM samples each seeded request with its own generator, so a prompt's completions do not depend on the
other prompts of the call (``split_invariant``; up to batched-kernel numerics).

Weight sync (the path vLLM supports in its V1 engine): ``LLM.collective_rpc`` runs `_load_weights` on every
worker, which calls ``worker.model_runner.reload_weights(weights_iterator=...)`` with the trainer's tensors under
Hugging Face checkpoint names (LoRA adapters merged into W + scale * B A first). vLLM only *warns* about
weights it did not load, so every sync is checked: the engine scores a few already-sampled sequences
(``prompt_logprobs``) and the trainer scores them too; if the mean |log-prob difference| is above
``sync_check_tol`` the run stops with `WeightSyncError` instead of training on a stale sampler.

vLLM is imported lazily: `pip install -e ".[vllm]"` on GPU, `bash scripts/install-vllm-cpu.sh` on CPU.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import torch

from rlvr.rollout import derive_seed, resolve_seeds
from rlvr.types import Completion

log = logging.getLogger("rlvr")

INSTALL_HINT = ('rollout.engine=vllm needs vLLM: pip install -e ".[vllm]" (GPU), or bash scripts/install-vllm-cpu.sh '
                "(CPU build)")
# mean |log-prob difference| (engine vs trainer, same weights) tolerated after a sync, by the engine's dtype.
# Measured on CPU in float32: ~1e-6 (tiny Llama). Half precision kernels differ far more between engines.
SYNC_TOLERANCE = {"float32": 1e-3, "bfloat16": 0.1, "float16": 0.1}
PROBE_TEXT = "The answer is 42. 1+2=3, so x = 3."  # scored at the first sync, before anything was sampled


class WeightSyncError(RuntimeError):
    """The engine does not sample from the trainer's weights after a sync."""


# vLLM log lines that say nothing about the run (matched on the unformatted message): at every weight reload
# rotary embeddings, which have a cached cos/sin buffer and no weights, are "not loaded" (vLLM puts the buffer
# back; a layer that really did not load is caught by the sync check); the CPU backend's advice on preloading
# tcmalloc / iomp, and its refusal of torch.set_num_threads (rlvr restores torch's own threads).
_QUIET = ("CPU backend doesn't allow to use `torch.set_num_threads`", "%s is not found in LD_PRELOAD")


def _worth_showing(record: logging.LogRecord) -> bool:
    msg = str(record.msg)
    if msg == "%s: Failed to load weights" and record.args and str(record.args[0]).endswith("RotaryEmbedding"):
        return False
    return not msg.startswith(_QUIET)


def import_vllm():
    """Import vllm with its engine core in this process (no fork of a CUDA context); a clear error without it."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # its INFO lines would bury the training progress
    try:
        import vllm
    except ImportError as err:
        raise ImportError(f"{INSTALL_HINT} ({err})") from None
    for name in ("vllm.model_executor.model_loader.reload.layerwise", "vllm.v1.worker.cpu_worker"):
        logger = logging.getLogger(name)  # the modules that log them (a logger's filter sees its own records)
        if _worth_showing not in logger.filters:
            logger.addFilter(_worth_showing)
    return vllm


def _load_weights(worker, weights: dict[str, torch.Tensor]) -> tuple[int, int]:
    """Runs inside each vLLM worker: reload the weights in place; returns what arrived (tensors, elements)."""
    worker.model_runner.reload_weights(weights_iterator=iter(weights.items()))
    return len(weights), sum(t.numel() for t in weights.values())


def inference_weights(model) -> dict[str, torch.Tensor]:
    """The policy's weights under Hugging Face checkpoint names, as vLLM loads them.

    A peft LoRA model is pushed merged: W + get_delta_weight() (= scale * B @ A) for every active adapter,
    computed out of place so the trainer's base weights stay bit-exact (merge_adapter + unmerge would not).
    """
    if not hasattr(model, "get_base_model"):
        return {k: v.detach() for k, v in model.state_dict().items()}
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    deltas: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, module in base.named_modules():
            if isinstance(module, LoraLayer):
                for adapter in module.active_adapters:
                    if adapter in module.lora_A:
                        key = f"{name}.base_layer.weight"
                        delta = module.get_delta_weight(adapter)
                        deltas[key] = deltas[key] + delta if key in deltas else delta
        weights = {}
        for key, value in base.state_dict().items():
            if "lora_" in key:
                continue
            value = value.detach()
            if key in deltas:
                value = (value + deltas[key].to(value.dtype)).to(value.dtype)
            weights[key.replace(".base_layer.", ".")] = value
    return weights


def request_seed(seed: int, engine_seed: int) -> int:
    """The vLLM seed of a prompt's request: its own seed mixed with ``rollout.vllm.seed``, in 0 .. 2**31-2 (vLLM
    gives the request's j-th sample seed + j)."""
    return derive_seed(seed, engine_seed) % (2**31 - 1)


class VLLMRolloutEngine:
    """Sample completions with vLLM (``rollout.engine: vllm``), colocated with the trainer.

    model_path:   the folder vLLM loads at start (the trainer's model.path); the trainer's current weights are
                  pushed by `sync_weights` before the first rollout, so a resumed run samples from its checkpoint.
    tokenizer:    the trainer's tokenizer: prompts are encoded here and completions decoded here.
    cfg:          rlvr.config.VLLMConfig.
    dtype:        "float32" | "bfloat16" | "float16" (cfg.dtype "auto" resolves to the trainer's dtype).
    max_model_len: prompt + response tokens per sequence.
    eos_ids:      token ids that end a completion (the HF engine's set, passed as stop_token_ids).
    """

    split_invariant = True  # per-request seeds from per-prompt seeds: a prompt's samples ignore the other prompts

    def __init__(self, model_path: str, tokenizer, cfg, *, dtype: str, max_model_len: int, eos_ids: list[int],
                 add_special_tokens: bool = True, trust_remote_code: bool = False):
        vllm = import_vllm()
        self.tokenizer, self.cfg, self.dtype = tokenizer, cfg, dtype
        self.eos_ids, self.add_special_tokens = list(eos_ids), add_special_tokens
        self.max_model_len = max_model_len
        self.tol = cfg.sync_check_tol or SYNC_TOLERANCE[dtype]
        self._probe: list[list[int]] = []  # sequences sampled last, re-scored after each sync
        self.model = None  # the policy whose weights the engine holds (set by sync_weights; eval's forward entropy)
        self._asleep = False
        threads, set_threads = torch.get_num_threads(), torch.set_num_threads
        kwargs: dict[str, Any] = dict(
            model=str(model_path), dtype=dtype, seed=cfg.seed, max_model_len=max_model_len,
            gpu_memory_utilization=cfg.gpu_memory_utilization, enforce_eager=cfg.enforce_eager,
            tensor_parallel_size=cfg.tensor_parallel_size, generation_config="vllm",
            logprobs_mode="processed_logprobs", trust_remote_code=trust_remote_code,
        )
        if cfg.kv_cache_gb:
            kwargs["kv_cache_memory_bytes"] = int(cfg.kv_cache_gb * 2**30)
        if cfg.sleep_mode:
            kwargs["enable_sleep_mode"] = True
        t0 = time.perf_counter()
        try:
            self.llm = vllm.LLM(**kwargs)
        except Exception as err:  # vLLM's own reason, before any training step
            raise RuntimeError(f"vLLM could not load the model {model_path}: {type(err).__name__}: {err}") from err
        finally:
            # vLLM's CPU worker pins torch to one thread and replaces torch.set_num_threads with a no-op for the
            # whole process; the trainer shares this process, so both are put back.
            torch.set_num_threads = set_threads
            torch.set_num_threads(threads)
        self._threads = threads
        self.start_seconds = time.perf_counter() - t0
        self._SamplingParams, self._TokensPrompt = vllm.SamplingParams, vllm.inputs.TokensPrompt

    # ------------------------------------------------------------------------------------------ sampling
    def generate(
        self,
        prompts: list[str],
        n: int,
        *,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        batch_size: int = 0,
        seeds: list[int] | None = None,
    ) -> list[list[Completion]]:
        """P prompts -> P lists of n completions (temperature 0 = greedy). vLLM batches by itself:
        ``batch_size`` is accepted for the protocol and ignored. ``seeds``: one int (0 .. 2**63-1) per prompt
        (None: drawn from torch's global RNG); request i's vLLM seed is `request_seed` (seeds[i], cfg.seed)."""
        encoded = [self.tokenizer(p, add_special_tokens=self.add_special_tokens)["input_ids"] for p in prompts]
        longest = max((len(ids) for ids in encoded), default=0)
        if longest + max_new_tokens > self.max_model_len:
            raise ValueError(f"a prompt of {longest} tokens + {max_new_tokens} new tokens exceeds the vLLM engine's "
                             f"max_model_len {self.max_model_len}; raise rollout.vllm.max_model_len (0 = automatic)")
        self.wake_up()
        greedy = temperature == 0
        copies, per_request = (n, 1) if greedy else (1, n)  # greedy: one decode per prompt, repeated n times
        # checked when given; drawn only when sampling (greedy ignores seeds and leaves torch's RNG alone)
        seeds = resolve_seeds(seeds, len(encoded)) if seeds is not None or not greedy else [0] * len(encoded)
        params = [
            self._SamplingParams(
                n=per_request, temperature=temperature, top_p=1.0 if greedy else top_p,
                top_k=0 if greedy else top_k, max_tokens=max_new_tokens, logprobs=0,
                seed=request_seed(seed, self.cfg.seed),
                stop_token_ids=self.eos_ids, detokenize=False, skip_special_tokens=False,
                repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0, min_p=0.0,
            )
            for seed in seeds
        ]
        requests = [self._TokensPrompt(prompt_token_ids=ids) for ids in encoded]
        outputs = self._call(self.llm.generate, requests, params, use_tqdm=False)
        groups: list[list[Completion]] = []
        for ids, out in zip(encoded, outputs):
            group = []
            for sample in out.outputs:
                tokens = list(sample.token_ids)
                logprobs = [float(lp[tok].logprob) for tok, lp in zip(tokens, sample.logprobs)]
                finish = "eos" if tokens and tokens[-1] in self.eos_ids else "length"
                text = self.tokenizer.decode(tokens, skip_special_tokens=True)
                group.extend([Completion(text, tokens, logprobs, finish, prompt_ids=list(ids))] * copies)
            groups.append(group)
        self._probe = [list(g[0].prompt_ids) + list(g[0].token_ids) for g in groups[:2] if g and g[0].token_ids]
        return groups

    def continue_ids(self, prefixes: list[list[int]], max_new_tokens: int, temperature: float = 1.0,
                     top_p: float = 1.0, top_k: int = 0, seeds: list[int] | None = None,
                     stop: list[list[int]] | None = None) -> list[Completion]:
        """One completion per token-id prefix (multi-turn rollouts: the prompt plus the trajectory so far), never
        re-tokenised. Each request's max_tokens is also capped by max_model_len. ``stop``: token-id sequences:
        one-token ones become stop_token_ids, longer ones stop strings (their decoded text, kept in the output);
        finish_reason "stop" when one ended the sample. The multi-turn loop cuts at the stop text itself too."""
        self.wake_up()
        greedy = temperature == 0
        seeds = resolve_seeds(seeds, len(prefixes)) if seeds is not None or not greedy else [0] * len(prefixes)
        stop = [list(seq) for seq in stop or [] if seq]
        stop_tokens = [seq[0] for seq in stop if len(seq) == 1]
        stop_strings = [self.tokenizer.decode(seq, skip_special_tokens=False) for seq in stop if len(seq) > 1]
        params = []
        for ids, seed in zip(prefixes, seeds):
            room = self.max_model_len - len(ids)
            if room < 1:
                raise ValueError(f"a trajectory of {len(ids)} tokens fills the vLLM engine's max_model_len "
                                 f"{self.max_model_len}; raise rollout.vllm.max_model_len")
            params.append(self._SamplingParams(
                n=1, temperature=temperature, top_p=1.0 if greedy else top_p, top_k=0 if greedy else top_k,
                max_tokens=min(max_new_tokens, room), logprobs=0, seed=request_seed(seed, self.cfg.seed),
                stop_token_ids=self.eos_ids + stop_tokens, stop=stop_strings or None,
                include_stop_str_in_output=True, detokenize=bool(stop_strings), skip_special_tokens=False,
                repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0, min_p=0.0))
        outputs = self._call(self.llm.generate, [self._TokensPrompt(prompt_token_ids=list(ids)) for ids in prefixes],
                             params, use_tqdm=False)
        out = []
        for ids, o in zip(prefixes, outputs):
            sample = o.outputs[0]
            tokens = list(sample.token_ids)
            logprobs = [float(lp[tok].logprob) for tok, lp in zip(tokens, sample.logprobs)]
            if tokens and tokens[-1] in self.eos_ids:
                finish = "eos"
            elif sample.finish_reason == "stop":
                finish = "stop"
            else:
                finish = "length"
            out.append(Completion(self.tokenizer.decode(tokens, skip_special_tokens=True), tokens, logprobs, finish,
                                  prompt_ids=list(ids)))
        return out

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(self._threads)  # vLLM lowers torch's threads for serving; the trainer wants them

    # ------------------------------------------------------------------------------------------ weights
    def sleep(self) -> None:
        """GPU with sleep_mode: offload the weights and free the KV cache while the trainer updates."""
        if self.cfg.sleep_mode and not self._asleep:
            self.llm.sleep(level=1)
            self._asleep = True

    def wake_up(self) -> None:
        if self._asleep:
            self.llm.wake_up()
            self._asleep = False

    def sync_weights(self, model) -> dict[str, float]:
        """Push the policy's weights into the engine, reset the prefix cache and check that the engine now
        scores sampled tokens as the trainer does. Raises WeightSyncError when it does not."""
        t0 = time.perf_counter()
        weights = inference_weights(model)
        if self._asleep:
            self.llm.wake_up(tags=["weights"])
        received = self._call(self.llm.collective_rpc, _load_weights, args=(weights,))
        expected = (len(weights), sum(t.numel() for t in weights.values()))
        if any(tuple(r) != expected for r in received):
            raise WeightSyncError(f"weight sync: workers received {received}, the trainer sent {expected} "
                                  "(tensors, elements)")
        self.llm.reset_prefix_cache()
        self.wake_up()
        seconds = time.perf_counter() - t0
        diff, tokens = self.check_weights(model)
        if diff > self.tol:
            raise WeightSyncError(
                f"after the weight sync the vLLM engine's log-probs differ from the trainer's by {diff:.3g} on "
                f"average over {tokens} tokens (tolerance rollout.vllm.sync_check_tol = {self.tol:g}): the engine "
                "is not sampling from the trainer's weights (names it did not load? a stale copy?). Stopping "
                "before training on stale rollouts; the last checkpoint is intact.")
        self.model = model
        return {"time/weight_sync_s": seconds, "rollout/sync_logprob_diff": diff}

    @torch.no_grad()
    def check_weights(self, model) -> tuple[float, int]:
        """Mean |log p_engine - log p_trainer| (temperature 1) over the tokens of the probe sequences."""
        limit = self.max_model_len - 1
        probe = [seq[:limit] for seq in self._probe] or [self._probe_ids()[:limit]]
        params = self._SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=1.0, detokenize=False)
        outputs = self._call(self.llm.generate, [self._TokensPrompt(prompt_token_ids=s) for s in probe], params,
                             use_tqdm=False)
        from rlvr.trainer.learner import probe_logprobs

        total, count = 0.0, 0
        for seq, out in zip(probe, outputs):
            engine = torch.tensor([out.prompt_logprobs[i][seq[i]].logprob for i in range(1, len(seq))])
            total += float((engine - probe_logprobs(model, seq)).abs().sum())
            count += len(seq) - 1
        return total / max(count, 1), count

    def _probe_ids(self) -> list[int]:
        ids = self.tokenizer(PROBE_TEXT, add_special_tokens=self.add_special_tokens)["input_ids"]
        return ids if len(ids) >= 2 else ids + self.eos_ids[:1] * 2

    def close(self) -> None:
        """Shut the engine down; after a crash it may already be dead, which must not hide the crash's error."""
        llm, self.llm = getattr(self, "llm", None), None
        engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        try:
            if engine_core is not None and hasattr(engine_core, "shutdown"):
                engine_core.shutdown()
        except Exception as err:  # noqa: BLE001
            log.warning("vLLM engine shutdown failed: %s", err)
