"""Loading the policy (and its reference) and computing per-token log-probs of responses.

Layout of a training batch (verl's): prompts left-padded to width Lp, responses right-padded to width T,

    input_ids = [pad pad p1 p2 p3 | r1 r2 r3 pad]      attention = [0 0 1 1 1 | 1 1 1 0]

so response token t of every row sits in column Lp + t and is predicted by the hidden state in column
Lp + t - 1. Positions come from the attention mask, so left padding does not shift them.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from rlvr.algorithms.logprobs import entropy_from_logits, token_logprobs
from rlvr.config import ModelConfig

log = logging.getLogger("rlvr")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def model_path(path: str, key: str = "model.path") -> str:
    """A local folder (``~`` expanded) when one exists, checked (config, complete weights, tokenizer files: the
    missing or damaged file is named, with the config ``key``); otherwise the string as given (a hub id)."""
    expanded = os.path.expanduser(path)
    if os.path.exists(expanded):
        from rlvr.trainer.guard import check_model_folder

        check_model_folder(expanded, key, tokenizer=key == "model.path")
        return expanded
    if not path or path.startswith(("/", ".", "~")) or path.count("/") > 1:
        raise FileNotFoundError(f"{key}: {path!r} is not an existing folder (nor a hub id like 'org/name')")
    return path


def load_tokenizer(cfg: ModelConfig):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path(cfg.path), trust_remote_code=cfg.trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_policy(cfg: ModelConfig, device: torch.device, dtype: torch.dtype):
    """The trainable policy: the HF model (a vision-language one where the config has a vision tower,
    rlvr.vision.model), optionally wrapped with LoRA adapters (peft; on the language model of a VLM)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from rlvr.vision.model import freeze_vision, is_vision_config, load_vision_model, lora_exclude_pattern

    path = model_path(cfg.path)
    vision = is_vision_config(AutoConfig.from_pretrained(path, trust_remote_code=cfg.trust_remote_code))
    if vision:
        model = load_vision_model(path, dtype, cfg.trust_remote_code)
    elif cfg.freeze_vision:
        raise ValueError(f"model.freeze_vision: {path} is not a vision-language model (its config has no "
                         "vision_config)")
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=cfg.trust_remote_code)
    model.to(device)
    if cfg.freeze_vision:
        log.info("model.freeze_vision: %d vision-tower parameters frozen", freeze_vision(model))
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if cfg.lora.enabled:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as err:  # pragma: no cover - exercised only without the extra
            raise ImportError("model.lora.enabled needs peft: pip install 'rlvr[peft]'") from err
        targets = cfg.lora.target_modules
        lora = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=0.0,
            target_modules=targets[0] if targets == ["all-linear"] else targets,
            task_type="CAUSAL_LM",
            exclude_modules=lora_exclude_pattern() if vision else None,  # the language model only
        )
        model = get_peft_model(model, lora)
    disable_dropout(model)
    model.train()
    return model


def disable_dropout(model: torch.nn.Module) -> None:
    """Turn every dropout off (as TRL does): with dropout the update pass would see another policy than the one
    that sampled, so the PPO ratio would not be 1 at identical weights nor the KL 0 at initialisation."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for name in ("attention_dropout", "dropout", "hidden_dropout", "resid_dropout"):
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, 0.0)


@dataclass
class Reference:
    """The reference policy for the KL term: a frozen copy, or the LoRA base with adapters disabled."""

    model: torch.nn.Module | None  # a frozen copy; None when it is the policy with adapters off
    policy: torch.nn.Module

    @contextmanager
    def active(self):
        """Yields the module to run for reference log-probs."""
        if self.model is not None:
            yield self.model
        else:
            with self.policy.disable_adapter():
                yield self.policy

    def reset_to(self, policy: torch.nn.Module) -> None:
        """ProRL hard reset: the reference becomes a frozen copy of the current policy."""
        if self.model is None:
            raise RuntimeError("a LoRA reference is the frozen base model and cannot be reset")
        self.model.load_state_dict(policy.state_dict())


def make_reference(policy: torch.nn.Module, lora: bool) -> Reference:
    if lora:
        return Reference(None, policy)
    frozen = copy.deepcopy(policy)
    frozen.eval()
    frozen.requires_grad_(False)
    return Reference(frozen, policy)


def _backbone_and_head(model: torch.nn.Module):
    """(decoder, lm_head) for the chunked path, or (None, None) when the head is more than ``h @ W.T``: a bias,
    a LoRA adapter on lm_head, or a model-specific logit transform (softcapping, logit_scale, logits_scaling)."""
    from rlvr.trainer.shard import is_sharded

    if is_sharded(model):  # FSDP2 gathers the root's parameters (head, embeddings) in the root's forward only
        return None, None
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings()
    backbone = getattr(base, base.base_model_prefix, None)
    config = base.config
    special = any(getattr(config, key, None) not in (None, 1, 1.0)
                  for key in ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier"))
    plain_head = isinstance(head, torch.nn.Linear) and type(head) is torch.nn.Linear and head.bias is None
    if backbone is None or not plain_head or special:
        return None, None
    return backbone, head


def _call(module: torch.nn.Module, **kwargs):
    return module(**kwargs)


class Forward:
    """Runs a module's forward, eagerly or through ``torch.compile`` (trainer.compile), falling back to eager.

    ``forward(module, **kwargs)`` is ``module(**kwargs)``; with compile on, the call goes through a compiled
    wrapper of that module (``dynamic=True``: one graph for every batch / width, one more without grad). The
    wrapper shares the module's parameters; the module itself is never replaced, so its state_dict (checkpoints,
    optimizer) keeps its own keys, never ``_orig_mod.``. ``guard(work)`` runs ``work()`` and, when compile is on
    and anything raises inside it (first call or a later recompile), logs one warning with the reason,
    turns compile off and runs ``work()`` again eagerly (callers make ``work`` restartable). ``compile_s`` is
    the wall time of the guarded units that compiled (compile + their run), reported once as perf/compile_s.
    """

    def __init__(self, compile: bool = False):
        self.enabled = compile
        self.compiled: dict[int, object] = {}
        self.compile_s = 0.0
        self._reported = False

    def __call__(self, module: torch.nn.Module, **kwargs):
        if not self.enabled:
            return module(**kwargs)
        fn = self.compiled.get(id(module))
        if fn is None:
            fn = self.compiled[id(module)] = torch.compile(module, dynamic=True)
        return fn(**kwargs)

    def guard(self, work):
        if not self.enabled:
            return work()
        compiled_before = len(self.compiled)
        t0 = time.perf_counter()
        try:
            result = work()
        except Exception as err:  # any failure (no compiler, an unsupported op, a peft wrapper ...): eager
            log.warning("trainer.compile: torch.compile failed (%s: %s); the update runs eagerly from now on",
                        type(err).__name__, str(err).strip().splitlines()[0][:300] if str(err).strip() else "")
            self.enabled = False
            self.compiled.clear()
            return work()
        if len(self.compiled) > compiled_before:
            self.compile_s += time.perf_counter() - t0
        return result

    def settle(self) -> dict[str, float]:
        """After an update: the compile time of the first update that compiled, once ({} otherwise)."""
        if not self.enabled or self._reported or not self.compiled:
            return {}
        self._reported = True
        log.info("trainer.compile: compiled the update's forward in %.1f s (compile + first run)", self.compile_s)
        return {"perf/compile_s": self.compile_s}


def response_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    response_width: int,
    *,
    temperature: float,
    chunk_size: int,
    with_entropy: bool,
    entropy_grad: bool = False,
    forward=None,
    value_head=None,
    extra: dict | None = None,
):
    """Log-probs (and entropies) of the response tokens.

    input_ids, attention_mask: (B, Lp + T) in the layout above; response_width = T.
    Returns logp (B, T) and entropy (B, T) or None, computed at ``temperature`` (as sampled), with memory bounded
    by ``chunk_size`` x V through rlvr.algorithms.logprobs.token_logprobs. ``forward``: a `Forward` (compiled
    or eager module calls); None calls the module directly. ``value_head``: a shared critic's head, (b, t, H)
    last hidden states -> (b, t) values; when given, the values of the same forward come third: (logp, entropy,
    values). ``extra``: a vision-language model's pixel inputs for these rows (rlvr.vision.inputs); with them
    the model derives its own positions (Qwen's 3-D rotary positions) from the ids, the mask and the images.
    """
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask)
    if extra:
        inputs.update(extra)
    else:
        inputs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    return _scored(model, inputs, lambda x: x[:, -response_width - 1 : -1], input_ids[:, -response_width:],
                   forward=forward, temperature=temperature, chunk_size=chunk_size, with_entropy=with_entropy,
                   entropy_grad=entropy_grad, value_head=value_head)


def _scored(model, inputs: dict, pick, labels: torch.Tensor, *, forward, temperature: float, chunk_size: int,
            with_entropy: bool, entropy_grad: bool, value_head=None):
    """One forward on ``inputs``; ``pick`` takes the (b, t) columns that predict ``labels`` (b, t) from its
    (B, L, .) output. Through the backbone + chunked head (token_logprobs) where the model has them, else
    through its full logits. Returns logp (b, t) and entropy (b, t) or None (and, with ``value_head``, the
    values (b, t) it gives the picked last hidden states)."""
    run = forward or _call
    backbone, head = _backbone_and_head(model)
    if backbone is not None:
        hidden = pick(run(backbone, use_cache=False, **inputs).last_hidden_state)
        logp, entropy = token_logprobs(hidden, head.weight, labels, temperature=temperature, chunk_size=chunk_size,
                                       with_entropy=with_entropy, entropy_grad=entropy_grad)
        return (logp, entropy) if value_head is None else (logp, entropy, value_head(hidden))
    out = run(model, use_cache=False, output_hidden_states=value_head is not None, **inputs)
    logits = pick(out.logits).float() / temperature
    logp = torch.log_softmax(logits, dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    entropy = None
    if with_entropy:
        entropy = entropy_from_logits(logits)
        entropy = entropy if entropy_grad else entropy.detach()
    return (logp, entropy) if value_head is None else (logp, entropy, value_head(pick(out.hidden_states[-1])))


def packed_response_logprobs(
    model: torch.nn.Module,
    pack,
    *,
    temperature: float,
    chunk_size: int,
    with_entropy: bool,
    entropy_grad: bool = False,
    forward=None,
    value_head=None,
):
    """`response_logprobs` for a `rlvr.trainer.batch.Packed` micro-batch: several sequences share a row, with
    position ids restarting at 0 for each and no attention mask, from which transformers (masking_utils
    ``find_packed_sequence_indices``) builds a block-diagonal causal mask: no token attends across sequences.
    Returns logp / entropy (n_seqs, T) in the padded layout (0 outside the responses), and the values third
    with ``value_head``.
    """
    src = (pack.src_row, pack.src_col - 1)  # the column before a response token predicts it
    inputs = dict(input_ids=pack.input_ids, position_ids=pack.position_ids)
    scores = _scored(model, inputs, lambda x: x[src].unsqueeze(0), pack.labels.unsqueeze(0), forward=forward,
                     temperature=temperature, chunk_size=chunk_size, with_entropy=with_entropy,
                     entropy_grad=entropy_grad, value_head=value_head)
    dst = (pack.dst_row, pack.dst_col)
    unpacked = [x[0].new_zeros(pack.out_shape).index_put(dst, x[0]) if x is not None else None for x in scores]
    return tuple(unpacked)
