"""Visual verifiers: ``iou`` and ``detection`` (VLM-R1), ``classification`` (CLS-RL), ``gui_action`` (UI-R1).

    iou('<answer>[10, 10, 50, 50]</answer>', [30, 10, 70, 50], {})            # IoU 1/3 -> score 0.333
    iou(..., threshold=0.5)                                                    # 0: IoU below the threshold
    detection('<answer>[[0,0,10,10], [20,20,30,30]]</answer>', [[0,0,10,10]], {})   # F1 2/3
    classification('<answer>A golden retriever.</answer>', "golden retriever", {"classes": [...]})   # 1
    gui_action('<answer>{"action": "click", "coordinate": [15, 20]}</answer>',
               {"action": "click", "box": [10, 10, 30, 30]}, {})                # 1: type and point right

Where the answer is read (param ``extract``, every verifier here): the last ``<answer>...</answer>`` span when there
is one, else the whole completion (``auto``, default), or nothing (``answer_tag``: an untagged completion scores 0;
measured in docs/vision.md: with ``auto`` a tiny policy learnt to emit untagged junk that names one class).

Boxes are ``[x1, y1, x2, y2]`` (corners, any order; a zero-area box has IoU 0). Recognised in the answer, in this
order: JSON (a list of 4 numbers, a list of such lists, or objects with "bbox_2d" / "bbox" / "box" keys: Qwen2.5-VL's
grounding output), the pair form ``(x1,y1),(x2,y2)``, else any bracketed group of 4 numbers ``[x1, y1, x2, y2]``.

``iou`` (VLM-R1, Shen et al. 2025, "VLM-R1: A Stable and Generalizable R1-style Large Vision-Language Model"):
    reward = IoU(predicted box, gold box) with ``threshold`` 0 (their accuracy reward for REC), or
    1[IoU >= threshold] with ``threshold`` > 0 (their binary variant). The first box of the answer counts.
``detection`` (VLM-R1's open-vocabulary detection reward): predicted and gold boxes matched greedily by IoU
    (highest first, each used once); a match with IoU >= ``iou_threshold`` is a true positive.
    ``score: f1`` (default) = 2 TP / (|pred| + |gold|); ``score: mean_iou`` = the summed IoU of the matches over
    max(|pred|, |gold|). Caveat (VLM-R1 section 4.3, reward hacking): a mean IoU over the *gold* boxes alone
    rewards predicting many boxes, and recall-only rewards do too; both scores here divide by the larger count,
    so every extra or missing box costs. Their paper also notes the policy learns to emit very few boxes under a
    precision-only reward: F1 balances the two.
``classification`` (CLS-RL, Li et al. 2025, "CLS-RL: Image Classification with Rule-Based Reinforcement
    Learning"): the answer normalised (lower case, punctuation and articles removed, spaces collapsed) equals the
    normalised label, or, with a class list (param ``classes`` or ``metadata["classes"]``), names the gold class
    as a whole phrase. ``single: true`` (default) refuses an answer naming more than one class of the list
    ("a cat or a dog"), the hedge an accuracy-only reward would otherwise pay for.
``gui_action`` (UI-R1, Lu et al. 2025, "UI-R1: Enhancing Action Prediction of GUI Agents by Reinforcement
    Learning"): reward = ``action_weight`` x [action type right] + (1 - action_weight) x [arguments right]; the
    arguments count only when the type is right: click / tap / long_press: the predicted point
    (``coordinate`` / ``point`` / ``position`` / ``x``,``y``; or ``click(x, y)``) inside the gold ``box``;
    type / input: the typed text equal after normalisation; scroll / swipe: the direction equal; other actions
    (back, home, wait ...): nothing more to check. UI-R1 adds the two terms (range 0-2) plus a format reward;
    here they are weighted to [0, 1] and the format reward is a separate component (``think_format``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from rlvr.rewards.base import VERIFIERS, as_bool, finite
from rlvr.rewards.extract import answer_tag, normalize_text
from rlvr.types import RewardResult

_NUM = r"[-+]?\d+(?:\.\d+)?"
_PAIR_BOX = re.compile(rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*,?\s*(?:to|-)?\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)")
_BRACKET_BOX = re.compile(rf"[\[\(]\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*[\]\)]")
_CALL_POINT = re.compile(rf"\(\s*(?:x\s*=\s*)?({_NUM})\s*,\s*(?:y\s*=\s*)?({_NUM})\s*\)")
_BOX_KEYS = ("bbox_2d", "bbox", "box")


EXTRACT_MODES = ("auto", "answer_tag")


def answer_text(completion: str, extract: str = "auto") -> str | None:
    """The last <answer> span; without one, the whole completion (``extract: auto``) or None (``answer_tag``:
    the answer must be tagged, so untagged text that happens to name a class or hold numbers earns nothing)."""
    if extract not in EXTRACT_MODES:
        raise ValueError(f"extract must be one of {', '.join(EXTRACT_MODES)}, got {extract!r}")
    found = answer_tag(completion)
    if found is None:
        return completion if extract == "auto" else None
    return found


def _untagged() -> RewardResult:
    return RewardResult(0.0, reason="no <answer> span (extract: answer_tag)", details={"no_answer_span": True})


def _as_box(value: Any) -> list[float] | None:
    if isinstance(value, dict):
        value = next((value[k] for k in _BOX_KEYS if k in value), None)
    if isinstance(value, (list, tuple)) and len(value) == 4:
        nums = [finite(v) for v in value]
        if all(v is not None and not isinstance(v, bool) for v in nums):
            return [float(v) for v in nums]
    return None


def _json_boxes(text: str) -> list[list[float]] | None:
    start = min((i for i in (text.find("["), text.find("{")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    one = _as_box(value)
    if one is not None:
        return [one]
    if isinstance(value, list):
        boxes = [_as_box(v) for v in value]
        if boxes and all(b is not None for b in boxes):
            return boxes
    return None


def parse_boxes(text: str) -> list[list[float]]:
    """Every box in ``text`` (see the module docstring for the forms), in order; [] when none."""
    boxes = _json_boxes(text)
    if boxes:
        return boxes
    pairs = [[float(x) for x in m.groups()] for m in _PAIR_BOX.finditer(text)]
    if pairs:
        return pairs
    return [[float(x) for x in m.groups()] for m in _BRACKET_BOX.finditer(text)]


def box_iou(a: list[float], b: list[float]) -> float:
    """Intersection over union of two [x1, y1, x2, y2] boxes (corners in any order); 0 for zero-area boxes."""
    ax1, ax2 = sorted((a[0], a[2]))
    ay1, ay2 = sorted((a[1], a[3]))
    bx1, bx2 = sorted((b[0], b[2]))
    by1, by2 = sorted((b[1], b[3]))
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


def _gold_boxes(reference: Any) -> list[list[float]] | None:
    if isinstance(reference, str):
        return parse_boxes(reference) or None
    one = _as_box(reference)
    if one is not None:
        return [one]
    if isinstance(reference, (list, tuple)):
        boxes = [_as_box(v) for v in reference]
        return boxes if boxes and all(b is not None for b in boxes) else None
    return None


@VERIFIERS.register("iou")
def iou(completion: str, reference: Any, metadata: dict, threshold: float = 0.0, extract: str = "auto",
        **_: Any) -> RewardResult:
    """IoU of the answer's first box with the gold box; with threshold > 0, 1 when IoU >= threshold else 0."""
    gold = _gold_boxes(reference)
    if not gold:
        return RewardResult(0.0, reason=f"reference is not a box [x1, y1, x2, y2]: {str(reference)[:80]}")
    text = answer_text(completion, extract)
    if text is None:
        return _untagged()
    boxes = parse_boxes(text)
    if not boxes:
        return RewardResult(0.0, reason="no box in the answer", details={"no_answer_span": answer_tag(completion) is None})
    value = box_iou(boxes[0], gold[0])
    threshold = float(threshold)
    score = value if threshold <= 0 else float(value >= threshold)
    return RewardResult(score, reason=f"IoU {value:.3f}" + (f" {'>=' if score else '<'} {threshold:g}"
                                                            if threshold > 0 else ""),
                        extracted=json.dumps(boxes[0]), details={"iou": value})


def match_boxes(pred: list[list[float]], gold: list[list[float]]) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching, highest IoU first: [(pred index, gold index, IoU)] for IoU > 0."""
    pairs = sorted(((box_iou(p, g), i, j) for i, p in enumerate(pred) for j, g in enumerate(gold)), reverse=True)
    used_p, used_g, out = set(), set(), []
    for value, i, j in pairs:
        if value <= 0 or i in used_p or j in used_g:
            continue
        used_p.add(i)
        used_g.add(j)
        out.append((i, j, value))
    return out


@VERIFIERS.register("detection")
def detection(completion: str, reference: Any, metadata: dict, iou_threshold: float = 0.5, score: str = "f1",
              extract: str = "auto", **_: Any) -> RewardResult:
    """Multi-box detection: greedy IoU matching, then F1 at ``iou_threshold`` or the mean matched IoU."""
    if score not in ("f1", "mean_iou"):
        raise ValueError(f"detection: score must be f1 or mean_iou, got {score!r}")
    gold = [] if reference in (None, [], "") else _gold_boxes(reference)
    if gold is None:
        return RewardResult(0.0, reason=f"reference is not a list of boxes: {str(reference)[:80]}")
    text = answer_text(completion, extract)
    if text is None:
        return _untagged()
    pred = parse_boxes(text)
    if not pred and not gold:
        return RewardResult(1.0, reason="no boxes, none expected", extracted="[]")
    matches = match_boxes(pred, gold)
    tp = sum(v >= float(iou_threshold) for _, _, v in matches)
    f1 = 2 * tp / (len(pred) + len(gold))
    mean_iou = sum(v for _, _, v in matches) / max(len(pred), len(gold))
    value = f1 if score == "f1" else mean_iou
    return RewardResult(value, reason=f"{len(pred)} predicted, {len(gold)} gold, {tp} matched at IoU >= "
                        f"{float(iou_threshold):g}", extracted=json.dumps(pred)[:500],
                        details={"tp": tp, "f1": f1, "mean_iou": mean_iou, "predicted": len(pred)})


def _norm(text: str) -> str:
    return normalize_text(str(text), articles=True, punctuation=True)


def _names(text: str, phrase: str) -> bool:
    return bool(phrase) and re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None


@VERIFIERS.register("classification")
def classification(completion: str, reference: Any, metadata: dict, classes: list | None = None,
                   single: bool = True, extract: str = "auto", **_: Any) -> RewardResult:
    """The label normalised and matched (against the class list when there is one); see the module docstring."""
    if reference is None or not str(reference).strip():
        return RewardResult(0.0, reason="no reference label")
    span = answer_tag(completion)
    text = answer_text(completion, extract)
    if text is None:
        return _untagged()
    answer = _norm(text)
    gold = _norm(reference)
    if not answer:
        return RewardResult(0.0, reason="empty answer", details={"no_answer_span": span is None})
    classes = classes if classes is not None else (metadata or {}).get("classes")
    if answer == gold:
        return RewardResult(1.0, reason="correct", extracted=answer)
    if not classes:
        return RewardResult(0.0, reason="wrong", extracted=answer)
    normalised = sorted({_norm(c) for c in classes} | {gold}, key=len, reverse=True)
    named, rest = [], answer
    for phrase in normalised:  # longest first: "golden retriever" is not also "retriever"
        if _names(rest, phrase):
            named.append(phrase)
            rest = re.sub(rf"(?<!\w){re.escape(phrase)}(?!\w)", " ", rest)
    if len(named) > 1 and as_bool(single):
        return RewardResult(0.0, reason=f"names several classes: {', '.join(sorted(named))}", extracted=answer)
    ok = gold in named
    return RewardResult(float(ok), reason="correct" if ok else "wrong", extracted=answer)


_CLICKS = {"click", "tap", "long_press", "longpress", "double_click", "right_click"}
_TYPES = {"type", "input", "input_text", "type_text"}
_SCROLLS = {"scroll", "swipe"}


def _action_dict(text: str) -> dict | None:
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start >= 0:
        try:
            value, _ = json.JSONDecoder().raw_decode(text[start:])
        except ValueError:
            value = None
        if isinstance(value, list) and value and isinstance(value[0], dict):
            value = value[0]
        if isinstance(value, dict):
            return value
    m = re.match(r"\s*([A-Za-z_]+)\s*\((.*)\)\s*$", text.strip(), re.S)  # click(12, 30) / type("hello")
    if m:
        name, args = m.group(1), m.group(2)
        point = _CALL_POINT.search(f"({args})")
        out: dict[str, Any] = {"action": name}
        if point:
            out["coordinate"] = [float(point.group(1)), float(point.group(2))]
        else:
            out["text"] = args.strip().strip("'\"")
        return out
    return None


def _point(action: dict) -> list[float] | None:
    for key in ("coordinate", "point", "position", "click_point", "coordinates"):
        value = action.get(key)
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(finite(v) is not None for v in value):
            return [float(v) for v in value]
        if isinstance(value, (list, tuple)) and len(value) == 4:  # a box: its centre
            box = _as_box(value)
            if box is not None:
                return [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]
    if finite(action.get("x")) is not None and finite(action.get("y")) is not None:
        return [float(action["x"]), float(action["y"])]
    return None


@VERIFIERS.register("gui_action")
def gui_action(completion: str, reference: Any, metadata: dict, action_weight: float = 0.5,
               extract: str = "auto", **_: Any) -> RewardResult:
    """Action type, then its arguments (click point in the box, typed text, scroll direction); module docstring."""
    if isinstance(reference, str):
        try:
            reference = json.loads(reference)
        except ValueError:
            return RewardResult(0.0, reason="reference is not a JSON action")
    if not isinstance(reference, dict) or not (reference.get("action") or reference.get("action_type")):
        return RewardResult(0.0, reason="reference has no action")
    gold_type = str(reference.get("action") or reference.get("action_type")).strip().lower()
    text = answer_text(completion, extract)
    if text is None:
        return _untagged()
    pred = _action_dict(text)
    if pred is None:
        return RewardResult(0.0, reason="no action in the answer", details={"no_answer_span": answer_tag(completion) is None})
    pred_type = str(pred.get("action") or pred.get("action_type") or "").strip().lower()
    w = min(1.0, max(0.0, float(action_weight)))
    if pred_type != gold_type:
        return RewardResult(0.0, reason=f"action {pred_type or 'none'!r}, expected {gold_type!r}",
                            extracted=pred_type)
    if gold_type in _CLICKS:
        box, point = _as_box(reference.get("box") or reference.get("bbox")), _point(pred)
        if box is None:
            return RewardResult(0.0, reason="reference click has no box [x1, y1, x2, y2]")
        inside = point is not None and min(box[0], box[2]) <= point[0] <= max(box[0], box[2]) \
            and min(box[1], box[3]) <= point[1] <= max(box[1], box[3])
        args_ok, why = inside, "point inside the box" if inside else f"point {point} outside {box}"
    elif gold_type in _TYPES:
        typed = pred.get("text", pred.get("input_text", pred.get("value", "")))
        args_ok = _norm(typed) == _norm(reference.get("text", reference.get("input_text", "")))
        why = "text equal" if args_ok else f"text {str(typed)[:40]!r} differs"
    elif gold_type in _SCROLLS:
        args_ok = _norm(pred.get("direction", "")) == _norm(reference.get("direction", ""))
        why = "direction equal" if args_ok else "direction differs"
    else:
        args_ok, why = True, "no arguments to check"
    score = w + (1 - w) * float(args_ok)
    return RewardResult(score, reason=f"action {gold_type} right; {why}", extracted=json.dumps(pred)[:300],
                        details={"type_ok": True, "args_ok": args_ok})
