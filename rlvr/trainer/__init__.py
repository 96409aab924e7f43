"""The GRPO trainer: `train(cfg)` runs or resumes a run described by a RunConfig."""

from rlvr.trainer.loop import TrainingDiverged, train

__all__ = ["train", "TrainingDiverged"]
