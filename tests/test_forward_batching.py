"""Batches under a token budget: every example once, no batch over budget, the same logits as one by one."""
from __future__ import annotations

import numpy as np
import pytest

from labeldiag.measure.encode import Encoded
from labeldiag.measure.forward import make_batches, run_forward
from labeldiag.records import TokenStats

VOCAB, PAD = 50, 0


def encoded(lengths: list[int], seed: int = 0) -> Encoded:
    """Examples of the given lengths: [CLS]=1 ... [SEP]=2 around random content ids."""
    rng = np.random.default_rng(seed)
    ids = [np.concatenate([[1], rng.integers(3, VOCAB, size=n - 2), [2]]).astype(np.int64) for n in lengths]
    stats = TokenStats(max_length=max(lengths), model_max_positions=128, max_token_id=VOCAB - 1,
                       embedding_rows=VOCAB, tokenizer_size=VOCAB)
    return Encoded(ids=ids, type_ids=[np.zeros(n, dtype=np.int64) for n in lengths], pad_id=PAD,
                   special_ids={0, 1, 2}, blank_id=PAD, stats=stats)


# a few long examples among many short ones, like tweets: short batches can grow past 8 rows
LENGTHS = [60, 57, 41] + [5 + (i * 7) % 20 for i in range(90)]


def test_token_budget_batches_cover_every_example_once_within_budget():
    enc = encoded(LENGTHS)
    lengths = enc.lengths
    batches = make_batches(enc, 8, max_tokens=8 * 60)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(LENGTHS)))
    for idx in batches:
        assert len(idx) <= 8 or len(idx) * lengths[idx].max() <= 8 * 60
    assert max(len(b) for b in batches) > 8  # short examples shared bigger batches
    assert len(batches) < len(make_batches(enc, 8))


def test_max_rows_caps_a_batch_and_batch_size_is_the_floor():
    enc = encoded(LENGTHS)
    capped = make_batches(enc, 8, max_tokens=8 * 60, max_rows=16)
    assert max(len(b) for b in capped) == 16
    tight = make_batches(enc, 8, max_tokens=10)  # a budget below one long row still takes batch_size rows
    assert [len(b) for b in tight[:-1]] == [8] * (len(tight) - 1)


def test_unsorted_batches_ignore_the_budget():
    enc = encoded(LENGTHS)
    batches = make_batches(enc, 8, sort=False, max_tokens=8 * 60)
    assert [b.tolist() for b in batches] == [list(range(i, min(i + 8, len(LENGTHS))))
                                             for i in range(0, len(LENGTHS), 8)]


@pytest.fixture(scope="module")
def tiny_model():
    import torch

    from labeldiag.synthetic import tiny_bert

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core machine: one thread is many times faster for a tiny model
    yield tiny_bert(VOCAB, ["a", "b", "c"], seed=0).eval()
    torch.set_num_threads(before)


def test_budgeted_forward_matches_one_by_one(tiny_model):
    from labeldiag.measure.runtime import pick_runtime

    enc = encoded(LENGTHS, seed=1)
    runtime = pick_runtime("cpu", "fp32")
    sizes: list[int] = []
    batched = run_forward(tiny_model, enc, runtime, 8, progress=sizes.append, max_tokens=8 * 60)
    single = run_forward(tiny_model, enc, runtime, 1, sort=False)  # no padding at all
    assert max(sizes) > 8  # the budget really grew batches past batch_size
    assert sum(sizes) == len(LENGTHS)
    np.testing.assert_allclose(batched.logits, single.logits, atol=1e-4, rtol=0)
    np.testing.assert_allclose(batched.features, single.features, atol=1e-4, rtol=0)
    assert batched.feature_source == single.feature_source == "classifier"
