"""doctor reads DATA once: each stage builds its examples from the first rows it needs, and gets the rows,
order and errors that a read of its own would get."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from helpers import write_jsonl
from labeldiag.errors import UsageError
from labeldiag.load import data as data_module
from labeldiag.load import objects
from labeldiag.load.data import DataFile, read_examples

ROWS = [{"text": f"example number {i}", "label": ["a", "b", "c"][i % 3], "tags": [i]} for i in range(12)]


@pytest.fixture
def opens(monkeypatch):
    """The paths that the text readers open, one entry per open."""
    opened: list[str] = []
    real = data_module._open_text

    def counting(p):
        opened.append(str(p))
        return real(p)

    monkeypatch.setattr(data_module, "_open_text", counting)
    return opened


def _same(a, b) -> None:
    for name, value in dataclasses.asdict(a).items():
        other = getattr(b, name)
        if isinstance(value, dict):  # tokenized arrays
            assert value.keys() == other.keys() and all(np.array_equal(value[k], other[k]) for k in value), name
        else:
            assert value == other, name


def _write(fmt: str, tmp_path):
    if fmt == "jsonl":
        return write_jsonl(ROWS, tmp_path / "d.jsonl")
    if fmt == "json":
        (tmp_path / "d.json").write_text(json.dumps(ROWS))
        return tmp_path / "d.json"
    lines = ["text,label"] + [f"{r['text']},{r['label']}" for r in ROWS]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "d.csv"


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_one_open_serves_every_count_as_its_own_read_would(fmt, tmp_path, opens):
    path = _write(fmt, tmp_path)
    source = DataFile(path)
    built = {n: source.examples(n) for n in (4, 2, 9, 40, 3)}
    assert opens == [str(path)]
    for n, examples in built.items():
        _same(examples, read_examples(path, n))
    assert [len(e) for e in built.values()] == [4, 2, 9, 12, 3]


def test_a_dataset_folder_is_iterated_once_and_keeps_its_class_names(tmp_path, monkeypatch):
    import datasets

    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["a", "b", "c"])})
    rows = [{"text": r["text"], "label": i % 3} for i, r in enumerate(ROWS)]
    datasets.Dataset.from_list(rows, features=features).save_to_disk(str(tmp_path / "ds"))
    opened = []
    real = data_module._open_dataset
    monkeypatch.setattr(data_module, "_open_dataset", lambda p: opened.append(p) or real(p))
    source = DataFile(tmp_path / "ds")
    built = {n: source.examples(n) for n in (3, 8, 5)}
    assert len(opened) == 1
    for n, examples in built.items():
        assert examples.declared_label_names == ["a", "b", "c"]
        _same(examples, read_examples(tmp_path / "ds", n))


def test_label_field_is_each_reads_own(tmp_path, opens):
    path = _write("jsonl", tmp_path)
    source = DataFile(path)
    assert source.examples(5, label_field="tags").labels == [[i] for i in range(5)]
    assert source.examples(5).labels == ["a", "b", "c", "a", "b"]
    assert len(opens) == 1


def test_a_bad_row_fails_only_the_reads_that_reach_it(tmp_path, opens):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS[:6]) + "\n{not json\n" + json.dumps(ROWS[7]) + "\n")
    with pytest.raises(UsageError) as own:
        read_examples(path, 10)
    source = DataFile(path)
    assert len(source.examples(6)) == 6
    for _ in range(2):  # the error stands for every longer read, as a new read would meet it
        with pytest.raises(UsageError) as shared:
            source.examples(10)
        assert str(shared.value) == str(own.value) and "line 7" in str(own.value)
    assert len(source.examples(3)) == 3
    assert opens.count(str(path)) == 2  # read_examples' own read, then the source's one


def test_in_memory_data_gives_what_a_read_gives():
    from labeldiag.options import build

    opts, _ = build("doctor", {"max_examples": 5})
    source = objects.DataSource(ROWS, allow_pickle=False)
    _same(source.examples(opts), objects.read(ROWS, opts))
    assert objects.describe(source) == objects.describe(ROWS)


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items()
                if k not in ("elapsed_s", "environment") and "second" not in k}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def test_doctor_reads_data_once_and_its_stages_find_what_separate_reads_find(trained, opens, monkeypatch):
    from labeldiag import doctor

    # 40 rows for check-logits, 32 for grad-flow, a smoke-train pool of 16 x 20 = 320: the pool reads on
    options = dict(max_examples=40, steps=10, seed=0)
    once = doctor(trained["checkpoint"], trained["data"], **options)
    assert opens.count(trained["data"]) == 1
    # today's separate reads: every stage reads DATA afresh
    read_once = objects.DataSource.examples
    monkeypatch.setattr(objects.DataSource, "examples",
                        lambda self, opts: read_once(objects.DataSource(self.data, opts.allow_pickle), opts))
    opens.clear()
    separate = doctor(trained["checkpoint"], trained["data"], **options)
    assert opens.count(trained["data"]) == 3
    stages = once.metrics["stages"]
    assert all(stage["ran"] for stage in stages.values()), stages
    assert {k: v["findings"] for k, v in stages.items()} == \
        {k: v["findings"] for k, v in separate.metrics["stages"].items()}
    assert _without_timings(once.to_dict()) == _without_timings(separate.to_dict())


def test_doctor_stages_read_as_attributes(trained):
    from labeldiag import Report, doctor

    report = doctor(trained["checkpoint"], trained["data"], max_examples=40, steps=10, seed=0)
    run = report.doctor
    assert [stage.name for stage in run.stages] == ["check-logits", "grad-flow", "smoke-train"]
    assert run.stages[0].seconds == report.metrics["stages"]["check-logits"]["seconds"]
    assert run.training.fitted == report.metrics["smoke_train"]["fitted"] and run.training.curve
    assert run.grad_flow.layers[0].grad_norm == report.metrics["grad_flow"]["layers"][0]["grad_norm"]
    assert Report.from_dict(json.loads(report.to_json())).doctor == run
