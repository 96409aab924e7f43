"""PromptSampler: epochs are permutations, batches wrap across epochs, state_dict resumes exactly."""

import json

import numpy as np
import pytest

from rlvr.data import PromptSampler
from rlvr.types import Example


def make(n, source="s"):
    return [Example(question=f"q{i}", answer=str(i), source=source, index=i) for i in range(n)]


def ids(batch):
    return [e.index for e in batch]


def test_each_epoch_is_a_permutation_and_batches_wrap():
    sampler = PromptSampler(make(10), batch_size=4, seed=0)
    drawn = [ids(sampler.next_batch()) for _ in range(5)]  # 20 examples = exactly 2 epochs
    flat = sum(drawn, [])
    assert all(len(b) == 4 for b in drawn)
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:]) == list(range(10))
    # the order is numpy's default_rng([seed, epoch]).permutation(N), independent of the global RNG
    assert flat[:10] == np.random.default_rng([0, 0]).permutation(10).tolist()
    assert flat[10:] == np.random.default_rng([0, 1]).permutation(10).tolist()
    # batch 3 (examples 8..11) straddles the epoch boundary; after 20 examples we sit at the end of epoch 1
    assert sampler.epoch == 1 and sampler.position == 10
    assert len(sampler) == 3  # ceil(10 / 4)


def test_no_shuffle_is_sequential_and_big_batches_span_epochs():
    sampler = PromptSampler(make(3), batch_size=5, seed=0, shuffle=False)
    # 5 from a 3-cycle: 0 1 2 | 0 1, then 2 | 0 1 2 | 0
    assert ids(sampler.next_batch()) == [0, 1, 2, 0, 1]
    assert ids(sampler.next_batch()) == [2, 0, 1, 2, 0]
    assert sampler.epoch == 3


def test_seed_changes_order_and_global_rng_does_not():
    a = ids(PromptSampler(make(20), 20, seed=1).next_batch())
    np.random.seed(123)
    b = ids(PromptSampler(make(20), 20, seed=1).next_batch())
    c = ids(PromptSampler(make(20), 20, seed=2).next_batch())
    assert a == b and a != c


def test_resume_yields_exactly_the_same_future_batches():
    reference = PromptSampler(make(7), batch_size=3, seed=5)
    expected = [ids(reference.next_batch()) for _ in range(9)]  # ~4 epochs

    first = PromptSampler(make(7), batch_size=3, seed=5)
    got = [ids(first.next_batch()) for _ in range(4)]
    state = json.loads(json.dumps(first.state_dict()))  # survives a JSON round trip (checkpoint files)
    assert {"epoch", "position", "seed"} <= set(state)
    # a fresh sampler built with another seed adopts the saved one
    resumed = PromptSampler(make(7), batch_size=3, seed=999)
    resumed.load_state_dict(state)
    got += [ids(resumed.next_batch()) for _ in range(5)]
    assert got == expected and resumed.epoch == reference.epoch


def test_next_batch_custom_size_continues_the_stream():
    a = PromptSampler(make(6), batch_size=2, seed=0)
    b = PromptSampler(make(6), batch_size=2, seed=0)
    # 2+2+2+2 == 3+5: the stream of examples is the same however it is cut
    assert sum((ids(a.next_batch()) for _ in range(4)), []) == ids(b.next_batch(3)) + ids(b.next_batch(5))


def test_changed_data_is_refused_on_resume():
    state = PromptSampler(make(5), 2, seed=0).state_dict()
    with pytest.raises(ValueError, match="saved for 5 examples but the data now has 6"):
        PromptSampler(make(6), 2, seed=0).load_state_dict(state)
    with pytest.raises(ValueError, match="different examples"):
        PromptSampler(make(5, source="other"), 2, seed=0).load_state_dict(state)
    PromptSampler(make(5, source="other"), 2, seed=0).load_state_dict(state, strict=False)  # allowed explicitly


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one example"):
        PromptSampler([], 2, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        PromptSampler(make(2), 0, seed=0)
