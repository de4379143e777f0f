"""What the Python API accepts besides paths: a model object, a tokenizer object, in-memory data."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from labeldiag.errors import UsageError
from labeldiag.load.data import (DataFile, class_label_names, examples_from_rows, examples_from_tensors,
                                 examples_from_token_dataset)
from labeldiag.load.model import LoadedModel, _model_info, load_model, load_tokenizer
from labeldiag.records import Examples, LoadAudit


def is_path(value: Any) -> bool:
    import os

    return isinstance(value, (str, os.PathLike))


def describe(value: Any) -> str:
    """How an in-memory input is named in the report: '<in-memory BertForSequenceClassification>'."""
    if isinstance(value, DataSource):
        return describe(value.data)
    if is_path(value):
        return str(value)
    if isinstance(value, LoadedModel):
        return value.info.path
    size = ""
    try:
        size = f" of {len(value)}"
    except TypeError:
        pass
    return f"<in-memory {type(value).__name__}{size}>"


def adopt_model(net: Any, tokenizer: Any, need_tokenizer: bool, trust_remote_code: bool) -> LoadedModel:
    """An in-memory model: nothing was loaded, so the load audit is empty; the caller keeps ownership."""
    import torch

    if not isinstance(net, torch.nn.Module):
        raise UsageError(f"model must be a checkpoint path, a hub id or a torch.nn.Module, got {type(net).__name__}")
    base_prefix = getattr(net, "base_model_prefix", None) or None
    if base_prefix and not hasattr(net, base_prefix):
        base_prefix = None
    info = _model_info(net, describe(net), "memory")
    tok = resolve_tokenizer(tokenizer, getattr(net, "name_or_path", None), need_tokenizer, trust_remote_code)
    return LoadedModel(model=net, tokenizer=tok, info=info, audit=LoadAudit(source="memory"), base_prefix=base_prefix)


def resolve_tokenizer(tokenizer: Any, model_folder: str | None, needed: bool, trust_remote_code: bool) -> Any:
    if tokenizer is not None and not is_path(tokenizer):
        if not callable(tokenizer):
            raise UsageError(f"tokenizer must be a path or a tokenizer object, got {type(tokenizer).__name__}")
        return tokenizer
    if tokenizer is not None:
        return load_tokenizer(str(tokenizer), trust_remote_code, explicit=True)
    if not needed:
        return None
    if model_folder and Path(model_folder).is_dir():
        return load_tokenizer(model_folder, trust_remote_code, explicit=False)
    raise UsageError("text data needs a tokenizer: pass tokenizer=... (a path or a tokenizer object) or "
                     "pre-tokenized data (a dict of tensors)")


def needs_tokenizer(examples: Examples, tokenizer: Any, opts: Any) -> bool:
    """Text must be tokenized; pre-tokenized data needs a tokenizer only when one is given or label words are."""
    return examples.tokenized is None or tokenizer is not None or bool(opts.label_tokens)


def load(model: Any, tokenizer: Any, opts: Any, need_tokenizer: bool) -> LoadedModel:
    if isinstance(model, LoadedModel):  # loaded once by the caller (doctor) and shared by its stages
        return model
    if opts.num_labels is not None and not is_path(model):
        raise UsageError("labels / num_labels attach a head when model is a checkpoint path; give a model object "
                         "the head you want (from_pretrained(..., num_labels=N, id2label=...))")
    if is_path(model):
        loaded = load_model(str(model), opts.model_class, None if tokenizer is None or not is_path(tokenizer)
                            else str(tokenizer), opts.trust_remote_code, opts.allow_pickle,
                            need_tokenizer=need_tokenizer and (tokenizer is None or is_path(tokenizer)),
                            labels=opts.labels, num_labels=opts.num_labels, task=opts.task,
                            device_map=getattr(opts, "device_map", None), max_memory=getattr(opts, "max_memory", None))
        if tokenizer is not None and not is_path(tokenizer):
            loaded.tokenizer = resolve_tokenizer(tokenizer, None, True, opts.trust_remote_code)
        return loaded
    if opts.model_class:
        raise UsageError("model_class only applies when model is a path; pass the model object itself")
    if getattr(opts, "device_map", None) is not None:
        raise UsageError("device_map applies when model is a checkpoint path; pass a model already loaded with "
                         "from_pretrained(..., device_map='auto') instead")
    return adopt_model(model, tokenizer, need_tokenizer, opts.trust_remote_code)


class DataSource:
    """DATA for a run whose stages read it with different options (doctor): handed to a stage in place of
    DATA, it gives each stage what reading DATA would, from one read of a DATA path. In-memory data is
    already in memory, and each stage takes its rows from it as a read would."""

    def __init__(self, data: Any, allow_pickle: bool):
        self.data = data
        self._file = DataFile(data, allow_pickle) if is_path(data) else None

    def examples(self, opts: Any) -> Examples:
        if self._file is None:
            return read(self.data, opts)
        return self._file.examples(opts.max_examples, opts.text_field, opts.text_pair_field, opts.label_field,
                                   getattr(opts, "label_columns", None), getattr(opts, "pair_fields", None))


def read(data: Any, opts: Any) -> Examples:
    """A path, a list of dicts, a pandas DataFrame, a datasets.Dataset, or a dict of tensors / BatchEncoding."""
    fields = (opts.text_field, opts.text_pair_field, opts.label_field)
    if isinstance(data, DataSource):
        return data.examples(opts)
    if is_path(data):
        return DataSource(data, opts.allow_pickle).examples(opts)
    name = describe(data)
    if isinstance(data, dict) or type(data).__name__ == "BatchEncoding":
        return examples_from_tensors(data, name, opts.max_examples)
    if type(data).__name__ == "DataFrame" and hasattr(data, "to_dict"):
        rows = data.head(opts.max_examples).to_dict(orient="records")
        return examples_from_rows(name, iter(rows), opts.max_examples, *fields, getattr(opts, "label_columns", None),
                                  getattr(opts, "pair_fields", None))
    if type(data).__name__ == "Dataset" and "input_ids" in (data.column_names or ()) and opts.text_field is None:
        return examples_from_token_dataset(data, name, opts.max_examples, opts.label_field)
    if type(data).__name__ in ("Dataset", "IterableDataset") and hasattr(data, "features"):
        if type(data).__name__ == "Dataset" and len(data) > opts.max_examples:
            data = data.select(range(opts.max_examples))
        examples = examples_from_rows(name, iter(data), opts.max_examples, *fields)
        examples.declared_label_names = class_label_names(data.features).get(examples.label_field)
        return examples
    if isinstance(data, (list, tuple)):
        if data and not all(isinstance(r, dict) for r in data[:50]):
            raise UsageError(f"data as a list must hold dicts like {{'text': ..., 'label': ...}}; found "
                             f"{type(next(r for r in data if not isinstance(r, dict))).__name__}")
        return examples_from_rows(name, iter(data), opts.max_examples, *fields, getattr(opts, "label_columns", None),
                                  getattr(opts, "pair_fields", None))
    raise UsageError(f"data must be a path, a list of dicts, a pandas DataFrame, a datasets.Dataset or a dict of "
                     f"tensors; got {type(data).__name__}")
