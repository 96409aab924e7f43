"""The vision demo's task: disjoint train / held-out pictures, answers that match the drawing, flawed labels."""

from PIL import Image

from rlvr.demo.vision import COLOURS, flawed, generate


def test_pictures_answers_and_flawed_demonstrations(tmp_path):
    train = generate("train", 12, 0, tmp_path)
    held = generate("heldout", 12, 0, tmp_path)
    assert not {r["image"] for r in train} & {r["image"] for r in held}
    for row in train:
        pixels = Image.open(tmp_path / row["image"]).convert("RGB").getdata()
        assert any(p == COLOURS[row["answer"]] for p in pixels)  # the answer is the colour drawn
        assert row["solution"] == f"<answer>{row['answer']}</answer>" and row["answer"] in row["classes"]
    always = flawed(train, 1.0, seed=0)
    assert all(r["solution"] != f"<answer>{r['answer']}</answer>" and r["answer"] == t["answer"]
               for r, t in zip(always, train))  # every label wrong; the truth kept for the reward
    assert flawed(train, 0.0, seed=0) == train
    count = generate("train", 3, 0, tmp_path / "count", task="count")
    assert all(r["answer"] in "12345" and "classes" not in r for r in count)
