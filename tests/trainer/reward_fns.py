"""User reward functions for the trainer tests (loaded as 'tests/trainer/reward_fns.py:digits')."""


def digits(prompts, completions, answers, metadata):
    """Fraction of characters that are digits: a dense reward with variance even for an untrained model."""
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]
