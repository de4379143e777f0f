"""Hypothesis: the data readers and the label mapping raise nothing but UsageError, whatever they get."""
from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from labeldiag.errors import UsageError  # noqa: E402
from labeldiag.load.data import read_examples  # noqa: E402
from labeldiag.records import ModelInfo  # noqa: E402

SETTINGS = settings(max_examples=int(__import__("os").environ.get("FUZZ_N", "60")), deadline=None, suppress_health_check=list(HealthCheck), derandomize=not __import__("os").environ.get("FUZZ_N"))

COLUMN_NAMES = st.one_of(st.sampled_from(["text", "label", "labels", "sentence", "sentence1", "sentence2",
                                          "premise", "hypothesis", "question", "gold_label", "Text", "LABEL",
                                          "id", ""]),
                         st.text(max_size=8))
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-3, max_value=5),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["0", "1", "2", "-1", "1.5", "1e999", "nan", "sport", " tech ", "9" * 5000, "", "\u2028", "\x00"]),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.text(max_size=4), SCALARS, max_size=2))
ROWS = st.lists(st.dictionaries(COLUMN_NAMES, VALUES, max_size=5), min_size=0, max_size=8)
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252", "utf-32"])
FORMATS = st.sampled_from(["jsonl", "json", "json-columns", "csv", "tsv", "parquet"])


def _write(rows: list[dict], fmt: str, encoding: str, folder: Path) -> Path:
    suffix = {"json-columns": "json"}.get(fmt, fmt)
    path = folder / f"data.{suffix}"
    if fmt == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False, allow_nan=True) + "\n" for r in rows)
    elif fmt == "json":
        text = json.dumps(rows, ensure_ascii=False, allow_nan=True)
    elif fmt == "json-columns":
        keys = sorted({k for r in rows for k in r})
        text = json.dumps({k: [r.get(k) for r in rows] for k in keys}, ensure_ascii=False)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pq.write_table(pa.Table.from_pylist(rows), path)
        except Exception:  # pyarrow cannot type or store the mix: write strings instead
            pq.write_table(pa.Table.from_pylist([{str(k): repr(v) for k, v in r.items()} for r in rows]), path)
        return path
    else:
        buf = io.StringIO()
        keys = list(dict.fromkeys(k for r in rows for k in r))
        w = csv.writer(buf, delimiter="," if fmt == "csv" else "\t")
        w.writerow(keys)
        for r in rows:
            w.writerow(["" if r.get(k) is None else str(r.get(k)) for k in keys])
        text = buf.getvalue()
    path.write_bytes(text.encode(encoding, errors="replace"))
    return path


def _read(path: Path, **kw):
    try:
        return read_examples(path, **kw)
    except UsageError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg.strip() and len(msg) < 2000, msg
        return None


@SETTINGS
@given(rows=ROWS, fmt=FORMATS, encoding=ENCODINGS, max_examples=st.integers(-1, 10),
       fields=st.tuples(st.none() | COLUMN_NAMES, st.none() | COLUMN_NAMES, st.none() | COLUMN_NAMES))
def test_readers_only_raise_usage_error(rows, fmt, encoding, max_examples, fields):
    pytest.importorskip("pyarrow")
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(rows, fmt, encoding, Path(tmp))
        ex = _read(path, max_examples=max_examples, text_field=fields[0], text_pair_field=fields[1],
                   label_field=fields[2])
        if ex is not None:
            assert 0 < len(ex) <= max_examples
            assert all(isinstance(t, str) for t in ex.texts)
            if ex.labels is not None:
                assert len(ex.labels) == len(ex.texts)


@SETTINGS
@given(data=st.binary(max_size=300), suffix=st.sampled_from(["jsonl", "json", "csv", "tsv", "parquet", "pt",
                                                            "safetensors"]),
       prefix=st.sampled_from([b"", b"[", b"{", b'[{"text": "a", "label": 1},', b"text,label\n", b"\xef\xbb\xbf"]))
def test_readers_on_random_bytes(data, suffix, prefix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data.{suffix}"
        path.write_bytes(prefix + data)
        _read(path, max_examples=5, allow_pickle=True)


@SETTINGS
@given(text=st.text(max_size=200), cut=st.integers(0, 400))
def test_json_list_truncated_anywhere(text, cut):
    """Any prefix of a valid JSON list either reads (the complete items) or fails with UsageError."""
    rows = [{"text": text, "label": i} for i in range(3)]
    full = json.dumps(rows, ensure_ascii=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.json"
        path.write_text(full[: cut % (len(full) + 1)], encoding="utf-8")
        ex = _read(path, max_examples=10)
        if ex is not None:
            assert ex.texts == [text] * len(ex)


@SETTINGS
@given(shape=st.lists(st.integers(0, 4), min_size=0, max_size=3),
       dtype=st.sampled_from(["int64", "int32", "float32", "float64", "bool", "uint8", "complex64"]),
       fill=st.sampled_from([0.0, 1.0, -1.0, 2.5, math.nan, math.inf, 1e30]),
       mask_shape=st.none() | st.lists(st.integers(0, 4), min_size=0, max_size=3),
       labels_shape=st.none() | st.lists(st.integers(0, 4), min_size=0, max_size=2),
       labels_fill=st.sampled_from([0, 1, 2.5, math.nan, -1, 1e30]),
       fmt=st.sampled_from(["pt", "safetensors"]))
def test_tensor_files(shape, dtype, fill, mask_shape, labels_shape, labels_fill, fmt):
    import torch

    t = {"input_ids": torch.full(shape, fill).to(getattr(torch, dtype))}
    if mask_shape is not None:
        t["attention_mask"] = torch.full(mask_shape, fill).to(getattr(torch, dtype))
    if labels_shape is not None:
        t["labels"] = torch.full(labels_shape, float(labels_fill))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data.{fmt}"
        try:
            if fmt == "pt":
                torch.save(t, path)
            else:
                from safetensors.torch import save_file

                save_file({k: v.contiguous() for k, v in t.items()}, str(path))
        except Exception:
            return  # safetensors cannot store it (e.g. complex)
        ex = _read(path, max_examples=3, allow_pickle=True)
        if ex is not None:
            ids = ex.tokenized["input_ids"]
            assert ids.ndim == 2 and ids.shape[0] >= 1 and (ids >= 0).all()
            assert ex.tokenized["attention_mask"].shape == ids.shape


# --- labels ------------------------------------------------------------------------------------

LABEL_VALUES = st.one_of(
    st.integers(), st.integers(-2, 5), st.booleans(), st.floats(), st.text(max_size=10),
    st.sampled_from(["sport", "politics", "tech", "Sport", "0", "1", "2", "3", "-0", "+1", "1.0", "1e999",
                     "-1e999", "nan", "inf", "9" * 5000, "٣", "1_0", " 2 ", ""]),
    st.none(), st.lists(st.integers(), max_size=2), st.just(np.int64(1)), st.just(np.float32(0.5)),
    st.just(np.bool_(True)), st.just(b"bytes"),
)


def _info(names: list[str] | None, num_labels: int) -> ModelInfo:
    id2label = {i: (names[i] if names and i < len(names) else f"LABEL_{i}") for i in range(num_labels)}
    return ModelInfo(path="m", class_name="X", model_type="bert", num_labels=num_labels, id2label=id2label,
                     label2id={v: k for k, v in id2label.items()}, problem_type=None)


@SETTINGS
@given(values=st.lists(LABEL_VALUES, max_size=12), homogeneous=st.booleans(),
       names=st.none() | st.lists(st.sampled_from(["sport", "politics", "tech", "a", "b"]), max_size=4, unique=True),
       num_labels=st.integers(1, 5))
def test_label_mapping_only_raises_usage_error(values, homogeneous, names, num_labels):
    from labeldiag.checks.labels import label_kind, map_labels

    if homogeneous and values:
        values = [v for v in values if type(v) is type(values[0])] or values[:1]
    try:
        kind, parsed = label_kind(values)
    except UsageError:
        return
    assert kind in ("int", "float", "str") and len(parsed) == len(values)
    if kind == "float":
        assert all(math.isfinite(x) for x in parsed)
    try:
        gold, findings = map_labels(values, _info(names, num_labels), num_labels)
    except UsageError:
        return
    assert gold.indices.shape == (len(values),)
    assert ((gold.indices >= -1) & (gold.indices < max(num_labels, 1))).all()
    for f in findings:
        json.dumps(f.to_dict())  # evidence must stay JSON-serialisable


# --- checkpoint files: config.json, adapter_config.json, tokenizer files ------------------------------

# loading a model per example costs ~0.5 s: fewer examples than the reader fuzzers, a few seconds each
LOAD_SETTINGS = settings(max_examples=int(__import__("os").environ.get("FUZZ_LOAD_N", "10")), deadline=None,
                         suppress_health_check=list(HealthCheck), derandomize=not __import__("os").environ.get("FUZZ_N"))
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.floats(allow_nan=True), st.text(max_size=12),
              st.sampled_from(["bert", "roberta", "not-a-type", "LABEL_0", "single_label_classification", ""])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)
RAW_JSON_TAILS = st.sampled_from([b"", b"{", b"[" * 50_000, b'{"num_labels": ' + b"9" * 5000 + b"}", b"\xff\xfe",
                                  b"\x00" * 16, b"null", b'"text"'])


def _mutated(original: dict, changes: dict, drop: list[str]) -> dict:
    out = {k: v for k, v in original.items() if k not in drop}
    out.update(changes)
    return out


def _only_usage_errors(fn):
    """Run fn; a UsageError (one line) is a fine answer, anything else escapes and fails the test."""
    try:
        return fn()
    except UsageError as exc:
        assert str(exc).strip() and "\n" not in str(exc).strip(), str(exc)
        return None


@pytest.fixture(scope="module")
def fuzz_ckpt(trained, tmp_path_factory):
    import shutil

    return Path(shutil.copytree(trained["checkpoint"], tmp_path_factory.mktemp("fuzz") / "ckpt"))


@LOAD_SETTINGS
@given(changes=st.dictionaries(st.sampled_from(["model_type", "num_labels", "id2label", "label2id", "problem_type",
                                                 "architectures", "hidden_size", "num_attention_heads", "vocab_size",
                                                 "max_position_embeddings", "type_vocab_size", "pad_token_id",
                                                 "auto_map", "torch_dtype"]), JSON_VALUES, max_size=3),
       drop=st.lists(st.sampled_from(["model_type", "num_labels", "id2label", "label2id", "architectures"]),
                     max_size=2),
       raw=st.none() | RAW_JSON_TAILS)
def test_config_json_only_raises_usage_error(fuzz_ckpt, changes, drop, raw):
    from labeldiag.load.model import load_model

    config = fuzz_ckpt / "config.json"
    original = config.read_bytes()
    try:
        config.write_bytes(raw if raw is not None else json.dumps(
            _mutated(json.loads(original), changes, drop), allow_nan=True).encode())
        loaded = _only_usage_errors(lambda: load_model(str(fuzz_ckpt), need_tokenizer=False))
        if loaded is not None:
            assert loaded.info.num_labels >= 0 and all(isinstance(v, str) for v in loaded.info.id2label.values())
    finally:
        config.write_bytes(original)


@pytest.fixture(scope="module")
def fuzz_adapter(trained, tmp_path_factory):
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForSequenceClassification

    out = tmp_path_factory.mktemp("fuzz") / "adapter"
    model = AutoModelForSequenceClassification.from_pretrained(trained["checkpoint"])
    peft.get_peft_model(model, peft.LoraConfig(task_type=peft.TaskType.SEQ_CLS, r=2, target_modules=["query"])
                        ).save_pretrained(out)
    return out


@LOAD_SETTINGS
@given(changes=st.dictionaries(st.sampled_from(["base_model_name_or_path", "peft_type", "task_type", "r",
                                                 "lora_alpha", "target_modules", "modules_to_save", "fan_in_fan_out",
                                                 "layers_to_transform", "bias", "inference_mode"]),
                               st.one_of(JSON_VALUES, st.just("."), st.just("/")), max_size=3),
       drop=st.lists(st.sampled_from(["base_model_name_or_path", "peft_type", "target_modules"]), max_size=1),
       raw=st.none() | RAW_JSON_TAILS)
def test_adapter_config_json_only_raises_usage_error(fuzz_adapter, changes, drop, raw):
    from labeldiag.load.model import load_model

    config = fuzz_adapter / "adapter_config.json"
    original = config.read_bytes()
    try:
        config.write_bytes(raw if raw is not None else json.dumps(
            _mutated(json.loads(original), changes, drop), allow_nan=True).encode())
        _only_usage_errors(lambda: load_model(str(fuzz_adapter), need_tokenizer=False))
    finally:
        config.write_bytes(original)


@LOAD_SETTINGS
@given(name=st.sampled_from(["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]),
       changes=st.dictionaries(st.sampled_from(["model_max_length", "do_lower_case", "tokenizer_class", "unk_token",
                                                 "pad_token", "cls_token", "mask_token", "padding_side",
                                                 "truncation", "model", "added_tokens", "normalizer",
                                                 "post_processor"]), JSON_VALUES, max_size=3),
       raw=st.none() | RAW_JSON_TAILS | st.binary(max_size=200))
def test_tokenizer_files_only_raise_usage_error(fuzz_ckpt, name, changes, raw):
    from labeldiag.records import Examples
    from labeldiag.load.model import load_tokenizer
    from labeldiag.measure.encode import default_max_length, encode

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for f in fuzz_ckpt.glob("tokenizer*.json"):
            (folder / f.name).write_bytes(f.read_bytes())
        target = folder / name
        if raw is not None or not target.exists():
            target.write_bytes(raw or b"")
        else:
            target.write_text(json.dumps(_mutated(json.loads(target.read_text()), changes, []), allow_nan=True))
        tok = _only_usage_errors(lambda: load_tokenizer(str(folder), False, explicit=True))
        if tok is not None:
            examples = Examples(path="d", columns=["text"], texts=["the team won the match", ""])
            _only_usage_errors(lambda: encode(examples, tok, default_max_length(tok, 64), 1000, 64))
