"""Absolute Zero self-play (Zhao et al. 2025, arXiv:2505.03335): one model proposes code-reasoning tasks, a
sandboxed executor verifies them, and the same model learns to solve them; ``rlvr selfplay CFG`` (docs/selfplay.md).

    tasks.py     the three task types (deduction, abduction, induction): prompts and parsing
    executor.py  running and validating proposed programs in the sandbox
    rewards.py   the solver check, the proposer's learnability reward, the format composite; the selfplay verifier
    buffer.py    the task buffers (seeded with the identity triplet; checkpointed)
    game.py      one step: propose, validate, estimate solve rates, solve -> the batch the trainer updates on
"""
