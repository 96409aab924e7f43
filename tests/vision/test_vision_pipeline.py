"""Images from data to rollout to update on a tiny Qwen2.5-VL: the sampling log-probs equal the update's
recomputed ones (micro-batched or not), image tokens stay out of the loss, freeze_vision and LoRA."""

import base64
import json

import pytest
import torch

from rlvr.config import ConfigError, DataConfig, ModelConfig, load_config
from rlvr.data import load_examples
from rlvr.data.sources import DataError
from rlvr.demo.vision import prompt_text
from rlvr.rollout.hf import HFRolloutEngine
from rlvr.trainer.batch import build_batch
from rlvr.trainer.policy import load_policy, load_tokenizer
from rlvr.trainer.update import _logprobs_of
from rlvr.types import RewardResult
from rlvr.vision.processor import VisionProcessor


@pytest.fixture(scope="module")
def policy(tiny_vlm):
    cfg = ModelConfig(path=tiny_vlm["model"])
    tok = load_tokenizer(cfg)
    model = load_policy(cfg, torch.device("cpu"), torch.float32)
    engine = HFRolloutEngine(model, tok, add_special_tokens=False)
    engine.processor = VisionProcessor.load(tiny_vlm["model"], tok)
    engine.suppress_ids = engine.processor.placeholder_ids()
    return model, tok, engine


def _prompts(tok, rows):  # three lengths: left padding in a batched call
    return [prompt_text(tok, r["question"] + " " * (3 * i)) for i, r in enumerate(rows)]


def _sample(tiny_vlm, engine, tok, n=3, greedy=False):
    rows = tiny_vlm["rows"][:3]
    prompts = _prompts(tok, rows)
    images = [[str(tiny_vlm["data"] / r["image"])] for r in rows]
    return engine.generate(prompts, n, max_new_tokens=8, temperature=0.0 if greedy else 1.0, seeds=[1, 2, 3],
                           images=images)


def test_sampling_logprobs_match_the_update_forward(tiny_vlm, policy):
    model, tok, engine = policy
    groups = _sample(tiny_vlm, engine, tok)
    image_id = tok.convert_tokens_to_ids("<|image_pad|>")
    first = groups[0][0]
    assert first.vision is not None and first.prompt_ids.count(image_id) == 9  # 6x6 patches merged 2x2
    assert first.vision.images and first.vision.images[0].endswith(".png")
    flat = [c for g in groups for c in g]
    batch = build_batch([None] * 3, groups, [RewardResult(0.0)] * len(flat), tok.pad_token_id)
    assert batch.vision is not None and len(batch.vision) == 9
    # image tokens are prompt tokens, and never sampled: never in the response, so never in the loss mask
    placeholders = torch.tensor(engine.suppress_ids)
    assert image_id in engine.suppress_ids
    assert not torch.isin(batch.response_ids[batch.response_mask], placeholders).any()
    assert (batch.prompt_ids == image_id).sum() == 9 * 9
    every = torch.arange(len(batch))
    whole, _ = _logprobs_of(model, batch, [every], "cpu", 1.0, 1024, False)
    micro, _ = _logprobs_of(model, batch, [every[i : i + 2] for i in range(0, 9, 2)], "cpu", 1.0, 1024, False)
    mask = batch.response_mask
    assert torch.allclose(micro[mask], whole[mask], atol=1e-5)
    # the sampler's distribution is the model's with the placeholders removed: log p - log(1 - p(placeholders)),
    # p from the full logits of the same forward (ids + pixel inputs, as the update builds it)
    ids, attn, t = batch.model_inputs(every, "cpu")
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attn, **batch.vision_inputs(every, "cpu")).logits
    probs = torch.softmax(logits[:, -t - 1 : -1].float(), -1)
    p_hidden = probs[..., placeholders].sum(-1)
    expected = whole[:, :t] - torch.log1p(-p_hidden)
    assert torch.allclose(expected[mask[:, :t]], batch.rollout_logp[:, :t][mask[:, :t]], atol=1e-4)
    # without the pixels the same ids score differently: the images really reach the forward
    text_only = build_batch([None] * 3, groups, [RewardResult(0.0)] * len(flat), tok.pad_token_id)
    text_only.vision = None
    blind, _ = _logprobs_of(model, text_only, [every], "cpu", 1.0, 1024, False)
    assert not torch.allclose(blind[mask], whole[mask], atol=1e-3)


def test_a_prompts_samples_depend_on_its_seed_only(tiny_vlm, policy):
    model, tok, engine = policy
    rows = tiny_vlm["rows"][:3]
    prompts = _prompts(tok, rows)
    images = [[str(tiny_vlm["data"] / r["image"])] for r in rows]
    both = engine.generate(prompts, 2, max_new_tokens=8, seeds=[5, 6, 7], images=images)
    alone = engine.generate(prompts[1:2], 2, max_new_tokens=8, seeds=[6], images=images[1:2])
    assert [c.token_ids for c in both[1]] == [c.token_ids for c in alone[0]]
    greedy = _sample(tiny_vlm, engine, tok, n=2, greedy=True)  # batched, left-padded: as each prompt alone
    assert greedy[0][0].token_ids == greedy[0][1].token_ids
    for p in range(3):
        one = engine.generate(prompts[p : p + 1], 1, max_new_tokens=8, temperature=0.0, images=images[p : p + 1])
        assert one[0][0].token_ids == greedy[p][0].token_ids and greedy[p][0].vision is not None


def test_prompts_with_images_need_a_vision_processor(tiny_vlm, policy):
    model, tok, _ = policy
    engine = HFRolloutEngine(model, tok, add_special_tokens=False)
    with pytest.raises(ValueError, match="vision-language policy"):
        engine.generate(["x <|vision_start|><|image_pad|><|vision_end|>"], 1, max_new_tokens=2,
                        images=[[str(tiny_vlm["data"] / tiny_vlm["rows"][0]["image"])]])


def test_freeze_vision_and_lora_on_the_language_model(tiny_vlm):
    frozen = load_policy(ModelConfig(path=tiny_vlm["model"], freeze_vision=True), torch.device("cpu"), torch.float32)
    grads = {n: p.requires_grad for n, p in frozen.named_parameters()}
    assert not any(g for n, g in grads.items() if ".visual." in f".{n}")
    assert all(g for n, g in grads.items() if "language_model" in n)
    pytest.importorskip("peft", reason="LoRA needs peft")
    cfg = ModelConfig(path=tiny_vlm["model"])
    cfg.lora.enabled = True
    lora = load_policy(cfg, torch.device("cpu"), torch.float32)
    adapted = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert adapted and all("lora_" in n for n in adapted)
    assert not any("visual" in n for n in adapted) and any("language_model" in n for n in adapted)


def test_freeze_vision_on_a_text_model_is_an_error(tmp_path):
    from rlvr.demo.tiny import build_char_tokenizer, build_tiny_llama, save_tiny

    tok = build_char_tokenizer()
    save_tiny(build_tiny_llama(tok, hidden=32, layers=1), tok, tmp_path / "m")
    with pytest.raises(ValueError, match="not a vision-language model"):
        load_policy(ModelConfig(path=str(tmp_path / "m"), freeze_vision=True), torch.device("cpu"), torch.float32)


def test_image_field_paths_base64_and_bad_images(tiny_vlm, tmp_path):
    folder = tiny_vlm["data"]
    png = (folder / tiny_vlm["rows"][0]["image"]).read_bytes()
    rows = [
        {"question": "q1", "answer": "circle", "image": tiny_vlm["rows"][0]["image"]},  # relative to the file
        {"question": "q2", "answer": "square", "image": base64.b64encode(png).decode()},
        {"question": "q3", "answer": "cross", "image": [tiny_vlm["rows"][1]["image"], tiny_vlm["rows"][2]["image"]]},
        {"question": "q4", "answer": "circle", "image": "images/missing.png"},
        {"question": "q5", "answer": "circle"},
    ]
    path = folder / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "broken.png").write_bytes(b"not a png at all")
    with open(path, "a") as f:
        f.write(json.dumps({"question": "q6", "answer": "x", "image": "broken.png"}) + "\n")
    report = load_examples(DataConfig(source=str(path), image_field="image"))
    assert [len(ex.images) for ex in report.examples] == [1, 1, 2]
    assert isinstance(report.examples[0].images[0], str) and report.examples[1].images[0] == png
    assert "image" not in report.examples[0].metadata  # no pixels in metadata (nor in completions.jsonl)
    reasons = {b.line: b.reason for b in report.bad_rows}
    assert "no image file" in reasons[4] and "no image (field 'image'" in reasons[5]
    assert "unreadable image" in reasons[6]
    with pytest.raises(DataError, match="line 4: image: no image file"):
        load_examples(DataConfig(source=str(path), image_field="image", on_bad_row="fail"))


def test_image_field_config_checks(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {path: m}\ndata: {source: d.jsonl, image_field: image}\n")
    with pytest.raises(ConfigError, match="chat_template: true"):
        load_config(str(cfg))
    with pytest.raises(ConfigError, match="rollout.engine: vllm"):
        load_config(str(cfg), ["prompt.chat_template=true", "rollout.engine=vllm"])
    assert load_config(str(cfg), ["prompt.chat_template=true", "model.freeze_vision=true"]).model.freeze_vision
