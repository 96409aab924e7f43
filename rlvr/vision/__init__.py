"""Vision-language RLVR: images in examples, VLM policies, pixel inputs through rollout and update.

    images.py     an example's images: paths (relative to the data file), base64, bytes, HF ``Image`` values;
                  checked when the data loads (a bad image is a bad row), opened as RGB PIL images when sampled
    processor.py  `VisionProcessor`: a prompt + its images -> token ids (image tokens expanded) and the model's
                  pixel inputs (`PromptInputs`); AutoProcessor where it loads, else the image processor + tokenizer
    inputs.py     pixel inputs of many rows -> one micro-batch's model kwargs (items concatenated, token-aligned
                  tensors padded like the ids)
    model.py      is this a vision-language model, loading it, ``model.freeze_vision``, LoRA on the language model

docs/vision.md has the whole picture; the verifiers (iou, detection, classification, gui_action,
think_answer_consistency, perception_judge) live in rlvr/rewards/.
"""
