"""Streaming readers for labelled examples: jsonl, json, csv, tsv, parquet, save_to_disk, .pt.

Readers yield plain dict rows and stop after what is asked for, so `--max-examples 2048` on a
1 GB file reads only the first rows. Every problem with the file becomes a one-line UsageError.
"""
from __future__ import annotations

import csv
import difflib
import functools
import io
import json
import math
import os
import sys
from itertools import islice
from pathlib import Path
from typing import Any, Iterator

from labeldiag.errors import UsageError, describe_exception, why_missing
from labeldiag.records import Examples

TEXT_PAIRS = [("sentence1", "sentence2"), ("premise", "hypothesis"), ("question", "sentence"),
              ("question", "passage"), ("question", "context"), ("text_a", "text_b"),
              ("query", "passage"), ("query", "document")]  # the last two: rerankers' rows (issue 19)
TEXT_FIELDS = ["text", "sentence", "question", "content", "review", "document", "tweet", "sentence1", "premise"]
LABEL_FIELDS = ["label", "labels", "gold_label", "class", "category", "sentiment", "target", "y"]
TENSOR_KEYS = ("input_ids", "attention_mask", "token_type_ids", "labels")
SUFFIXES = ".jsonl, .json, .csv, .tsv, .parquet, .pt, .safetensors or a datasets save_to_disk folder"


def read_examples(
    path: str | os.PathLike,
    max_examples: int,
    text_field: str | None = None,
    text_pair_field: str | None = None,
    label_field: str | None = None,
    allow_pickle: bool = False,
    label_columns: tuple[str, ...] | None = None,
    pair_fields: tuple[str, str] | None = None,
) -> Examples:
    return DataFile(path, allow_pickle).examples(max_examples, text_field, text_pair_field, label_field,
                                                 label_columns, pair_fields)


class DataFile:
    """DATA at a path, opened and read once however many times it is asked for examples (doctor's stages ask
    for different numbers of rows with different options): each call builds its Examples from the first
    max_examples rows, so it gets the rows, order and errors that a read of its own would get."""

    def __init__(self, path: str | os.PathLike, allow_pickle: bool = False):
        self.path = path
        self._allow_pickle = allow_pickle
        self._rows: RowCache | None = None
        self._tensors: Any = None  # a tensor file's dict, loaded whole
        self._class_names: Any = None  # () -> {column: ClassLabel names} that the file declares

    def examples(self, max_examples: int, text_field: str | None = None, text_pair_field: str | None = None,
                 label_field: str | None = None, label_columns: tuple[str, ...] | None = None,
                 pair_fields: tuple[str, str] | None = None) -> Examples:
        p = Path(self.path)
        if not p.exists():
            raise UsageError(f"DATA '{self.path}' {why_missing(self.path)}; pass a {SUFFIXES}")
        if max_examples <= 0:
            raise UsageError(f"--max-examples must be a positive number, got {max_examples}")
        if self._rows is None and self._tensors is None:
            self._open(p)
        if self._tensors is not None:
            return examples_from_tensors(self._tensors, str(p), max_examples)
        examples = examples_from_rows(str(p), self._rows.take(max_examples), max_examples, text_field,
                                      text_pair_field, label_field, label_columns, pair_fields)
        if self._class_names is not None:
            examples.declared_label_names = self._class_names().get(examples.label_field)
        return examples

    def _open(self, p: Path) -> None:
        suffix = p.suffix.lower()
        if p.is_dir():
            from labeldiag.load.model import refuse_special_files

            refuse_special_files(p, "DATA")
            ds = _open_dataset(p)
            self._rows, self._class_names = RowCache(iter(ds)), lambda: class_label_names(ds.features)
            return
        if not p.is_file():  # a pipe or device would block or never end
            raise UsageError(f"DATA '{self.path}' is not a regular file (a pipe, device or socket); save the "
                             "examples to a file and pass that")
        if not os.access(p, os.R_OK):
            raise UsageError(f"DATA '{self.path}' is not readable (permission denied); check its permissions")
        if suffix in (".pt", ".pth", ".bin", ".safetensors"):
            self._tensors = _load_tensor_file(p, self._allow_pickle, torch_file=suffix != ".safetensors")
            return
        readers = {".jsonl": _jsonl_rows, ".ndjson": _jsonl_rows, ".json": _json_rows,
                   ".csv": _csv_rows, ".tsv": _tsv_rows, ".parquet": _parquet_rows}
        if suffix not in readers:
            raise UsageError(f"DATA '{self.path}' has an unsupported type '{suffix or '(none)'}'; use {SUFFIXES}")
        if p.stat().st_size == 0:
            raise UsageError(f"DATA '{self.path}' is empty; it must hold at least one example")
        self._rows = RowCache(readers[suffix](p))
        if suffix == ".parquet":
            self._class_names = functools.cache(lambda: _parquet_class_names(p))


class RowCache:
    """A reader's rows, read once: take(n) gives the first n, reading on only past the rows read so far, so a
    reader's error is raised when, and only when, a read of n rows would meet it."""

    def __init__(self, rows: Iterator[dict]):
        self._rows = rows
        self._read: list[dict] = []
        self._done = False
        self._error: Exception | None = None

    def take(self, n: int) -> Iterator[dict]:
        while len(self._read) < n and not self._done:
            if self._error is not None:
                raise self._error
            try:
                self._read.append(next(self._rows))
            except StopIteration:
                self._done = True
            except Exception as exc:  # the reader stopped here: every longer read meets the same error
                self._error = exc
                raise
        return iter(self._read[:n])


# --- row sources ---------------------------------------------------------------------------

def _open_text(p: Path) -> io.TextIOWrapper:
    return open(p, encoding="utf-8-sig", newline="")


def _decode_error(p: Path, exc: UnicodeDecodeError) -> UsageError:
    return UsageError(
        f"DATA '{p}' is not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} near offset {exc.start}); "
        "re-save it as UTF-8"
    )


def _jsonl_rows(p: Path) -> Iterator[dict]:
    try:
        with _open_text(p) as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UsageError(f"DATA '{p}' line {lineno} is not valid JSON ({exc.msg}); "
                                     "each line of a .jsonl file must be one JSON object") from None
                except (ValueError, RecursionError) as exc:  # 5000-digit numbers, deep nesting
                    raise UsageError(f"DATA '{p}' line {lineno} cannot be read as JSON "
                                     f"({_json_problem(exc)})") from None
                if not isinstance(row, dict):
                    raise UsageError(f"DATA '{p}' line {lineno} is a JSON {type(row).__name__}, not an "
                                     "object; write one {{\"text\": ..., \"label\": ...}} object per line")
                yield row
    except UnicodeDecodeError as exc:
        raise _decode_error(p, exc) from None


def _json_rows(p: Path) -> Iterator[dict]:
    """A JSON list of objects, decoded incrementally so only the rows needed are parsed."""
    decoder = json.JSONDecoder()
    try:
        with _open_text(p) as fh:
            buf, pos, started, index = "", 0, False, 0
            eof = False
            while True:
                # refill when the buffer runs low
                if not eof and len(buf) - pos < 1 << 16:
                    chunk = fh.read(1 << 20)
                    eof = not chunk
                    buf = buf[pos:] + chunk
                    pos = 0
                while pos < len(buf) and buf[pos] in " \t\r\n,":
                    pos += 1
                if pos >= len(buf):
                    if eof and not started:
                        raise UsageError(f"DATA '{p}' holds only whitespace; it must hold a JSON list of objects")
                    if eof:
                        raise UsageError(f"DATA '{p}' ends before its JSON list is closed; the file is truncated")
                    continue
                if not started:
                    if buf[pos] == "{":
                        # a single object: {"data": [...]} style or one example
                        obj = _load_whole_json(p)
                        yield from _rows_of_object(p, obj)
                        return
                    if buf[pos] != "[":
                        raise UsageError(f"DATA '{p}' is not a JSON list of objects; use a list "
                                         "[{\"text\": ..., \"label\": ...}, ...] or a .jsonl file")
                    started, pos = True, pos + 1
                    continue
                if buf[pos] == "]":
                    return
                try:
                    row, end = decoder.raw_decode(buf, pos)
                except (ValueError, RecursionError) as exc:
                    if not isinstance(exc, json.JSONDecodeError):  # 5000-digit numbers, deep nesting
                        raise UsageError(f"DATA '{p}' item {index} cannot be read as JSON "
                                         f"({_json_problem(exc)})") from None
                    # only an item cut by the chunk border fails at the buffer's end (or as a string
                    # running to it); any other error is real, and reading on would load the whole file
                    cut = exc.pos >= len(buf) - 64 or exc.msg.startswith("Unterminated string")
                    if not eof and cut:
                        chunk = fh.read(1 << 22)
                        if chunk:
                            buf = buf[pos:] + chunk
                            pos = 0
                            continue
                    raise UsageError(f"DATA '{p}' is not valid JSON near item {index} ({exc.msg})") from None
                if end == len(buf) and not eof:
                    # a number or literal could be cut at the chunk border; reread with more text
                    chunk = fh.read(1 << 20)
                    if chunk:
                        buf = buf[pos:] + chunk
                        pos = 0
                        continue
                    eof = True
                if not isinstance(row, dict):
                    raise UsageError(f"DATA '{p}' item {index} is a JSON {type(row).__name__}, not an object")
                yield row
                index += 1
                pos = end
    except UnicodeDecodeError as exc:
        raise _decode_error(p, exc) from None


def _load_whole_json(p: Path) -> Any:
    try:
        with _open_text(p) as fh:
            return json.load(fh)
    except UnicodeDecodeError:
        raise
    except json.JSONDecodeError as exc:
        raise UsageError(f"DATA '{p}' is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (ValueError, RecursionError) as exc:  # 5000-digit numbers, deep nesting
        raise UsageError(f"DATA '{p}' cannot be read as JSON ({_json_problem(exc)})") from None


def _json_problem(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    text = str(exc)
    if "digits" in text:
        return "a number has too many digits"
    return text.split(";")[0][:120] or type(exc).__name__


def _rows_of_object(p: Path, obj: dict) -> Iterator[dict]:
    lists = {k: v for k, v in obj.items() if isinstance(v, list)}
    if lists and all(isinstance(v, list) for v in obj.values()):
        lengths = {len(v) for v in lists.values()}
        if len(lengths) == 1 and not any(isinstance(x, dict) for v in lists.values() for x in v[:1]):
            keys = list(lists)  # column-oriented {"text": [...], "label": [...]}
            for values in zip(*lists.values()):
                yield dict(zip(keys, values))
            return
    for key in ("data", "examples", "rows", "train", "test", "validation"):
        if isinstance(obj.get(key), list):
            for i, row in enumerate(obj[key]):
                if not isinstance(row, dict):
                    raise UsageError(f"DATA '{p}' item {i} of '{key}' is not an object")
                yield row
            return
    yield obj


def _csv_rows(p: Path, delimiter: str = ",") -> Iterator[dict]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long documents are fine
    try:
        with _open_text(p) as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            header = next(reader, None)
            if not header:
                raise UsageError(f"DATA '{p}' has no header row; the first row must name the columns")
            header = [h.strip() for h in header]
            repeated = sorted({h for h in header if header.count(h) > 1})
            if repeated:
                raise UsageError(f"DATA '{p}' names column '{repeated[0]}' more than once in its header; give "
                                 "each column its own name")
            for lineno, values in enumerate(reader, 2):
                if not values:
                    continue
                if len(values) != len(header):
                    raise UsageError(f"DATA '{p}' row {lineno} has {len(values)} fields but the header "
                                     f"has {len(header)}; quote fields that contain the delimiter")
                yield dict(zip(header, values))
    except UnicodeDecodeError as exc:
        raise _decode_error(p, exc) from None
    except csv.Error as exc:
        raise UsageError(f"DATA '{p}' is not a valid {'TSV' if delimiter == chr(9) else 'CSV'} file ({exc})") from None


def _tsv_rows(p: Path) -> Iterator[dict]:
    return _csv_rows(p, delimiter="\t")


def _parquet_rows(p: Path) -> Iterator[dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError("reading .parquet needs pyarrow: pip install 'labeldiag[data]'") from None
    try:
        pf = pq.ParquetFile(p)
        for batch in pf.iter_batches(batch_size=1024):
            yield from batch.to_pylist()
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"DATA '{p}' is not a readable parquet file ({type(exc).__name__}: {exc})") from None


def class_label_names(features: Any) -> dict[str, list[str]]:
    """Column -> class names in index order, for every ClassLabel column of datasets Features (or their JSON)."""
    out: dict[str, list[str]] = {}
    if not isinstance(features, dict):
        return out
    for column, feature in features.items():
        if type(feature).__name__ in ("List", "Sequence") or (isinstance(feature, dict) and feature.get("_type") in (
                "List", "Sequence")):  # per-token tags (issue 22): a list of ClassLabel
            feature = feature.get("feature") if isinstance(feature, dict) else getattr(feature, "feature", None)
        if isinstance(feature, dict):  # the JSON form in parquet metadata / dataset_info.json
            names = feature.get("names") if feature.get("_type") == "ClassLabel" else None
        else:
            names = getattr(feature, "names", None) if type(feature).__name__ == "ClassLabel" else None
        if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
            out[str(column)] = names
    return out


def _parquet_class_names(p: Path) -> dict[str, list[str]]:
    """ClassLabel names that datasets wrote into the parquet schema metadata ({} when none or unreadable)."""
    try:
        import pyarrow.parquet as pq

        meta = pq.read_schema(p).metadata or {}
        info = json.loads(meta.get(b"huggingface", b"{}"))
    except Exception:
        return {}  # the rows were read already; metadata is an extra, never a reason to fail
    features = (info.get("info") or {}).get("features") if isinstance(info, dict) else None
    return class_label_names(features)


def _open_dataset(p: Path) -> Any:
    markers = ("dataset_info.json", "state.json", "dataset_dict.json")
    if not any((p / m).exists() for m in markers):
        raise UsageError(f"DATA '{p}' is a folder but not a datasets save_to_disk folder; pass a file ({SUFFIXES})")
    try:
        import datasets
    except ImportError:
        raise UsageError("reading a save_to_disk folder needs datasets: pip install 'labeldiag[data]'") from None
    try:
        ds = datasets.load_from_disk(str(p))
    except Exception as exc:
        raise UsageError(f"DATA '{p}' could not be read by datasets.load_from_disk ({type(exc).__name__}: {exc})") from None
    if isinstance(ds, datasets.DatasetDict):
        for split in ("validation", "test", "train"):
            if split in ds:
                ds = ds[split]
                break
        else:
            ds = ds[next(iter(ds))]
    return ds


# --- tensors -----------------------------------------------------------------------------------

def _load_tensor_file(p: Path, allow_pickle: bool, torch_file: bool) -> Any:
    import torch

    if torch_file:
        if not allow_pickle:
            raise UsageError(f"DATA '{p}' is a pickle-based torch file; loading it can run code. Pass "
                             "--allow-pickle if you trust it (it is then read with weights_only=True), "
                             "or save the tensors with safetensors")
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise UsageError(f"DATA '{p}' could not be loaded safely ({describe_exception(exc)}); only tensors "
                             "are allowed") from None
    else:
        try:
            from safetensors.torch import load_file

            obj = load_file(str(p))
        except Exception as exc:
            raise UsageError(f"DATA '{p}' is not a valid safetensors file ({type(exc).__name__})") from None
    return obj


def examples_from_tensors(obj: Any, p: str, max_examples: int) -> Examples:
    """A dict of tokenized tensors (a .pt/.safetensors file, a BatchEncoding, a dict from the API) -> Examples."""
    import numpy as np
    import torch

    if not isinstance(obj, dict) and hasattr(obj, "keys") and hasattr(obj, "__getitem__"):
        obj = {k: obj[k] for k in obj.keys()}  # BatchEncoding and other mappings
    if not isinstance(obj, dict) or "input_ids" not in obj:
        raise UsageError(f"DATA '{p}' must hold a dict of tensors with at least 'input_ids' "
                         f"(and attention_mask, token_type_ids, labels); found {_describe(obj)}")
    arrays: dict[str, Any] = {}
    for key, value in obj.items():
        if key not in TENSOR_KEYS:
            continue
        if not isinstance(value, torch.Tensor):
            try:
                value = torch.as_tensor(value)
            except Exception:
                raise UsageError(f"DATA '{p}': '{key}' is not a tensor") from None
        arrays[key] = value
    for key, value in arrays.items():
        if value.is_complex() or (value.dtype == torch.bool and key in ("input_ids", "labels")):
            raise UsageError(f"DATA '{p}': '{key}' has dtype {str(value.dtype).replace('torch.', '')}; "
                             "token ids, masks and labels must be integers")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise UsageError(f"DATA '{p}': '{key}' holds NaN or inf; token ids, masks and labels must be "
                             "finite integers")
    ids = arrays["input_ids"]
    if ids.dim() != 2:
        raise UsageError(f"DATA '{p}': input_ids must be 2-D [examples, tokens], got shape {tuple(ids.shape)}")
    if ids.is_floating_point() and not torch.equal(ids, ids.round()):
        raise UsageError(f"DATA '{p}': input_ids hold non-integer values; token ids must be integers")
    if ids.numel() and (float(ids.min()) < 0 or float(ids.max()) >= 2**31):
        raise UsageError(f"DATA '{p}': input_ids hold ids outside 0..2**31-1 (min {float(ids.min()):g}, "
                         f"max {float(ids.max()):g}); token ids must be vocabulary indices")
    if ids.shape[1] == 0:
        raise UsageError(f"DATA '{p}': input_ids has no token positions (shape {tuple(ids.shape)})")
    n = ids.shape[0]
    if n == 0:
        raise UsageError(f"DATA '{p}' holds no examples")
    for key in ("attention_mask", "token_type_ids"):
        if key in arrays and tuple(arrays[key].shape) != tuple(ids.shape):
            raise UsageError(f"DATA '{p}': {key} has shape {tuple(arrays[key].shape)} but input_ids has "
                             f"{tuple(ids.shape)}; they must match")
    if "attention_mask" in arrays:
        empty = (arrays["attention_mask"][:max_examples] == 0).all(dim=1).nonzero().flatten()
        if empty.numel():
            raise UsageError(f"DATA '{p}': the attention_mask of example {int(empty[0])} is all zeros "
                             f"({empty.numel()} such example(s)), so it has no token to read; drop those "
                             "examples or fix the mask")
    if "token_type_ids" in arrays and arrays["token_type_ids"].numel() and float(arrays["token_type_ids"].min()) < 0:
        raise UsageError(f"DATA '{p}': token_type_ids hold negative values; segment ids are 0 or 1")
    labels = None
    token_level = "labels" in arrays and tuple(arrays["labels"].shape) == tuple(ids.shape)  # issue 22
    if token_level:
        labels = [[int(v) for v in row] for row in arrays["labels"][:max_examples].long().tolist()]
    elif "labels" in arrays:
        lab = arrays["labels"]
        if lab.dim() != 1 or lab.shape[0] != n:
            raise UsageError(f"DATA '{p}': labels must be 1-D with one label per example ({n}), got "
                             f"shape {tuple(lab.shape)}")
        lab = lab[:max_examples]
        labels = [float(v) for v in lab.tolist()] if lab.is_floating_point() else [int(v) for v in lab.tolist()]
    tokenized = {k: arrays[k][:max_examples].long().numpy() for k in ("input_ids", "attention_mask", "token_type_ids") if k in arrays}
    if "attention_mask" not in tokenized:
        tokenized["attention_mask"] = np.ones_like(tokenized["input_ids"])
    return Examples(path=str(p), columns=sorted(arrays), labels=labels, tokenized=tokenized,
                    label_field="labels" if labels is not None else None, token_level=token_level)


def _describe(obj: Any) -> str:
    if isinstance(obj, dict):
        return "keys " + ", ".join(map(str, list(obj)[:8]))
    return type(obj).__name__


# --- rows -> Examples ----------------------------------------------------------------------

def _closest(name: str, options: list[str]) -> str:
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    if not match:
        match = [o for o in options if o.lower() == name.lower()]
    return f"; did you mean '{match[0]}'?" if match else ""


def _pick_fields(columns: list[str], text_field, pair_field, label_field, path: str):
    cols = list(columns)
    # a column name is the data's text: quoted, so a newline or an empty name stays visible and on one line
    found = ", ".join(repr(c) if not c.isprintable() or not c.strip() else c for c in map(str, cols)) or "(none)"
    for name, flag in ((text_field, "--text-field"), (pair_field, "--text-pair-field"), (label_field, "--label-field")):
        if name is not None and name not in cols:
            raise UsageError(f"{flag} '{name}' is not a column of DATA '{path}'{_closest(name, cols)} "
                             f"(columns found: {found})")
    if text_field is None:
        for a, b in TEXT_PAIRS:
            if a in cols and b in cols:
                text_field, pair_field = a, pair_field or b
                break
        else:
            text_field = next((c for c in TEXT_FIELDS if c in cols), None)
    if text_field is None:
        lower = {c.lower(): c for c in cols}
        text_field = next((lower[c] for c in TEXT_FIELDS if c in lower), None)
    if text_field is None:
        raise UsageError(f"no text column found in DATA '{path}' (columns found: {found}); name it "
                         "with --text-field")
    if label_field is None:
        label_field = next((c for c in LABEL_FIELDS if c in cols and c not in (text_field, pair_field)), None)
        if label_field is None:
            lower = {c.lower(): c for c in cols}
            label_field = next((lower[c] for c in LABEL_FIELDS if c in lower), None)
    return text_field, pair_field, label_field


def examples_from_rows(path: str, rows: Iterator[dict], max_examples: int, text_field, pair_field,
                       label_field, label_columns: tuple[str, ...] | None = None,
                       pair_fields: tuple[str, str] | None = None) -> Examples:
    """Rows of a file, a list of dicts, a DataFrame or a datasets.Dataset -> Examples."""
    taken = list(islice(rows, max_examples))
    if not taken:
        raise UsageError(f"DATA '{path}' holds no examples")
    columns: list[str] = []
    for row in taken[:50]:
        for key in row:
            if key not in columns:
                columns.append(str(key))
    if pair_fields or (text_field is None and {"chosen", "rejected"} <= set(columns)):
        return _preference_pairs(path, taken, columns, pair_fields or ("chosen", "rejected"))
    if label_columns:
        return _with_label_columns(path, taken, columns, label_columns, text_field, pair_field, label_field)
    if _word_lists(taken, text_field or WORDS_FIELD):
        from labeldiag.load.tagged import tagged_words

        return tagged_words(path, taken, columns, text_field or WORDS_FIELD, label_field)
    text_field, pair_field, label_field = _pick_fields(columns, text_field, pair_field, label_field, path)
    texts, pairs, labels = [], [] if pair_field else None, [] if label_field else None
    missing_label = 0
    for i, row in enumerate(taken):
        texts.append(_as_text(row.get(text_field), text_field, i, path))
        if pair_field:
            pairs.append(_as_text(row.get(pair_field), pair_field, i, path))
        if label_field:
            value = row.get(label_field)
            if value is None or (isinstance(value, str) and not value.strip()):
                missing_label += 1
            labels.append(value)
    if labels is not None and missing_label:
        if missing_label == len(labels):
            labels = None
        else:
            raise UsageError(f"{missing_label} of {len(labels)} examples in DATA '{path}' have no value in "
                             f"label column '{label_field}'; fill them in or drop those rows")
    return Examples(path=path, columns=columns, texts=texts, pairs=pairs, labels=labels,
                    text_field=text_field, pair_field=pair_field,
                    label_field=label_field if labels is not None else None)


WORDS_FIELD = "tokens"  # CoNLL-style datasets store each sentence as a word list under this name


def _word_lists(taken: list[dict], name: str) -> bool:
    """True when the column holds word lists (token classification data), not texts."""
    value = taken[0].get(name)
    return isinstance(value, (list, tuple)) and all(isinstance(w, str) for w in value)


def _with_label_columns(path: str, taken: list[dict], columns: list[str], label_columns: tuple[str, ...],
                        text_field, pair_field, label_field) -> Examples:
    """Multi-label rows with one 0/1 column per label: each example's labels become its 0/1 vector."""
    if label_field is not None:
        raise UsageError("give either --label-field or --label-columns, not both")
    for name in label_columns:
        if name not in columns:
            raise UsageError(f"--label-columns '{name}' is not a column of DATA '{path}'{_closest(name, columns)} "
                             f"(columns found: {', '.join(columns)})")
    others = [c for c in columns if c not in label_columns]
    text_field, pair_field, _ = _pick_fields(others, text_field, pair_field, None, path)
    examples = examples_from_rows(path, iter([{k: row.get(k) for k in others} for row in taken]), len(taken),
                                  text_field, pair_field, None)
    labels = []
    for i, row in enumerate(taken):
        missing = [c for c in label_columns if row.get(c) is None or (isinstance(row.get(c), str) and not row[c].strip())]
        if missing:
            raise UsageError(f"example {i} in DATA '{path}' has no value in label column '{missing[0]}'; fill it "
                             "in with 0 or 1")
        labels.append([row[c] for c in label_columns])
    examples.labels, examples.label_field, examples.columns = labels, ",".join(label_columns), columns
    return examples


def _preference_pairs(path: str, taken: list[dict], columns: list[str], fields: tuple[str, str]) -> Examples:
    """TRL's preference rows {"chosen", "rejected"} (with an optional "prompt" put in front of both, as TRL's
    RewardTrainer does): texts become the chosen texts, then the rejected ones."""
    for name in fields:
        if name not in columns:
            raise UsageError(f"--pair-fields '{name}' is not a column of DATA '{path}'{_closest(name, columns)} "
                             f"(columns found: {', '.join(columns)})")
    chosen, rejected = [], []
    for i, row in enumerate(taken):
        prompt = row.get("prompt") if "prompt" not in fields else None
        prefix = _as_text(prompt, "prompt", i, path) if prompt is not None else ""
        for name, side in zip(fields, (chosen, rejected)):
            value = row.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise UsageError(f"pair {i} in DATA '{path}' has no '{name}' text; every pair needs both sides")
            side.append(prefix + _as_text(value, name, i, path))
    return Examples(path=path, columns=columns, texts=chosen + rejected, text_field=",".join(fields),
                    preference_pairs=len(chosen))


def _as_text(value: Any, field_name: str, index: int, path: str) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        raise UsageError(f"example {index} in DATA '{path}' has no value in text column '{field_name}'; "
                         "fill it in or drop the row")
    if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
        return str(value)
    raise UsageError(f"example {index} in DATA '{path}': text column '{field_name}' holds a "
                     f"{type(value).__name__}, not a string")


TOKENIZED_LABEL_COLUMNS = ("labels", "label")  # what a Trainer reads, then the raw dataset's column


def examples_from_token_dataset(ds: Any, name: str, max_examples: int, label_field: str | None) -> Examples:
    """A tokenized datasets.Dataset (rows of input_ids [, attention_mask, token_type_ids] of any length, and
    labels) -> Examples, read like a tokenized tensor file: the rows are padded on the right, masked out."""
    import numpy as np

    columns = list(ds.column_names)
    if label_field is not None and label_field not in columns:
        raise UsageError(f"label field '{label_field}' is not a column of {name}; columns: {', '.join(columns)}")
    label_column = label_field or next((c for c in TOKENIZED_LABEL_COLUMNS if c in columns), None)
    ds = ds.select(range(min(len(ds), max_examples))).with_format(None)  # python lists, whatever set_format said
    ids = [list(row) for row in ds["input_ids"]]
    if not ids:
        raise UsageError(f"DATA '{name}' holds no examples")
    if any(not isinstance(row, list) or (row and isinstance(row[0], list)) for row in ids):
        raise UsageError(f"DATA '{name}': input_ids must hold one list of token ids per example")
    width = max(len(row) for row in ids)
    arrays = {"input_ids": np.zeros((len(ids), width), dtype=np.int64),
              "attention_mask": np.zeros((len(ids), width), dtype=np.int64)}
    for i, row in enumerate(ids):
        arrays["input_ids"][i, :len(row)] = row
        arrays["attention_mask"][i, :len(row)] = 1
    for key in ("attention_mask", "token_type_ids"):
        if key in columns:
            values = [list(row) for row in ds[key]]
            if any(len(v) != len(row) for v, row in zip(values, ids)):
                raise UsageError(f"DATA '{name}': {key} and input_ids differ in length in some rows; they must match")
            arrays[key] = np.zeros((len(ids), width), dtype=np.int64)
            for i, v in enumerate(values):
                arrays[key][i, :len(v)] = v
    examples = examples_from_tensors(arrays, name, max_examples)
    examples.columns = columns
    if label_column is not None:
        examples.labels = list(ds[label_column])
        examples.label_field = label_column
        examples.declared_label_names = class_label_names(ds.features).get(label_column)
    return examples
