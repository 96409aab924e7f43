"""Chunked token log-probs / entropies must equal the plain full-logits computation, values and gradients."""

import math

import pytest
import torch

from rlvr.algorithms import entropy_from_logits, token_logprobs, token_logprobs_reference


def test_entropy_from_logits_by_hand():
    # uniform over 4: H = log 4; one-hot-ish (logit 100 vs 0): H ~ 0
    assert math.isclose(entropy_from_logits(torch.zeros(4)).item(), math.log(4), rel_tol=1e-6)
    assert entropy_from_logits(torch.tensor([100.0, 0.0, 0.0])).item() < 1e-6


def test_token_logprobs_by_hand():
    # H = 1, weight [[1], [0]], hidden 2: logits [2, 0]; log softmax = [2 - log(e^2 + 1), -log(e^2 + 1)]
    hidden = torch.tensor([[[2.0], [2.0]]])
    weight = torch.tensor([[1.0], [0.0]])
    labels = torch.tensor([[0, 1]])
    logp, ent = token_logprobs(hidden, weight, labels, chunk_size=1)
    lse = math.log(math.exp(2) + 1)
    assert torch.allclose(logp, torch.tensor([[2 - lse, -lse]]))
    # entropy: p = [e^2, 1]/(e^2+1); H = lse - sum p z = lse - 2 e^2/(e^2 + 1)
    h = lse - 2 * math.exp(2) / (math.exp(2) + 1)
    assert torch.allclose(ent, torch.tensor([[h, h]]))
    # temperature 2 halves the logits: [1, 0]
    logp, _ = token_logprobs(hidden, weight, labels, temperature=2.0)
    assert torch.allclose(logp, torch.tensor([[1 - math.log(math.e + 1), -math.log(math.e + 1)]]))


@pytest.mark.parametrize("chunk_size", [1, 7, 24, 1000])
def test_chunked_matches_plain_values_and_gradients(chunk_size):
    g = torch.Generator().manual_seed(chunk_size)
    B, L, H, V = 3, 8, 16, 50
    hidden = torch.randn(B, L, H, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(V, H, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, V, (B, L), generator=g)
    labels[0, -2:] = -100  # padding labels give logp 0
    upstream = torch.randn(B, L, generator=g, dtype=torch.float64)

    logp, ent = token_logprobs(hidden, weight, labels, temperature=0.7, chunk_size=chunk_size, entropy_grad=True)
    ((logp * upstream).sum() + ent.sum()).backward()
    gh, gw = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None

    ref_logp, ref_ent = token_logprobs_reference(hidden, weight, labels, temperature=0.7)
    ((ref_logp * upstream).sum() + ref_ent.sum()).backward()
    # float64 inputs are computed in float64 by both paths
    assert torch.allclose(logp, ref_logp, atol=1e-10) and torch.allclose(ent, ref_ent, atol=1e-10)
    assert (logp[0, -2:] == 0).all()
    assert torch.allclose(gh, hidden.grad, atol=1e-10) and torch.allclose(gw, weight.grad, atol=1e-10)


@pytest.mark.parametrize("entropy_grad", [False, True])
def test_gradcheck_chunked_logprobs(entropy_grad):
    # finite differences in float64 through the hand-written backward (chunks of 4 over 2 x 5 tokens)
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(2, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 7, (2, 5), generator=g)
    labels[1, 4] = -100

    def f(h, w):
        logp, ent = token_logprobs(h, w, labels, temperature=1.3, chunk_size=4, entropy_grad=entropy_grad)
        return (logp, ent) if entropy_grad else logp

    assert torch.autograd.gradcheck(f, (hidden, weight))


def test_entropy_is_detached_unless_asked_and_no_grad_path():
    hidden = torch.randn(2, 3, 4, requires_grad=True)
    weight = torch.randn(9, 4)
    labels = torch.randint(0, 9, (2, 3))
    logp, ent = token_logprobs(hidden, weight, labels, chunk_size=2)
    assert logp.requires_grad and not ent.requires_grad
    logp2, none = token_logprobs(hidden, weight, labels, chunk_size=2, with_entropy=False)
    assert none is None and torch.equal(logp, logp2)
    with torch.no_grad():
        logp3, _ = token_logprobs(hidden, weight, labels, chunk_size=5)
    assert not logp3.requires_grad and torch.allclose(logp3, logp)


def test_bfloat16_inputs_are_computed_in_float32():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 5, 8, generator=g).bfloat16()
    weight = torch.randn(30, 8, generator=g).bfloat16()
    labels = torch.randint(0, 30, (2, 5), generator=g)
    logp, ent = token_logprobs(hidden, weight, labels, chunk_size=4)
    ref_logp, ref_ent = token_logprobs_reference(hidden.float(), weight.float(), labels)
    assert logp.dtype == torch.float32 and torch.allclose(logp, ref_logp, atol=1e-5)
    assert torch.allclose(ent, ref_ent, atol=1e-5)


def test_matches_a_tiny_llama_logits():
    # the contract: feed the last hidden state (after the final norm) of the positions predicting the labels
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32)
    model = LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 40, (2, 9))
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
    prompt_len = 4
    labels = ids[:, prompt_len:]  # the response tokens
    hidden = out.hidden_states[-1][:, prompt_len - 1 : -1]  # positions predicting them
    logp, ent = token_logprobs(hidden, model.lm_head.weight, labels, temperature=0.8, chunk_size=3)
    logits = out.logits[:, prompt_len - 1 : -1].float() / 0.8
    expected = torch.log_softmax(logits, -1).gather(-1, labels[..., None]).squeeze(-1)
    assert torch.allclose(logp, expected, atol=1e-5)
    assert torch.allclose(ent, entropy_from_logits(logits), atol=1e-5)
