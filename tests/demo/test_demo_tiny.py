"""The tiny char-level Llama: tokenizer round trip, save/load through the Auto classes, generate."""

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlvr.demo.tiny import DEFAULT_ALPHABET, build_char_tokenizer, build_tiny_llama, count_parameters, save_tiny

TEXT = "User: 12 + 7*3 =\n<think>7*3 = 21, 12 + 21 = 33</think><answer>33</answer>"


def test_char_tokenizer_one_token_per_character():
    tok = build_char_tokenizer("ab ")
    # by hand: <pad> 0, <bos> 1, <eos> 2, <unk> 3, then 'a' 4, 'b' 5, ' ' 6; 'z' is unknown -> 3
    assert tok("ab a").input_ids == [4, 5, 6, 4]
    assert tok("z").input_ids == [3]
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert len(tok) == 7


def test_round_trip_preserves_spaces_and_newlines(tmp_path):
    tok = build_char_tokenizer()
    model = build_tiny_llama(tok, hidden=32, layers=1, heads=2)
    save_tiny(model, tok, tmp_path / "m")
    tok2 = AutoTokenizer.from_pretrained(tmp_path / "m")
    ids = tok2(TEXT).input_ids
    assert len(ids) == len(TEXT)  # one id per character, no BOS/EOS added
    assert ids == tok(TEXT).input_ids
    assert tok2.decode(ids) == TEXT
    assert tok2.decode(ids + [tok2.eos_token_id], skip_special_tokens=True) == TEXT
    assert tok2.eos_token == "<eos>" and tok2.pad_token_id == 0
    chat = tok2.apply_chat_template([{"role": "user", "content": "1+2"}], tokenize=False, add_generation_prompt=True)
    assert chat == "User: 1+2\nAssistant: "


def test_model_size_and_reload_generate(tmp_path):
    tok = build_char_tokenizer()
    model = build_tiny_llama(tok)
    # by hand: 4 layers x (4*128^2 attn + 3*128*512 mlp + 2*128 norms) + 100*128 tied embedding + 128 final norm
    assert len(tok) == len(DEFAULT_ALPHABET) + 4 == 100
    assert count_parameters(model) == 4 * (4 * 128**2 + 3 * 128 * 512 + 256) + 100 * 128 + 128
    save_tiny(model, tok, tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file()
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    tok2 = AutoTokenizer.from_pretrained(tmp_path / "m")
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    batch = tok2(["1+2=", "12+34="], return_tensors="pt", padding=True)
    assert batch.input_ids[0, 0].item() == tok2.pad_token_id  # left padding
    out = model2.generate(**batch, max_new_tokens=5, do_sample=False)
    assert out.shape == (2, 6 + 5)
    # the same seed builds the same weights; a different seed different ones
    same = build_tiny_llama(tok, seed=0)
    other = build_tiny_llama(tok, seed=1)
    w = model.model.embed_tokens.weight
    assert torch.equal(same.model.embed_tokens.weight, w)
    assert not torch.equal(other.model.embed_tokens.weight, w)
