"""A tiny Qwen2.5-VL folder and a few PIL-drawn pictures, built once per session (~1 s)."""

import pytest


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory):
    pytest.importorskip("PIL", reason="vision tests need Pillow")
    from rlvr.demo.vision import build_tiny_vlm, build_vision_tokenizer, generate, save_vlm

    root = tmp_path_factory.mktemp("vision")
    tok = build_vision_tokenizer()
    save_vlm(build_tiny_vlm(tok, seed=0), tok, root / "model")
    rows = generate("train", 6, 0, root / "data")
    return {"model": str(root / "model"), "data": root / "data", "rows": rows}
