"""Every DATA reader through labeldiag.load.data.read_examples: formats, column detection, streaming."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from helpers import write_jsonl
from labeldiag.errors import UsageError
from labeldiag.load.data import read_examples

ROWS = [{"text": f"example number {i}", "label": ["a", "b", "c"][i % 3]} for i in range(7)]


def write_csv(rows: list[dict], path: Path, delimiter: str = ",") -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=delimiter)
        w.writeheader()
        w.writerows(rows)
    return path


def check_rows(ex, rows=ROWS, text="text", label="label"):
    assert ex.texts == [r[text] for r in rows]
    assert [str(x) for x in ex.labels] == [str(r[label]) for r in rows]
    assert ex.text_field == text and ex.label_field == label
    assert ex.labelled and len(ex) == len(rows)


# --- every format -----------------------------------------------------------------------------

def test_jsonl(tmp_path):
    check_rows(read_examples(write_jsonl(ROWS, tmp_path / "d.jsonl"), 100))


def test_ndjson_and_blank_lines_and_bom(tmp_path):
    p = tmp_path / "d.ndjson"
    p.write_bytes(b"\xef\xbb\xbf" + b"\n\n".join(json.dumps(r).encode() for r in ROWS) + b"\n\n")
    check_rows(read_examples(p, 100))


def test_json_list(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps(ROWS, indent=2))
    check_rows(read_examples(p, 100))


def test_json_column_dict(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps({"text": [r["text"] for r in ROWS], "label": [r["label"] for r in ROWS]}))
    check_rows(read_examples(p, 100))


@pytest.mark.parametrize("key", ["data", "examples", "rows", "train", "test", "validation"])
def test_json_wrapped_list(tmp_path, key):
    p = tmp_path / "d.json"
    p.write_text(json.dumps({key: ROWS, "version": 1}))
    check_rows(read_examples(p, 100))


def test_json_single_object(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps(ROWS[0]))
    check_rows(read_examples(p, 100), ROWS[:1])


def test_csv(tmp_path):
    check_rows(read_examples(write_csv(ROWS, tmp_path / "d.csv"), 100))


def test_csv_quoted_delimiters_and_newlines(tmp_path):
    rows = [{"text": 'a, "quoted"\nmulti-line text', "label": "a"}, {"text": "plain", "label": "b"}]
    check_rows(read_examples(write_csv(rows, tmp_path / "d.csv"), 100), rows)


def test_tsv(tmp_path):
    check_rows(read_examples(write_csv(ROWS, tmp_path / "d.tsv", "\t"), 100))


def test_csv_numeric_labels_stay_strings_for_label_kind(tmp_path):
    rows = [{"text": "x", "label": 0}, {"text": "y", "label": 2}]
    ex = read_examples(write_csv(rows, tmp_path / "d.csv"), 100)
    assert ex.labels == ["0", "2"]  # parsed later by label_kind


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    p = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), p, row_group_size=3)
    check_rows(read_examples(p, 100))
    assert read_examples(p, 4).texts == [r["text"] for r in ROWS[:4]]


def test_parquet_corrupt(tmp_path):
    pytest.importorskip("pyarrow")
    p = tmp_path / "d.parquet"
    p.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(UsageError, match="parquet"):
        read_examples(p, 10)


def test_save_to_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list(ROWS)
    ds.save_to_disk(str(tmp_path / "ds"))
    check_rows(read_examples(tmp_path / "ds", 100))
    datasets.DatasetDict({"train": ds, "validation": ds.select(range(2))}).save_to_disk(str(tmp_path / "dd"))
    check_rows(read_examples(tmp_path / "dd", 100), ROWS[:2])


def test_folder_that_is_not_a_dataset(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(UsageError, match="not a datasets save_to_disk folder"):
        read_examples(tmp_path / "x", 10)


def _tensors(n=5, t=6, labels=True):
    import torch

    d = {"input_ids": torch.randint(1, 50, (n, t)), "attention_mask": torch.ones(n, t, dtype=torch.long)}
    if labels:
        d["labels"] = torch.arange(n) % 3
    return d


def test_pt_needs_allow_pickle(tmp_path):
    import torch

    p = tmp_path / "d.pt"
    torch.save(_tensors(), p)
    with pytest.raises(UsageError, match="--allow-pickle"):
        read_examples(p, 10)
    ex = read_examples(p, 3, allow_pickle=True)
    assert len(ex) == 3 and ex.labels == [0, 1, 2] and ex.tokenized["input_ids"].shape == (3, 6)


def test_safetensors(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "d.safetensors"
    d = _tensors(labels=False)
    save_file(d, str(p))
    ex = read_examples(p, 10)
    assert len(ex) == 5 and not ex.labelled
    assert set(ex.tokenized) == {"input_ids", "attention_mask"}


def test_safetensors_without_mask_gets_ones(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "d.safetensors"
    save_file({"input_ids": _tensors()["input_ids"]}, str(p))
    ex = read_examples(p, 10)
    assert (ex.tokenized["attention_mask"] == 1).all()


# --- column detection --------------------------------------------------------------------------

@pytest.mark.parametrize("text,pair,label", [
    ("text", None, "label"),
    ("sentence", None, "labels"),
    ("sentence1", "sentence2", "label"),
    ("premise", "hypothesis", "gold_label"),
    ("question", None, "label"),
    ("question", "sentence", "label"),
    ("Text", None, "Label"),  # case-insensitive fallback
])
def test_column_detection(tmp_path, text, pair, label):
    rows = []
    for i in range(4):
        r = {"id": i, text: f"first {i}", label: i % 2}
        if pair:
            r[pair] = f"second {i}"
        rows.append(r)
    ex = read_examples(write_jsonl(rows, tmp_path / "d.jsonl"), 10)
    assert ex.text_field == text and ex.pair_field == pair and ex.label_field == label
    assert ex.texts[1] == "first 1"
    if pair:
        assert ex.pairs == [f"second {i}" for i in range(4)]
    else:
        assert ex.pairs is None
    assert ex.labels == [0, 1, 0, 1]


def test_explicit_fields(tmp_path):
    rows = [{"body": "b", "head": "h", "y2": 1}]
    ex = read_examples(write_jsonl(rows, tmp_path / "d.jsonl"), 10, text_field="body",
                       text_pair_field="head", label_field="y2")
    assert ex.texts == ["b"] and ex.pairs == ["h"] and ex.labels == [1]


def test_misspelt_column_suggests(tmp_path):
    p = write_jsonl(ROWS, tmp_path / "d.jsonl")
    with pytest.raises(UsageError, match="did you mean 'text'"):
        read_examples(p, 10, text_field="txet")
    with pytest.raises(UsageError, match="did you mean 'label'"):
        read_examples(p, 10, label_field="lable")


def test_no_text_column(tmp_path):
    p = write_jsonl([{"body": "x", "label": 1}], tmp_path / "d.jsonl")
    with pytest.raises(UsageError, match="--text-field"):
        read_examples(p, 10)


def test_unlabelled(tmp_path):
    ex = read_examples(write_jsonl([{"text": "a"}, {"text": "b"}], tmp_path / "d.jsonl"), 10)
    assert not ex.labelled and ex.label_field is None and ex.texts == ["a", "b"]


def test_all_labels_empty_is_unlabelled(tmp_path):
    ex = read_examples(write_csv([{"text": "a", "label": ""}, {"text": "b", "label": ""}], tmp_path / "d.csv"), 10)
    assert not ex.labelled


def test_some_labels_missing(tmp_path):
    p = write_jsonl([{"text": "a", "label": 1}, {"text": "b", "label": None}], tmp_path / "d.jsonl")
    with pytest.raises(UsageError, match="1 of 2 examples"):
        read_examples(p, 10)


# --- streaming ---------------------------------------------------------------------------------

def test_jsonl_streams(tmp_path):
    p = tmp_path / "d.jsonl"
    with open(p, "w") as fh:
        for i in range(5000):
            fh.write(json.dumps({"text": f"t{i}", "label": i % 2}) + "\n")
        fh.write("{this is not json\n")
    ex = read_examples(p, 5000)
    assert len(ex) == 5000
    with pytest.raises(UsageError, match="line 5001"):
        read_examples(p, 5001)


def test_csv_streams(tmp_path):
    p = tmp_path / "d.csv"
    with open(p, "w") as fh:
        fh.write("text,label\n")
        for i in range(3000):
            fh.write(f"t{i},{i % 2}\n")
        fh.write("too,many,fields\n")
    assert len(read_examples(p, 3000)) == 3000
    with pytest.raises(UsageError, match="row 3002"):
        read_examples(p, 3001)


def test_json_list_streams(tmp_path):
    p = tmp_path / "d.json"
    items = ",\n".join(json.dumps({"text": f"t{i}", "label": i % 2}) for i in range(3000))
    p.write_text("[" + items + ", {broken")
    assert len(read_examples(p, 3000)) == 3000
    with pytest.raises(UsageError, match="not valid JSON near item 3000"):
        read_examples(p, 3001)


def test_json_list_truncated_after_complete_items(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps(ROWS)[:-1])
    assert len(read_examples(p, 7)) == 7
    with pytest.raises(UsageError, match="truncated"):
        read_examples(p, 8)


@pytest.mark.parametrize("size", [(1 << 20) - 7, 1 << 20, (1 << 20) + 3, 3 * (1 << 20) + 11, 5 * (1 << 20)])
def test_json_list_items_across_chunk_borders(tmp_path, size):
    """Items as large as and larger than the 1 MiB read chunk, with borders inside strings and numbers."""
    rows = [
        {"text": "x" * size, "label": 1},
        {"label": 123456789, "text": "é" * (size // 3)},  # non-ASCII: characters != bytes
        {"text": "short", "label": 0.5e1},
        {"text": "y" * 1000, "label": "abc"},
    ]
    p = tmp_path / "d.json"
    p.write_text(json.dumps(rows), encoding="utf-8")
    ex = read_examples(p, 10, label_field="label")
    assert [len(t) for t in ex.texts] == [len(r["text"]) for r in rows]
    assert ex.labels == [1, 123456789, 5.0, "abc"]


@pytest.mark.parametrize("pad", [0, 1, 2, 3, 5, 8, 13, 100])
def test_json_list_numbers_cut_at_chunk_border(tmp_path, pad):
    """A scalar value ending exactly where a 1 MiB chunk ends must not be read as a shorter number."""
    chunk = 1 << 20
    head = '[{"text": "' + "z" * (chunk - 40 - pad) + '", "label": '
    label = "9" * 30
    body = head + label + "}"
    body += " " * max(0, chunk - len(body)) + ', {"text": "b", "label": 7}]'
    p = tmp_path / "d.json"
    p.write_text(body)
    ex = read_examples(p, 10)
    assert ex.labels == [int(label), 7]


def test_json_list_whitespace_only_separators_and_many_small_items(tmp_path):
    p = tmp_path / "d.json"
    items = [{"text": f"t{i}" * 50, "label": i % 3} for i in range(20000)]
    p.write_text("[\n" + ",\n   ".join(json.dumps(r) for r in items) + "\n]\n")
    ex = read_examples(p, 30000)
    assert len(ex) == 20000 and ex.texts[-1] == items[-1]["text"]


def test_max_examples_stops_early(tmp_path):
    ex = read_examples(write_jsonl(ROWS, tmp_path / "d.jsonl"), 2)
    assert ex.texts == [ROWS[0]["text"], ROWS[1]["text"]]


def test_ten_megabyte_single_line(tmp_path):
    import time

    p = write_jsonl([{"text": "word " * (2 * 1024 * 1024), "label": "a"}], tmp_path / "d.jsonl")
    t = time.perf_counter()
    ex = read_examples(p, 10)
    assert len(ex.texts[0]) == 10 * 1024 * 1024 and time.perf_counter() - t < 10


# --- bad files: always a one-line UsageError, never another exception ----------------------------

DEEP = "[" * 100000 + "]" * 100000
BAD_FILES = {
    "jsonl-deep-nesting": ("d.jsonl", '{"text": %s, "label": 1}\n' % DEEP, "nested too deeply"),
    "json-deep-nesting": ("d.json", '[{"text": %s, "label": 1}]' % DEEP, "nested too deeply"),
    "json-object-deep-nesting": ("d.json", '{"text": %s}' % DEEP, "nested too deeply"),
    "jsonl-5000-digit-number": ("d.jsonl", '{"text": "a", "label": %s}\n' % ("1" * 5000), "too many digits"),
    "json-5000-digit-number": ("d.json", '[{"text": "a", "label": %s}]' % ("1" * 5000), "too many digits"),
    "json-whitespace-only": ("d.json", "  \n\t ", "only whitespace"),
    "jsonl-whitespace-only": ("d.jsonl", "\n\n  \n", "no examples"),
    "json-empty-list": ("d.json", "[]", "no examples"),
    "json-scalar": ("d.json", "42", "not a JSON list"),
    "json-list-of-lists": ("d.json", '[["a", 1]]', "item 0 is a JSON list"),
    "jsonl-array-line": ("d.jsonl", '["a", 1]\n', "not an object"),
    "json-utf16": ("d.json", None, "not valid UTF-8"),
    "json-object-latin1": ("d.json", b'{"text": "caf\xe9", "label": 1}', "not valid UTF-8"),
    "csv-header-only": ("d.csv", "text,label\n", "no examples"),
    "csv-ragged": ("d.csv", "text,label\na,1,2\n", "row 2 has 3 fields"),
    "csv-nul": ("d.csv", "text,label\na\x00b,1\n", None),
    "json-nan-label": ("d.json", '[{"text": "a", "label": NaN}]', None),
    "unknown-suffix": ("d.txt", "hello", "unsupported type '.txt'"),
    "empty-file": ("d.jsonl", "", "is empty"),
    "text-is-list": ("d.jsonl", '{"text": ["a"], "label": 1}\n', "holds a list"),
    "text-is-nan": ("d.json", '[{"text": NaN, "label": 1}]', "holds a float"),
    "csv-repeated-column": ("d.csv", "text,label,label\na,x,y\n", "'label' more than once"),
    "tsv-repeated-column": ("d.tsv", "text\ttext\tlabel\na\tb\tx\n", "'text' more than once"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_files(tmp_path, name):
    fname, content, match = BAD_FILES[name]
    p = tmp_path / fname
    if content is None:
        p.write_bytes(json.dumps([{"text": "a", "label": 1}]).encode("utf-16"))
    elif isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    try:
        ex = read_examples(p, 10)
    except UsageError as exc:
        assert "\n" not in str(exc)
        if match:
            assert match in str(exc)
        return
    assert match is None, f"expected a UsageError matching {match!r}, read {len(ex)} examples"


def test_json_syntax_error_is_reported_without_reading_the_rest(tmp_path, monkeypatch):
    """A broken item near the start of a large list fails at once, not after loading the whole file."""
    import builtins

    from labeldiag.errors import UsageError
    from labeldiag.load.data import read_examples

    path = tmp_path / "big.json"
    good = ", ".join('{"text": "row %d", "label": 0}' % i for i in range(200_000))
    path.write_text('[{"text": "a", "label": 0}, {"text": "b" "label": 1}, ' + good + "]")
    reads = []
    real_open = builtins.open

    def counting_open(*args, **kwargs):
        fh = real_open(*args, **kwargs)
        original = fh.read

        def read(n=-1):
            data = original(n)
            reads.append(len(data))
            return data

        fh.read = read
        return fh

    monkeypatch.setattr(builtins, "open", counting_open)
    with pytest.raises(UsageError, match="not valid JSON near item 1"):
        read_examples(path, max_examples=10)
    assert sum(reads) <= 1 << 21  # the first chunk, not the whole ~7 MB file


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "safetensors", "pt"])
def test_a_pipe_is_refused_before_it_is_opened(tmp_path, suffix):
    """Opening a FIFO blocks until a writer comes: the reader must refuse it by its type, not read it."""
    import os

    import signal

    pipe = tmp_path / f"d.{suffix}"
    os.mkfifo(pipe)
    def expire(signum, frame):
        raise TimeoutError("read_examples blocked on the pipe")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(30)  # a blocked open() is interrupted: the test fails instead of hanging
    try:
        with pytest.raises(UsageError, match="not a regular file"):
            read_examples(pipe, 10, allow_pickle=True)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("mask_rows,match", [([0, 1, 2, 3], "example 0"), ([2], "example 2")])
def test_tensor_examples_with_an_empty_attention_mask_are_refused(tmp_path, mask_rows, match):
    import torch
    from safetensors.torch import save_file

    mask = torch.ones(4, 5, dtype=torch.long)
    mask[mask_rows] = 0
    path = tmp_path / "d.safetensors"
    save_file({"input_ids": torch.randint(5, 50, (4, 5)), "attention_mask": mask}, str(path))
    with pytest.raises(UsageError, match=f"attention_mask of {match} is all zeros"):
        read_examples(path, 10)
