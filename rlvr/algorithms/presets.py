"""Named algorithm presets: each is a dict of AlgorithmConfig field values (placeholder, grown by the algorithms work)."""

from rlvr.registry import Registry

PRESETS = Registry("algorithm preset")
PRESETS.register("grpo", {}, doc="GRPO (DeepSeekMath): group mean/std advantage, PPO clip, token-mean.")
