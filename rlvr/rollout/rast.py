"""RAST decoding: a large base model steered at every token by a small model's RL logit delta.

RAST (Ouyang et al. 2025, "RAST: Reasoning Activation in LLMs via Small-model Transfer", project page
ozyyshr.github.io/RAST): RL mostly reshapes a model's output distribution, and that shift is largely the same
across model sizes, so the shift a small model learnt from RL can be added to a larger base model at decoding time,
without training the large one. At step t, with the three models run on the same prefix (x, y_<t):

    z~_t = z_large(x, y_<t) + alpha * (z_rl_small(x, y_<t) - z_base_small(x, y_<t))     (V,) logits
    y_t ~ softmax(z~_t / T), after top-k / top-p (greedy: argmax z~_t)

alpha = 1 adds the whole delta, alpha = 0 is the large model alone. The three logit vectors are added id by id, so
the models must share a vocabulary (`shared_vocab_size` checks it before anything decodes).

The engine is the HF engine's decode loop (rlvr.rollout.hf) with two changes: the KV cache of a chunk is one cache
per model (`_ModelCaches`: compaction and the per-prompt row expansion index all three), and the forward returns
z~ instead of one model's logits. Everything else is the loop's: per-prompt seeds and inverse-CDF draws, the
temperature / top-k / top-p warpers, EOS handling, dropping finished rows, log-probs of the sampled tokens under the
final (warped) distribution. Cost: three forward passes per token (the large model's plus two small ones), three
KV caches; no torch.compile (the step is eager).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch

from rlvr.rollout.hf import HFRolloutEngine, _accepts, _cdf_dtype, _owner

logger = logging.getLogger(__name__)


class VocabularyMismatch(ValueError):
    """The three models of RAST do not share a vocabulary (their logits cannot be added id by id)."""


def _logit_width(model) -> int:
    """Rows of the model's output layer (the width of its logits; may exceed len(tokenizer): padding rows)."""
    head = _owner(model).get_output_embeddings()
    return int(head.weight.shape[0]) if head is not None else int(_owner(model).config.vocab_size)


def shared_vocab_size(tokenizers: Mapping[str, object], models: Mapping[str, object]) -> int:
    """V, the number of leading token ids the three models share; RAST decodes over ids 0 .. V-1.

    tokenizers / models: name -> tokenizer / model (the same names, e.g. "large", "base_small", "rl_small").
    V = the smallest tokenizer length and logit width. The tokenizers must agree on every id below the smallest
    tokenizer length (same token string for the same id); ids from there up to V are the embedding's padding rows,
    and larger ids (a longer tokenizer's extra tokens, more padding) are never sampled. Raises VocabularyMismatch
    naming the first id where two tokenizers differ.
    """
    names = list(tokenizers)
    tokens = {name: tokenizers[name].convert_ids_to_tokens(list(range(len(tokenizers[name])))) for name in names}
    common = min(len(t) for t in tokens.values())
    ref = names[0]
    for name in names[1:]:
        a, b = tokens[ref][:common], tokens[name][:common]
        if a != b:
            i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
            raise VocabularyMismatch(
                f"RAST adds the models' logits id by id, so they must share a vocabulary: token id {i} is {a[i]!r} "
                f"in the {ref} model's tokenizer but {b[i]!r} in the {name} model's (first difference among the "
                f"{common} leading ids; lengths {', '.join(f'{n} {len(tokens[n])}' for n in names)}). Use models "
                "of one family with the same tokenizer")
    widths = {name: _logit_width(model) for name, model in models.items()}
    narrow = {name: w for name, w in widths.items() if w < common}
    if narrow:
        raise VocabularyMismatch(f"RAST: the logits of {', '.join(f'{n} ({w})' for n, w in narrow.items())} are "
                                 f"narrower than the {common} token ids the tokenizers share")
    vocab = min(common, *widths.values())
    longest = max(len(t) for t in tokens.values())
    if longest > vocab or max(widths.values()) > vocab:
        logger.info("rast: decoding over the %d shared token ids (tokenizers %s, logit widths %s); larger ids are "
                    "never sampled", vocab, {n: len(t) for n, t in tokens.items()}, widths)
    return vocab


def combine_logits(z_large: torch.Tensor, z_base_small: torch.Tensor, z_rl_small: torch.Tensor,
                   alpha: float) -> torch.Tensor:
    """z~ = z_large + alpha * (z_rl_small - z_base_small): (rows, V) each -> (rows, V) float32.

    Computed in float64 (float32 on MPS): with float32 inputs the difference and the sum are then exact, so
    alpha = 0 returns z_large and, when z_large equals z_base_small, alpha = 1 returns z_rl_small bit for bit.
    """
    dtype = _cdf_dtype(z_large.device)
    delta = z_rl_small.to(dtype) - z_base_small.to(dtype)
    return (z_large.to(dtype) + alpha * delta).to(torch.float32)


class _ModelCaches:
    """One KV cache per model of a chunk. ``layers`` lists the layers of all of them, so the HF loop's row selection
    (`_select_rows`: repeat a prompt's rows n times, drop finished rows) applies to the three caches alike."""

    def __init__(self, caches: Sequence):
        self.caches = list(caches)

    @property
    def layers(self) -> list:
        return [layer for cache in self.caches for layer in cache.layers]


class RASTRolloutEngine(HFRolloutEngine):
    """Sample from softmax(z~ / T) (top-k / top-p) with z~ = z_large + alpha (z_rl_small - z_base_small).

    large:      the model decoded (``--model``); its tokenizer encodes the prompts and decodes the completions.
    base_small, rl_small: the small model before and after RL.
    vocab_size: V from `shared_vocab_size` (the logits of all three are cut to ids 0 .. V-1).
    alpha:      the weight of the RL delta (1.0 in the paper).
    cache:      "auto" / "dynamic" (grows) or "static" (preallocated), for all three caches.
    The `generate` interface and the Completion records are the HF engine's; the log-probs are those of the sampled
    tokens under the warped RAST distribution.
    """

    def __init__(self, large, base_small, rl_small, tokenizer, device: torch.device | str = "cpu", *,
                 vocab_size: int, alpha: float = 1.0, add_special_tokens: bool = True, cache: str = "auto",
                 compact: bool = True):
        super().__init__(large, tokenizer, device, add_special_tokens, decode="loop", cache=cache, compile=False,
                         compact=compact)
        self.base_small, self.rl_small = base_small, rl_small
        self.alpha = float(alpha)
        self.vocab_size = int(vocab_size)
        self.models = (large, base_small, rl_small)
        for model in (base_small, rl_small):
            model.eval()
        self._kwargs = [{"logits_to_keep": 1} if _accepts(m, "logits_to_keep") else {} for m in self.models]
        bad = [i for i in self.eos_ids if i >= self.vocab_size]
        if bad:
            raise VocabularyMismatch(f"RAST: EOS id(s) {bad} are outside the {self.vocab_size} shared token ids")

    def _new_cache(self, static: bool, cache_len: int) -> _ModelCaches:
        from transformers import DynamicCache, StaticCache

        configs = [_owner(m).config for m in self.models]
        if static:
            return _ModelCaches([StaticCache(config=c, max_cache_len=cache_len) for c in configs])
        return _ModelCaches([DynamicCache(config=c) for c in configs])

    def _forward(self, input_ids, position_ids, attention_mask, cache: _ModelCaches) -> torch.Tensor:
        """(rows, q) tokens -> (rows, V) RAST logits z~ of the last position; the three caches are updated."""
        logits = []
        for model, model_cache, kwargs in zip(self.models, cache.caches, self._kwargs):
            out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                        past_key_values=model_cache, use_cache=True, **kwargs)
            logits.append(out.logits[:, -1, : self.vocab_size].to(torch.float32))
        z_large, z_base_small, z_rl_small = logits
        return combine_logits(z_large, z_base_small, z_rl_small, self.alpha)

    def _chunk(self, prompt_ids, *args, **kwargs):
        too_big = [i for ids in prompt_ids for i in ids if i >= self.vocab_size]
        if too_big:
            raise VocabularyMismatch(f"RAST: a prompt holds token id {too_big[0]}, outside the {self.vocab_size} "
                                     "token ids the three models share")
        return super()._chunk(prompt_ids, *args, **kwargs)

    def _fall_back_to_generate(self, reason: str) -> None:
        """transformers generate would decode the large model alone: RAST needs the loop, so this is an error."""
        raise RuntimeError(f"RAST decodes with rlvr's decode loop, which cannot drive this model: {reason}")
