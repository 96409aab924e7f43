"""The default rollout engine: Hugging Face `generate` on the policy itself (no weight sync needed).

Prompts are left-padded and generated in chunks of ``batch_size`` completions. For every completion we keep the
response token ids (up to and including EOS), the log-probability of each sampled token under the *sampling*
distribution (after temperature / top-k / top-p), and why it stopped.

Those log-probs are captured during decoding by `_SampledLogprobs`, the last logits processor, which holds one
(B, V) buffer at a time: memory O(B x V) rather than the O(B x V x T) of ``output_scores`` +
`compute_transition_scores` (5 GB for 8 rows x a 152k vocabulary x 1024 steps), with the same values.
"""

from __future__ import annotations

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from rlvr.types import Completion


class HFRolloutEngine:
    """Sample completions with `model.generate`.

    model:      a causal LM (possibly a peft model); put in eval mode during generation, restored afterwards.
    tokenizer:  its tokenizer; a pad token is borrowed from EOS when missing.
    device:     where input tensors go.
    add_special_tokens: passed to the tokenizer for prompts (False when prompts come from a chat template
                that already carries the BOS text).
    """

    def __init__(self, model, tokenizer, device: torch.device | str = "cpu", add_special_tokens: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.add_special_tokens = add_special_tokens
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.eos_ids = _eos_ids(model, tokenizer)

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
    ) -> list[list[Completion]]:
        """P prompts -> P lists of n completions. ``batch_size`` caps completions per generate call (0 = all)."""
        encoded = [self.tokenizer(p, add_special_tokens=self.add_special_tokens)["input_ids"] for p in prompts]
        per_call = max(1, (batch_size or len(prompts) * n) // n)
        results: list[list[Completion]] = []
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(prompts), per_call):
                chunk = encoded[start : start + per_call]
                results.extend(self._generate_chunk(chunk, n, max_new_tokens, temperature, top_p, top_k))
        finally:
            self.model.train(was_training)
        return results

    def sleep(self) -> None:
        """Nothing to free: generation runs on the policy itself."""

    def sync_weights(self, model) -> dict[str, float]:
        """Nothing to push: the engine *is* the policy (``model`` must be the model it was built on)."""
        if model is not self.model:
            raise ValueError("the HF engine samples from the model it was built on; build a new engine for another")
        return {}

    def close(self) -> None:
        """Nothing to release."""

    def _generate_chunk(self, prompt_ids, n, max_new_tokens, temperature, top_p, top_k) -> list[list[Completion]]:
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
        processors = LogitsProcessorList([] if greedy else _warpers(temperature, top_k, top_p))
        processors.append(capture)
        # generate() fills every unset field from model.generation_config: lend it a neutral one meanwhile.
        owner = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model  # peft
        shipped, owner.generation_config = owner.generation_config, GenerationConfig()
        try:
            out = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                generation_config=config,
                logits_processor=processors,
            )
        finally:
            owner.generation_config = shipped
        generated = out.sequences[:, width:].cpu()  # (chunk*n, T)
        scores = capture.finish(out.sequences[:, width:]).float().cpu()  # (chunk*n, T)
        completions: list[list[Completion]] = []
        for row in range(generated.shape[0]):
            tokens = generated[row].tolist()
            finish = "length"
            for t, tok in enumerate(tokens):
                if tok in self.eos_ids:
                    tokens, finish = tokens[: t + 1], "eos"
                    break
            logprobs = scores[row, : len(tokens)].tolist()
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            item = Completion(text, tokens, logprobs, finish, prompt_ids=list(prompt_ids[row // n]))
            if row % n == 0:
                completions.append([])
            completions[-1].extend([item] * copies)
        return completions


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
