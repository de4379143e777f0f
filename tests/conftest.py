import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `-n 2` on 2 cores: one torch thread per worker, not two each
    os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the same vocabulary on every run
sys.path.insert(0, str(Path(__file__).parent))


# The longest work units (a real-model build and the tests that share it) go to the workers first, then
# the other slow tests, then the fast tier, which fills the gaps: started last, one of them would leave
# a worker busy for minutes after the other has finished.
LONGEST_FIRST = ("test_real_models.py", "test_permutation_real.py", "test_real_situations.py",
                 "test_new_codes_real.py")


def pytest_collection_modifyitems(config, items):
    def order(item):
        name = item.path.name
        slow = item.get_closest_marker("slow") is not None
        return (not slow, LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST))

    items.sort(key=order)  # stable: each module keeps its own order

@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A small BERT trained to high accuracy on the synthetic 3-topic task, with held-out data."""
    import torch

    from labeldiag.synthetic import build_trained
    from shared_build import built_once

    # one thread: the same float results on every run and machine, so tests see the same model
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # built by one xdist worker, read by the other
        out = built_once(tmp_path_factory, "trained", lambda root: build_trained(root, seed=0, steps=200))
    finally:
        torch.set_num_threads(before)
    assert out["accuracy"] > 0.9, out
    return out


@pytest.fixture(scope="session")
def tokenizer_and_rows():
    from labeldiag.synthetic import build_tokenizer, make_examples

    rows = make_examples(300, seed=1)
    return build_tokenizer([r["text"] for r in rows]), rows


@pytest.fixture(scope="module")
def one_thread():
    """On a shared 2-core machine two torch threads per process are much slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _real_model(kind: str, tmp_path_factory, **sizes):
    """A MiniLM-L6 fine-tuned on real text (examples/realmodels.py): (checkpoint, held-out JSONL).

    Session-scoped, so slow test modules share one build; mark them
    `pytest.mark.xdist_group("real-models")` so one worker builds it.
    """
    from helpers import real_model_root, skip_without_examples_extra

    skip_without_examples_extra()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    import realmodels

    # one torch thread: each of the two xdist workers has one core
    return realmodels.build(kind, real_model_root(tmp_path_factory, f"real-{kind}"), threads=1, **sizes)



@pytest.fixture(scope="session")
def real_bbc(tmp_path_factory):
    """BBC News, 5 topics, 64 steps of fine-tuning above 3 frozen layers; held-out accuracy about 0.94."""
    return _real_model("bbc", tmp_path_factory, steps=64, n_train=400, n_test=250, frozen_layers=3)


@pytest.fixture(scope="session")
def real_tweets(tmp_path_factory):
    """Tweets, 3 sentiments, 60 steps above 3 frozen layers; held-out accuracy about 0.65 (noisy labels)."""
    return _real_model("tweets", tmp_path_factory, steps=60, n_train=2000, n_test=300, frozen_layers=3)
