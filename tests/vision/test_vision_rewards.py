"""Visual verifiers against hand-computed values: iou, detection, classification, gui_action,
think_answer_consistency, perception_judge (against a local scripted judge)."""

import pytest

from rlvr.rewards import VERIFIERS
from rlvr.rewards.vision import box_iou, match_boxes, parse_boxes
from tests.rewards.judge_servers import JudgeServer


def score(name, completion, reference, metadata=None, **params):
    return VERIFIERS.get(name)(completion, reference, metadata or {}, **params)


def test_box_forms_and_iou():
    assert parse_boxes("[10, 10, 50, 50]") == [[10, 10, 50, 50]]
    assert parse_boxes('{"bbox_2d": [1, 2, 3, 4], "label": "cat"}') == [[1, 2, 3, 4]]
    assert parse_boxes("from (1,2),(3,4) and (5, 6), (7, 8)") == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert parse_boxes("the box is [0.5, 1, 2, 3.5].") == [[0.5, 1, 2, 3.5]]
    assert parse_boxes("no box here") == []
    # [10,10,50,50] vs [30,10,70,50]: intersection 20x40 = 800, union 1600 + 1600 - 800 = 2400
    assert box_iou([10, 10, 50, 50], [30, 10, 70, 50]) == pytest.approx(1 / 3)
    assert box_iou([50, 50, 10, 10], [30, 10, 70, 50]) == pytest.approx(1 / 3)  # corners in any order
    assert box_iou([0, 0, 0, 5], [0, 0, 0, 5]) == 0.0


def test_iou_reward_continuous_and_threshold():
    r = score("iou", "<think>..</think><answer>[10, 10, 50, 50]</answer>", [30, 10, 70, 50])
    assert r.score == pytest.approx(1 / 3) and r.details["iou"] == pytest.approx(1 / 3)
    assert score("iou", "<answer>[10, 10, 50, 50]</answer>", [30, 10, 70, 50], threshold=0.5).score == 0.0
    assert score("iou", "<answer>(12,10),(50,50)</answer>", [10, 10, 50, 50], threshold=0.5).score == 1.0
    assert score("iou", "I cannot see it", [0, 0, 1, 1]).score == 0.0
    assert "reference" in score("iou", "[0,0,1,1]", "not a box").reason


def test_detection_greedy_matching_f1_and_mean_iou():
    gold = [[0, 0, 10, 10], [20, 20, 30, 30]]
    # pred 0 = gold 0 (IoU 1), pred 1 overlaps gold 1 by half (IoU 50/150 = 1/3), pred 2 matches nothing
    pred = "<answer>[[0,0,10,10], [25,20,35,30], [80,80,90,90]]</answer>"
    assert [(i, j) for i, j, _ in match_boxes(parse_boxes(pred), gold)] == [(0, 0), (1, 1)]
    r = score("detection", pred, gold)  # TP at 0.5: only the first; F1 = 2*1 / (3 + 2)
    assert r.score == pytest.approx(0.4) and r.details["tp"] == 1
    r = score("detection", pred, gold, score="mean_iou")  # (1 + 1/3) / max(3, 2)
    assert r.score == pytest.approx((1 + 1 / 3) / 3)
    # the reward-hacking caveat: spraying boxes lowers the score instead of raising it
    spray = "[" + ",".join(f"[{x},{x},{x + 10},{x + 10}]" for x in range(0, 100, 5)) + "]"
    assert score("detection", spray, gold).score < 0.2
    assert score("detection", "<answer>[]</answer>", []).score == 1.0


def test_classification_normalised_class_list_and_single():
    classes = ["cat", "dog", "golden retriever", "retriever"]
    assert score("classification", "<answer>A Golden Retriever.</answer>", "golden retriever").score == 1.0
    meta = {"classes": classes}
    assert score("classification", "<answer>It is a dog</answer>", "dog", meta).score == 1.0
    assert score("classification", "<answer>cat</answer>", "dog", meta).score == 0.0
    hedge = score("classification", "<answer>a cat or a dog</answer>", "dog", meta)
    assert hedge.score == 0.0 and "several" in hedge.reason
    assert score("classification", "<answer>a cat or a dog</answer>", "dog", meta, single=False).score == 1.0
    untagged = "<answe>dog r>r>"  # names one class, but not inside an <answer> span
    assert score("classification", untagged, "dog", meta).score == 1.0
    assert score("classification", untagged, "dog", meta, extract="answer_tag").score == 0.0
    assert score("iou", "[0, 0, 2, 2]", [0, 0, 2, 2], extract="answer_tag").reason.startswith("no <answer>")
    with pytest.raises(ValueError, match="extract"):
        score("classification", "x", "dog", meta, extract="boxed")
    # the longest class wins over the class it contains: not "several"
    assert score("classification", "<answer>golden retriever</answer>", "golden retriever", meta).score == 1.0


def test_gui_action_type_and_arguments():
    click = {"action": "click", "box": [10, 10, 30, 30]}
    assert score("gui_action", '<answer>{"action": "click", "coordinate": [15, 20]}</answer>', click).score == 1.0
    assert score("gui_action", '<answer>{"action": "click", "coordinate": [45, 20]}</answer>', click).score == 0.5
    assert score("gui_action", "<answer>click(12, 29)</answer>", click).score == 1.0
    assert score("gui_action", '<answer>{"action": "scroll", "direction": "up"}</answer>', click).score == 0.0
    typed = {"action": "type", "text": "Hello world"}
    assert score("gui_action", '<answer>{"action": "type", "text": "hello world!"}</answer>', typed).score == 1.0
    assert score("gui_action", '<answer>{"action": "type", "text": "bye"}</answer>', typed,
                 action_weight=0.2).score == pytest.approx(0.2)
    assert score("gui_action", '{"action": "back"}', {"action": "back"}).score == 1.0
    assert score("gui_action", "nothing", click).score == 0.0


def test_think_answer_consistency():
    ok = "<think>two red and one more red, so 3</think><answer>3</answer>"
    assert score("think_answer_consistency", ok, None).score == 1.0
    bad = "<think>I count 4 red shapes</think><answer>3</answer>"
    r = score("think_answer_consistency", bad, None)
    assert r.score == 0.0 and "4" in r.reason
    said = "<think>Round edges everywhere. The answer is circle.</think><answer>Circle</answer>"
    assert score("think_answer_consistency", said, None).score == 1.0
    assert score("think_answer_consistency", "<answer>3</answer>", None).reason == "no <think> span"
    assert score("think_answer_consistency", "<think>3</think>", None).score == 0.0


def test_perception_judge_counts_facts():
    seen = []

    def reply(prompt):
        seen.append(prompt)
        return "The response gets two of them. Score: 2"

    meta = {"question": "What is shown?", "visual_facts": ["a red circle", "top left", "white background"]}
    with JudgeServer(reply) as server:
        r = score("perception_judge", "A red circle, top left.", None, meta, base_url=server.url, retries=0)
    assert r.score == pytest.approx(2 / 3)
    assert "1. a red circle\n2. top left\n3. white background" in seen[0] and "What is shown?" in seen[0]
    assert score("perception_judge", "x", None, {}).reason.startswith("no visual facts")
    with JudgeServer(mode="http500") as server:
        failed = score("perception_judge", "x", None, meta, base_url=server.url, retries=0)
    assert failed.score == 0.0 and "judge failed" in failed.reason
