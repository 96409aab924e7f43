"""A tiny character-level Llama: the model of `rlvr demo` and of the tests.

    tok = build_char_tokenizer(DEFAULT_ALPHABET)          # one token per character, + 4 special tokens
    model = build_tiny_llama(tok, hidden=128, layers=4)   # ~0.8M parameters, random init from `seed`
    save_tiny(model, tok, "/tmp/tiny")                    # AutoModelForCausalLM / AutoTokenizer load it offline

Why Llama and not Qwen2: with transformers 5.x, `AutoTokenizer` on a qwen2 folder forces a byte-level BPE
tokenizer class and silently drops a character-level pre-tokenizer (spaces vanish). The Llama path keeps the
`tokenizer.json` exactly as written (checked by tests/demo/test_demo_tiny.py).
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]  # ids 0, 1, 2, 3

# printable ASCII (space .. ~) plus newline: enough for arithmetic, <think>/<answer> tags and chat roles
DEFAULT_ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))

# A plain chat template over characters the alphabet has: "<|user|>...\n<|assistant|>..." style, without
# any token outside the alphabet. The assistant turn ends with the EOS token.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n"
    "{% elif m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% else %}Assistant: {{ m['content'] }}{{ eos_token }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant: {% endif %}"
)


def build_char_tokenizer(alphabet: str = DEFAULT_ALPHABET) -> PreTrainedTokenizerFast:
    """A character-level tokenizer: every character of ``alphabet`` is one token.

    Vocabulary: ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, ``<unk>`` 3, then the unique characters of ``alphabet``
    in order of first appearance. Characters outside the alphabet map to ``<unk>``. Encoding adds no BOS/EOS
    (prompts and completions concatenate exactly); decoding with ``skip_special_tokens=True`` restores the
    text exactly, spaces and newlines included.
    """
    chars = list(dict.fromkeys(alphabet))
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in chars:
        if ch not in vocab:
            vocab[ch] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        padding_side="left",  # decoder-only generation pads on the left
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_llama(
    tokenizer: PreTrainedTokenizerFast,
    hidden: int = 128,
    layers: int = 4,
    heads: int = 4,
    seed: int = 0,
    *,
    intermediate: int = 0,
    max_positions: int = 512,
) -> LlamaForCausalLM:
    """A small `LlamaForCausalLM` sized for ``tokenizer``, initialised deterministically from ``seed``.

    intermediate (MLP width) defaults to 4 * hidden; input/output embeddings are tied. With the defaults
    (V = 100, hidden 128, 4 layers) it has 1.06M parameters:
    4 layers x (4 x 128^2 attention + 3 x 128 x 512 MLP + 2 x 128 norms) + 100 x 128 embedding + 128 final norm.
    """
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate or 4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def save_tiny(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, path: str | Path) -> Path:
    """Write ``model`` (safetensors) and ``tokenizer`` to ``path`` so the Auto classes load them offline."""
    path = Path(path).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def count_parameters(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())
