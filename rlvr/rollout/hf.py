"""The default rollout engine: decoding on the policy itself with Hugging Face models (no weight sync needed).

Prompts are left-padded and generated in chunks of ``batch_size`` completions. For every completion we keep the
response token ids (up to and including EOS), the log-probability of each sampled token under the *sampling*
distribution (after temperature / top-k / top-p), and why it stopped.

Those log-probs are captured during decoding by `_SampledLogprobs`, the last logits processor, which holds one
(B, V) buffer at a time: memory O(B x V) rather than the O(B x V x T) of ``output_scores`` +
`compute_transition_scores` (5 GB for 8 rows x a 152k vocabulary x 1024 steps), with the same values.

Two decode paths (``rollout.hf.decode``, docs/rollout.md):

* ``generate``: ``model.generate`` with the capture above (the former and only path).
* ``loop`` (default): our own loop over the model's forward. Prefill once per *prompt* (the cache is then repeated
  for its n rows), one token per step into a preallocated `StaticCache` (or a `DynamicCache`), the same warpers
  (`_warpers`) on float32 logits, and finished rows dropped: when the rows still decoding are at most half the
  batch, the cache is compacted to half its rows (so batch shapes come from B, B/2, B/4 ...). Optionally the
  one-token forward is ``torch.compile``-d (``rollout.hf.compile``). Sampling is by inverse CDF with one uniform
  per sample and step, taken from the sample's *prompt seed* (below), so rows dropped or not, the samples are the
  same.

Seeds (docs/rollout.md, "Seeds"): ``generate(..., seeds=[...])`` takes one int per prompt; without them one seed per
prompt is drawn from torch's global RNG (one ``torch.randint`` at the start of the call), so ``torch.manual_seed``
before a call reproduces it. In the loop, prompt p's uniforms are U_p = ``torch.rand((n, max_new_tokens),
float64, generator=torch.Generator().manual_seed(seeds[p]))``: sample j at step t uses U_p[j, t], whatever else
shares the chunk (other prompts, their order, ``batch_size``, pieces of a large group: piece rows done..done+k use
U_p[done:done+k]). A completion therefore depends on the weights, its prompt, its seed and the sampling settings
(n and max_new_tokens included: they shape U_p) only; ``split_invariant`` is True. ``decode: generate`` samples from
torch's global RNG: each chunk runs under a forked RNG seeded with the seed of its first prompt, which reproduces a
call with the same chunking but is *not* split-invariant (``split_invariant`` False, also after a fallback).
Greedy decoding ignores seeds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import time

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from rlvr.rollout import derive_seed, resolve_seeds
from rlvr.types import Completion

logger = logging.getLogger(__name__)

DECODE_MODES = ("loop", "generate")
CACHE_MODES = ("auto", "static", "dynamic")
CACHE_LEN_BUCKET = 32  # the static cache holds width + max_new_tokens rounded up to this: fewer compiled shapes
MIN_COMPILED_ROWS = 8  # with compile, compaction stops at this many rows (each batch size is one compiled graph)
RECOMPILE_LIMIT = 64  # dynamo's per-function limit (default 8) while the decode step runs: batch x cache shapes


class HFRolloutEngine:
    """Sample completions with our decode loop (default) or `model.generate`.

    model:      a causal LM (possibly a peft model); put in eval mode during generation, restored afterwards.
    tokenizer:  its tokenizer; a pad token is borrowed from EOS when missing.
    device:     where input tensors go.
    add_special_tokens: passed to the tokenizer for prompts (False when prompts come from a chat template
                that already carries the BOS text).
    decode:     "loop" (our loop over the forward, finished rows dropped) or "generate" (model.generate).
    cache:      "static" (preallocated StaticCache) or "dynamic" (DynamicCache), for the loop.
    compile:    torch.compile the loop's one-token step (static cache); falls back to eager on failure.
    compact:    drop finished rows from the loop's batch (False only to compare in tests).

    ``split_invariant`` (read-only): True while decoding with the loop, whose samples depend on each prompt's own
    seed only; False with ``decode: generate`` (chosen, or fallen back to), whose chunks share torch's RNG stream.
    """

    def __init__(self, model, tokenizer, device: torch.device | str = "cpu", add_special_tokens: bool = True, *,
                 decode: str = "loop", cache: str = "auto", compile: bool = False, compact: bool = True):
        if decode not in DECODE_MODES:
            raise ValueError(f"decode: {decode!r} is not one of {', '.join(DECODE_MODES)}")
        if cache not in CACHE_MODES:
            raise ValueError(f"cache: {cache!r} is not one of {', '.join(CACHE_MODES)}")
        if cache == "auto":  # eager: the dynamic cache attends over what is filled (faster, docs/performance.md)
            cache = "static" if compile else "dynamic"
        if compile and (decode != "loop" or cache != "static"):
            raise ValueError("compile compiles the loop's one-token step over a static cache: it needs decode 'loop' "
                             "and cache 'static'")
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.add_special_tokens = add_special_tokens
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.eos_ids = _eos_ids(model, tokenizer)
        self.decode = decode  # becomes "generate" (with a logged reason) if the model cannot run the loop
        self.cache = cache
        self.compile = compile  # becomes False (with a logged reason) if compiling fails
        self.compact = compact  # drop finished rows (tests turn it off to compare)
        self.compile_seconds = 0.0  # time spent compiling the decode step (first call of each new shape)
        self.fallback_reason = ""  # why decode or compile fell back, if they did
        self._loop_ok = False  # the loop has produced one chunk: later errors are real errors, not a fallback
        self._compiled = None  # the compiled one-token step, built once per engine
        self._compiled_shapes: set[tuple] = set()
        self._pending_compile = 0.0  # compile seconds of this generate() call, logged once at its end
        # partial rollouts (async free mode): an Event; when set, the decode loop stops at the next token and the
        # unfinished completions come back "interrupted" (continued later by `continue_ids`); None = never
        self.interrupt = None
        self.processor = None  # a vision-language policy: its rlvr.vision.processor.VisionProcessor (images)
        self.suppress_ids: list[int] = []  # token ids never sampled (a VLM's image / video placeholders)
        # (rows, V) logits only, not (rows, prompt width, V), where the forward can say so
        self._forward_kwargs = {"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}

    @property
    def split_invariant(self) -> bool:
        """Whether a prompt's samples depend on its seed only (decode loop), not on the prompts it is batched with."""
        return self.decode == "loop"

    @torch.no_grad()
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
        images: list[list] | None = None,
    ) -> list[list[Completion]]:
        """P prompts -> P lists of n completions. ``batch_size`` caps completions per decode call (0 = all): whole
        groups are batched together, and a group larger than ``batch_size`` (many rollouts per prompt, BroRL) is
        sampled in pieces of ``batch_size``, so memory is bounded by ``batch_size``, not by n.

        ``seeds``: one int (0 .. 2**63-1) per prompt; None draws them from torch's global RNG. With the decode loop
        a prompt's completions depend on its seed only, not on the other prompts, their order or ``batch_size``
        (split-invariant). With ``decode: generate`` each chunk is seeded with its first prompt's seed: the same
        call with the same chunking repeats, but splitting the prompts differently changes the samples.

        ``images``: one list of image references per prompt (rlvr.vision.images; [] for a text prompt), for a
        vision-language policy (``processor`` set): see `_generate_with_images`."""
        if images is not None and any(images):
            return self._generate_with_images(prompts, images, n, max_new_tokens, temperature, top_p, top_k,
                                              batch_size, seeds)
        encoded = [self.tokenizer(p, add_special_tokens=self.add_special_tokens)["input_ids"] for p in prompts]
        greedy = temperature == 0
        # checked when given; drawn only when sampling (greedy ignores seeds and leaves torch's RNG alone)
        seeds = resolve_seeds(seeds, len(prompts)) if seeds is not None or not greedy else [0] * len(prompts)
        per_call = max(1, (batch_size or len(prompts) * n) // n)
        piece = batch_size if 0 < batch_size < n and not greedy else n  # greedy decodes one row per prompt
        results: list[list[Completion]] = []
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(prompts), per_call):
                chunk, chunk_seeds = encoded[start : start + per_call], seeds[start : start + per_call]
                if piece == n:
                    uniforms = self._uniforms(chunk_seeds, n, max_new_tokens, greedy)
                    results.extend(self._chunk(chunk, n, max_new_tokens, temperature, top_p, top_k,
                                               chunk_seeds[0], uniforms))
                    continue
                for ids, seed in zip(chunk, chunk_seeds):  # one prompt per call, its n samples in pieces
                    group_uniforms = self._uniforms([seed], n, max_new_tokens, greedy)  # U_p, sliced per piece
                    group: list[Completion] = []
                    for done in range(0, n, piece):
                        k = min(piece, n - done)
                        rows = None if group_uniforms is None else group_uniforms[done : done + k]
                        piece_seed = seed if done == 0 else derive_seed(seed, done)  # decode: generate only
                        group.extend(self._chunk([ids], k, max_new_tokens, temperature, top_p, top_k, piece_seed,
                                                 rows)[0])
                    results.append(group)
        finally:
            self.model.train(was_training)
            if self._pending_compile:
                logger.info("rollout.hf.compile: compiled the decode step in %.1f s (%.1f s this run so far; "
                            "shapes rows x cache length: %s)", self._pending_compile, self.compile_seconds,
                            ", ".join(f"{b}x{c}" for b, c in sorted(self._compiled_shapes, reverse=True)))
                self._pending_compile = 0.0
        return results

    @torch.no_grad()
    def continue_ids(self, prefixes: list[list[int]], max_new_tokens: int, temperature: float = 1.0,
                     top_p: float = 1.0, top_k: int = 0, seeds: list[int] | None = None,
                     stop: list[list[int]] | None = None) -> list[Completion]:
        """One completion per token-id prefix (a prompt plus tokens sampled so far), decoded on from its last
        token with a cache rebuilt from the ids (partial rollouts, multi-turn rollouts): the ids are never
        re-tokenised. ``seeds``: one per prefix (its draws). ``stop``: token-id sequences; a row whose sampled
        tokens end with one stops there, finish_reason "stop" (the sequence kept). Needs the decode loop; the
        returned prompt_ids are the prefixes."""
        if self.decode != "loop":
            raise RuntimeError("continuing from token ids needs rollout.hf.decode loop")
        greedy = temperature == 0
        seeds = resolve_seeds(seeds, len(prefixes)) if seeds is not None or not greedy else [0] * len(prefixes)
        was_training = self.model.training
        self.model.eval()
        try:
            uniforms = self._uniforms(seeds, 1, max_new_tokens, greedy)
            groups = self._chunk(prefixes, 1, max_new_tokens, temperature, top_p, top_k, seeds[0] if seeds else 0,
                                 uniforms, stop=stop)
        finally:
            self.model.train(was_training)
        return [g[0] for g in groups]

    @torch.no_grad()
    def _generate_with_images(self, prompts, images, n, max_new_tokens, temperature, top_p, top_k, batch_size,
                              seeds) -> list[list[Completion]]:
        """Prompts with images: each prompt is encoded by ``self.processor`` (its image tokens expanded, its pixel
        inputs built) and sampled on its own by ``model.generate`` (pieces of ``batch_size`` rows for a large
        group), under torch's RNG seeded with the prompt's seed: the sampling semantics, warpers and per-token
        log-probs of ``decode: generate``, and a prompt's samples depend on its own seed only (the decode loop's
        explicit 1-D positions do not fit 3-D rotary positions, so it is not used here). Greedy decoding has no
        draws: its prompts are batched (``batch_size`` rows per call). Each completion's ``vision`` is the
        prompt's PromptInputs, which the update's forward takes again."""
        from rlvr.vision.images import image_label, open_image

        if self.processor is None:
            raise ValueError("prompts with images need a vision-language policy: model.path's config has no "
                             "vision_config, so no image processor was loaded")
        greedy = temperature == 0
        seeds = resolve_seeds(seeds, len(prompts)) if seeds is not None or not greedy else [0] * len(prompts)
        piece = batch_size if 0 < batch_size < n and not greedy else n
        was_training = self.model.training
        self.model.eval()
        results: list[list[Completion]] = []

        def encode(prompt, refs):
            inputs = self.processor.encode(prompt, [open_image(r) for r in refs or []], self.add_special_tokens)
            inputs.images = [image_label(r) for r in refs or []]
            return inputs

        try:
            if greedy:  # no draws: prompts batched (left-padded, their pixel inputs concatenated)
                per_call = max(1, batch_size or len(prompts))
                for start in range(0, len(prompts), per_call):
                    chunk = [encode(p, r) for p, r in zip(prompts[start : start + per_call],
                                                         images[start : start + per_call])]
                    groups = self._generate_chunk([x.input_ids for x in chunk], n, max_new_tokens, 0.0, top_p,
                                                  top_k, vision=chunk)
                    for inputs, group in zip(chunk, groups):
                        results.append([dataclasses.replace(c, vision=inputs if inputs.items else None)
                                        for c in group])
                return results
            for prompt, refs, seed in zip(prompts, images, seeds):
                inputs = encode(prompt, refs)
                group: list[Completion] = []
                for done in range(0, n, piece):
                    k = min(piece, n - done)
                    piece_seed = seed if done == 0 else derive_seed(seed, done)
                    group.extend(self._generate_chunk([inputs.input_ids], k, max_new_tokens, temperature, top_p,
                                                      top_k, piece_seed, vision=[inputs])[0])
                for c in group:
                    c.vision = inputs if inputs.items else None
                results.append(group)
        finally:
            self.model.train(was_training)
        return results

    def _suppress(self) -> list[LogitsProcessor]:
        """The first warper when ``suppress_ids`` is set: those tokens get probability 0 (greedy too)."""
        return [_Suppress(self.suppress_ids)] if self.suppress_ids else []

    def _uniforms(self, seeds: list[int], n: int, max_new_tokens: int, greedy: bool) -> torch.Tensor | None:
        """The loop's (len(seeds) * n, max_new_tokens) float64 uniforms: U_p of every prompt, stacked (CPU); None
        when nothing will use them (greedy, or ``decode: generate``)."""
        if greedy or self.decode != "loop":
            return None
        return torch.cat([torch.rand((n, max_new_tokens), dtype=torch.float64,
                                     generator=torch.Generator().manual_seed(seed)) for seed in seeds])

    def _chunk(self, prompt_ids, n, max_new_tokens, temperature, top_p, top_k, seed=0,
               uniforms=None, stop=None) -> list[list[Completion]]:
        """One decode call. ``seed`` seeds ``decode: generate``; ``uniforms`` are the loop's (rows, steps) draws."""
        if self.decode == "loop" and not self._loop_ok:
            reason = _loop_unsupported(self.model)
            if reason:
                self._fall_back_to_generate(reason)
        if self.decode == "generate":
            if stop:
                raise RuntimeError("stop sequences need rollout.hf.decode loop")
            return self._generate_chunk(prompt_ids, n, max_new_tokens, temperature, top_p, top_k, seed)
        if uniforms is None and temperature != 0:  # a direct call without them: one stream from the seed
            uniforms = torch.rand((len(prompt_ids) * n, max_new_tokens), dtype=torch.float64,
                                  generator=torch.Generator().manual_seed(seed))
        if self._loop_ok:
            return self._loop_chunk(prompt_ids, n, max_new_tokens, temperature, top_p, top_k, uniforms, stop)
        try:
            out = self._loop_chunk(prompt_ids, n, max_new_tokens, temperature, top_p, top_k, uniforms, stop)
        except torch.OutOfMemoryError:
            raise
        except Exception as err:  # noqa: BLE001 - a forward that rejects the cache / kwargs: use generate instead
            self._fall_back_to_generate(f"the model's forward failed in the decode loop: {type(err).__name__}: "
                                        f"{str(err)[:300]}")
            return self._generate_chunk(prompt_ids, n, max_new_tokens, temperature, top_p, top_k, seed)
        self._loop_ok = True
        return out

    def _fall_back_to_generate(self, reason: str) -> None:
        logger.warning("rollout.hf.decode: loop -> generate (%s)", reason)
        self.decode, self.compile, self.fallback_reason = "generate", False, reason

    def sleep(self) -> None:
        """Nothing to free: generation runs on the policy itself."""

    def sync_weights(self, model) -> dict[str, float]:
        """Nothing to push: the engine *is* the policy (``model`` must be the model it was built on)."""
        if model is not self.model:
            raise ValueError("the HF engine samples from the model it was built on; build a new engine for another")
        return {}

    def close(self) -> None:
        """Nothing to release."""

    def _generate_chunk(self, prompt_ids, n, max_new_tokens, temperature, top_p, top_k,
                        seed=None, vision=None) -> list[list[Completion]]:
        """model.generate on one chunk; with ``seed``, under a forked global RNG seeded with it (the caller's RNG
        state is left as it was). ``vision``: one PromptInputs per prompt (their pixel inputs)."""
        pad = self.tokenizer.pad_token_id
        width = max(len(p) for p in prompt_ids)
        input_ids = torch.full((len(prompt_ids), width), pad, dtype=torch.long)
        attention = torch.zeros((len(prompt_ids), width), dtype=torch.long)
        for i, ids in enumerate(prompt_ids):  # left padding
            input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention[i, width - len(ids) :] = 1
        greedy = temperature == 0
        copies, n = (n, 1) if greedy else (1, n)  # greedy: one decode per prompt, repeated n times
        # A fresh GenerationConfig: settings shipped in the model's generation_config.json (repetition_penalty,
        # min_p, no_repeat_ngram_size ...) would sample from a distribution other than the pi/T the loss assumes.
        # Temperature / top-k / top-p are *not* set in it: generate() appends the warpers it builds from them after
        # any custom processors, and the log-prob capture has to see the final distribution. We pass them ourselves,
        # in generate()'s own order (temperature, top-k, top-p), with the capture last.
        config = GenerationConfig(
            do_sample=not greedy,
            # neutral values (generate() builds no warper for them) rather than None, which some transformers
            # versions fill from their own defaults (top_k=50 in 4.x)
            temperature=None if greedy else 1.0,
            top_p=None if greedy else 1.0,
            top_k=None if greedy else 0,
            num_return_sequences=n,
            max_new_tokens=max_new_tokens,
            pad_token_id=pad,
            eos_token_id=self.eos_ids,
            return_dict_in_generate=True,
        )
        capture = _SampledLogprobs()
        processors = LogitsProcessorList(self._suppress() + ([] if greedy else _warpers(temperature, top_k, top_p)))
        processors.append(capture)
        # generate() fills every unset field from model.generation_config: lend it a neutral one meanwhile.
        owner = _owner(self.model)  # peft
        shipped, owner.generation_config = owner.generation_config, GenerationConfig()
        extra = {}
        if vision is not None:
            from rlvr.vision.inputs import forward_inputs

            extra = forward_inputs(vision, width, 0, self.device)
        try:
            with _seeded_rng(self.device, None if greedy else seed):
                out = self.model.generate(
                    input_ids=input_ids.to(self.device),
                    attention_mask=attention.to(self.device),
                    generation_config=config,
                    logits_processor=processors,
                    **extra,
                )
        finally:
            owner.generation_config = shipped
        generated = out.sequences[:, width:].cpu()  # (chunk*n, T)
        scores = capture.finish(out.sequences[:, width:]).float().cpu()  # (chunk*n, T)
        return self._completions(generated, scores, prompt_ids, n, copies)

    # ------------------------------------------------------------------------------------------------------
    # decode: loop

    def _loop_chunk(self, prompt_ids, n, max_new_tokens, temperature, top_p, top_k,
                    uniforms=None, stop=None) -> list[list[Completion]]:
        """Prefill the P prompts once, repeat the cache for their n rows, then decode one token per step.

        ``uniforms``: (P * n, max_new_tokens) draws in [0, 1) (sampling only): output row r at step t samples by
        inverse CDF with uniforms[r, t]. ``stop``: token-id sequences that end a row like EOS (see continue_ids)."""
        pad, dev = self.tokenizer.pad_token_id, self.device
        input_ids, attention = _left_pad(prompt_ids, pad)
        width = input_ids.shape[1]
        greedy = temperature == 0
        copies, n = (n, 1) if greedy else (1, n)  # greedy: one decode per prompt, repeated n times
        rows_total = len(prompt_ids) * n
        static = self.cache == "static"
        if static:  # the cache never holds the last sampled token: width + max_new_tokens - 1 positions suffice
            cache_len = -(-(width + max_new_tokens) // CACHE_LEN_BUCKET) * CACHE_LEN_BUCKET
        else:
            cache_len = width + max_new_tokens
        cache = self._new_cache(static, cache_len)
        mask = torch.zeros((len(prompt_ids), cache_len), dtype=torch.long)
        mask[:, :width] = attention
        mask = mask.to(dev)
        positions = (attention.cumsum(-1) - 1).masked_fill(attention == 0, 0)  # generate()'s position ids
        logits = self._forward(input_ids.to(dev), positions.to(dev), mask if static else mask[:, :width], cache)
        next_pos = positions[:, -1].to(dev) + 1  # the position of each row's next token
        if n > 1:  # prompt i -> rows i*n .. i*n+n-1, generate()'s num_return_sequences order
            expand = torch.arange(len(prompt_ids), device=dev).repeat_interleave(n)
            _select_rows(cache, expand)
            logits, mask, next_pos = logits[expand], mask[expand], next_pos[expand]

        warpers = self._suppress() + ([] if greedy else _warpers(temperature, top_k, top_p))
        eos = torch.tensor(self.eos_ids, device=dev)
        tokens = torch.full((rows_total, max_new_tokens), pad, dtype=torch.long, device=dev)
        logprobs = torch.zeros((rows_total, max_new_tokens), dtype=torch.float32, device=dev)
        rows = torch.arange(rows_total, device=dev)  # the output row of each batch slot
        live = torch.ones(rows_total, dtype=torch.bool, device=dev)  # slots still decoding
        floor = MIN_COMPILED_ROWS if self.compile else 1
        if not greedy:  # one (rows, steps) matrix per chunk, on the device; slot s at step t reads [rows[s], t]
            if uniforms is None or tuple(uniforms.shape) != (rows_total, max_new_tokens):
                raise ValueError(f"decode loop: uniforms of shape {None if uniforms is None else tuple(uniforms.shape)}"
                                 f", expected {(rows_total, max_new_tokens)}")
            uniforms = uniforms.to(dev, _cdf_dtype(dev))
        stop_seqs = [torch.tensor(seq, device=dev) for seq in stop or [] if seq]
        token = None
        steps = max_new_tokens  # tokens decoded per row, when interrupted
        for t in range(max_new_tokens):
            if t > 0 and self.interrupt is not None and self.interrupt.is_set():
                steps = t  # at a token boundary: rows still live end "interrupted" with t tokens
                break
            if t > 0:
                if self.compact:
                    keep = _compacted_size(int(live.sum()), live.numel(), floor)
                    if keep < live.numel():
                        order = torch.argsort((~live).to(torch.int8), stable=True)[:keep]  # live slots first
                        _select_rows(cache, order)
                        mask, next_pos, token, rows, live = (x[order] for x in (mask, next_pos, token, rows, live))
                mask[:, width + t - 1] = 1  # the token fed now
                step_mask = mask if static else mask[:, : width + t]
                logits = self._step(token[:, None], next_pos[:, None], step_mask, cache)
                next_pos = next_pos + 1
            scores = logits.float()
            for warper in warpers:
                scores = warper(None, scores)
            if greedy:
                token = scores.argmax(-1)
            else:  # the output row's own uniform at this step, whatever the batch holds: compaction-independent
                token = _inverse_cdf_sample(scores, uniforms[rows, t])
            logp = torch.log_softmax(scores, dim=-1).gather(1, token[:, None]).squeeze(1)
            tokens[rows[live], t] = token[live]
            logprobs[rows[live], t] = logp[live]
            live = live & ~torch.isin(token, eos)
            for seq in stop_seqs:  # (k,): a row whose last k tokens are seq stops
                if t + 1 >= len(seq):
                    live = live & ~(tokens[rows, t + 1 - len(seq) : t + 1] == seq).all(-1)
            if not bool(live.any()):
                break
        interrupted = rows[live].tolist() if steps < max_new_tokens else []
        return self._completions(tokens.cpu(), logprobs.cpu(), prompt_ids, n, copies, interrupted, steps, stop)

    def _new_cache(self, static: bool, cache_len: int):
        """The loop's KV cache for one chunk: a StaticCache of ``cache_len`` positions, or a DynamicCache (RAST's
        engine returns one cache per model, rlvr.rollout.rast)."""
        from transformers import DynamicCache, StaticCache

        config = _owner(self.model).config
        return StaticCache(config=config, max_cache_len=cache_len) if static else DynamicCache(config=config)

    def _forward(self, input_ids, position_ids, attention_mask, cache) -> torch.Tensor:
        """(rows, q) tokens -> (rows, V) float32 logits of the last position; ``cache`` is updated in place."""
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=cache, use_cache=True, **self._forward_kwargs)
        return out.logits[:, -1, :].to(dtype=torch.float32)

    def _step(self, input_ids, position_ids, attention_mask, cache) -> torch.Tensor:
        """The one-token forward: compiled (``compile``) or eager. A compile failure falls back to eager, once."""
        if not self.compile:
            return self._forward(input_ids, position_ids, attention_mask, cache)
        shape = (input_ids.shape[0], attention_mask.shape[1])
        first = shape not in self._compiled_shapes
        saved = [layer.cumulative_length.clone() for layer in cache.layers] if first else None
        start = time.perf_counter()
        try:
            if self._compiled is None:
                self._compiled = torch.compile(self._forward, dynamic=False)
            with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
                logits = self._compiled(input_ids, position_ids, attention_mask, cache)
        except torch.OutOfMemoryError:
            raise
        except Exception as err:  # noqa: BLE001 - no C compiler, an op dynamo/inductor cannot handle, a wrapper ...
            if not first:
                raise
            for layer, length in zip(cache.layers, saved):  # a partly run graph may have advanced the cache
                layer.cumulative_length.copy_(length)
            reason = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
            logger.warning("rollout.hf.compile: torch.compile of the decode step failed, decoding eagerly (%s)",
                           reason)
            self.compile, self._compiled, self.fallback_reason = False, None, f"compile failed: {reason}"
            return self._forward(input_ids, position_ids, attention_mask, cache)
        if first:
            self._compiled_shapes.add(shape)
            elapsed = time.perf_counter() - start
            self.compile_seconds += elapsed
            self._pending_compile += elapsed
        return logits

    def _completions(self, generated, scores, prompt_ids, n, copies, interrupted=(), steps=0,
                     stop=None) -> list[list[Completion]]:
        """(rows, T) token ids (pad after EOS) and their log-probs -> P lists of completions. ``interrupted``:
        rows stopped by ``self.interrupt`` after ``steps`` tokens (finish_reason "interrupted"); ``stop``: token-id
        sequences that ended rows (finish_reason "stop")."""
        stop = [list(seq) for seq in stop or [] if seq]
        completions: list[list[Completion]] = []
        interrupted = set(interrupted)
        for row in range(generated.shape[0]):
            tokens = generated[row].tolist()
            finish = "length"
            if row in interrupted:
                tokens, finish = tokens[:steps], "interrupted"
            else:
                for t, tok in enumerate(tokens):
                    if tok in self.eos_ids:
                        tokens, finish = tokens[: t + 1], "eos"
                        break
                    if stop and any(t + 1 >= len(seq) and tokens[t + 1 - len(seq) : t + 1] == seq for seq in stop):
                        tokens, finish = tokens[: t + 1], "stop"
                        break
            logprobs = scores[row, : len(tokens)].tolist()
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            item = Completion(text, tokens, logprobs, finish, prompt_ids=list(prompt_ids[row // n]))
            if row % n == 0:
                completions.append([])
            completions[-1].extend([item] * copies)
        return completions


def _left_pad(prompt_ids: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompt_ids)
    input_ids = torch.full((len(prompt_ids), width), pad, dtype=torch.long)
    attention = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for i, ids in enumerate(prompt_ids):
        input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention[i, width - len(ids) :] = 1
    return input_ids, attention


@contextlib.contextmanager
def _seeded_rng(device: torch.device, seed: int | None):
    """Run under torch's global RNG (CPU and, on an accelerator, ``device``'s type) seeded with ``seed``, the
    caller's state restored afterwards; ``seed`` None: the RNG as it is (nothing forked)."""
    if seed is None:
        yield
        return
    accelerator = None if device.type == "cpu" else getattr(torch, device.type)
    devices = [] if accelerator is None else list(range(accelerator.device_count()))
    with torch.random.fork_rng(devices=devices, device_type=device.type if accelerator else "cuda"):
        torch.random.default_generator.manual_seed(seed)
        if accelerator is not None:
            getattr(accelerator, "manual_seed_all", accelerator.manual_seed)(seed)
        yield


def _owner(model):
    """The transformers model under a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _accepts(model, name: str, via_kwargs: bool = False) -> bool:
    """Whether the (base) model's forward names ``name`` (or, with ``via_kwargs``, takes **kwargs)."""
    try:
        params = inspect.signature(_owner(model).forward).parameters
    except (TypeError, ValueError):
        return False
    return name in params or (via_kwargs and any(p.kind is p.VAR_KEYWORD for p in params.values()))


def _loop_unsupported(model) -> str:
    """Why the decode loop cannot drive this model (empty when it can)."""
    owner = _owner(model)
    if getattr(owner.config, "is_encoder_decoder", False):
        return "an encoder-decoder model"
    if not _accepts(model, "past_key_values", via_kwargs=True):
        return f"{type(owner).__name__}.forward takes no past_key_values (no static / dynamic cache)"
    return ""


def _select_rows(cache, index: torch.Tensor) -> None:
    """Keep (or repeat) the batch rows ``index`` of every cache layer; static layers stay static."""
    for layer in cache.layers:
        if getattr(layer, "keys", None) is None or not getattr(layer, "is_initialized", True):
            continue
        layer.keys = layer.keys.index_select(0, index)
        layer.values = layer.values.index_select(0, index)
        if hasattr(layer, "batch_size"):
            layer.batch_size = index.numel()


def _compacted_size(live: int, capacity: int, floor: int) -> int:
    """Halve the batch while the live rows fit in half of it (not below ``floor``): B, ceil(B/2), ..."""
    while capacity > 1 and live <= (half := (capacity + 1) // 2) and half >= floor:
        capacity = half
    return capacity


def _cdf_dtype(device: torch.device) -> torch.dtype:
    """float64 for the cumulative sums and uniforms, except on MPS (no float64 there)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _inverse_cdf_sample(scores: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """One token per row from softmax(scores), the row's ``uniform`` in [0, 1) picking it by inverse CDF.

    The same categorical distribution as ``torch.multinomial(softmax(scores), 1)`` (generate()'s draw); tokens with
    probability 0 (warped to -inf) are never drawn: the first index whose CDF exceeds u * total has p > 0.
    """
    probs = torch.softmax(scores, dim=-1)  # float32, as generate() computes it
    cdf = probs.to(_cdf_dtype(scores.device)).cumsum(dim=-1)
    total = cdf[:, -1:]
    target = torch.minimum(uniform[:, None] * total, torch.nextafter(total, torch.zeros_like(total)))
    token = torch.searchsorted(cdf, target, right=True).squeeze(1)
    if bool((token >= scores.shape[-1]).any()):
        raise RuntimeError("probability tensor contains either inf, nan or element < 0 (decode loop sampling)")
    return token


class _Suppress(LogitsProcessor):
    """Scores of ``ids`` set to -inf: a vision-language policy never samples an image placeholder token (one in a
    response would not match the pixel inputs in the update's forward). Like top-k / top-p, it is part of the
    sampling distribution: the sampling log-probs are the renormalised ones, log p - log(1 - p(ids)), while the
    update scores the model's full softmax (a trained VLM puts ~0 mass there; docs/vision.md)."""

    def __init__(self, ids: list[int]):
        self.ids = torch.tensor(sorted(set(ids)), dtype=torch.long)

    def __call__(self, input_ids, scores: torch.FloatTensor) -> torch.FloatTensor:
        return scores.index_fill(-1, self.ids.to(scores.device), float("-inf"))


class _SampledLogprobs(LogitsProcessor):
    """The last logits processor: records log_softmax(final scores)[sampled token] for every decoding step.

    At step t it receives the scores the token of step t will be drawn from, and ``input_ids`` whose last column is
    the token drawn at step t-1: it gathers that token's log-prob from the buffer kept at step t-1, then keeps
    log_softmax of this step's scores (one (B, V) tensor). `finish` gathers the last step's token. The values equal
    `compute_transition_scores(..., normalize_logits=True)` on ``output_scores`` (same log_softmax, same gather).
    Scores are returned unchanged.
    """

    def __init__(self):
        self.steps: list[torch.Tensor] = []  # (B,) per decoding step, for the steps whose token is known
        self.last: torch.Tensor | None = None  # (B, V) log_softmax of the latest step's scores

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.last is not None:
            self.steps.append(self.last.gather(1, input_ids[:, -1:]).squeeze(1))
            self.last = None  # free before allocating this step's buffer
        self.last = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, generated: torch.Tensor) -> torch.Tensor:
        """``generated``: (B, T) the new tokens -> (B, T) their log-probs."""
        steps = self.steps[: generated.shape[1]]  # generate() may undo trailing steps (deferred stop checks)
        if len(steps) < generated.shape[1] and self.last is not None:
            token = generated[:, len(steps) : len(steps) + 1].to(self.last.device)
            steps.append(self.last.gather(1, token).squeeze(1))
        self.last = None
        if not steps:
            return torch.zeros(generated.shape, dtype=torch.float32)
        return torch.stack(steps, dim=1)


def _warpers(temperature: float, top_k: int, top_p: float) -> list[LogitsProcessor]:
    """The sampling warpers generate() would build for these settings, in its order (beam-free: keep >= 1 token)."""
    warpers: list[LogitsProcessor] = []
    if temperature is not None and temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(temperature))
    if top_k is not None and top_k != 0:
        warpers.append(TopKLogitsWarper(top_k=top_k, min_tokens_to_keep=1))
    if top_p is not None and top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=top_p, min_tokens_to_keep=1))
    return warpers


def _eos_ids(model, tokenizer) -> list[int]:
    ids = set()
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (config_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    if not ids:
        raise ValueError("the tokenizer has no EOS token: completions could never finish; set tokenizer.eos_token")
    return sorted(ids)
