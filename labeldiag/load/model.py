"""Load a classifier checkpoint (and its tokenizer) read-only, and audit what the load did.

Safetensors only unless --allow-pickle; remote code only with --trust-remote-code; never the
network for a local path. Nothing is ever written into MODEL.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labeldiag.errors import UsageError, describe_exception, one_line, why_missing
from labeldiag.load.dispatch import dispatch_kwargs, own_offload_folder
from labeldiag.records import LoadAudit, ModelInfo

SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "adapter_model.bin")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
HEAD_NAMES = ("classifier", "pre_classifier", "score", "head", "classification_head", "pooler",
              "out_proj", "logits", "fc_out", "output_layer")
PRETRAINING_HEADS = ("cls.predictions", "cls.seq_relationship", "lm_head", "vocab_transform",
                     "vocab_layer_norm", "vocab_projector", "mlm", "nsp", "predictions.",
                     "discriminator_predictions", "generator_predictions", "generator_lm_head",  # ELECTRA
                     "lm_predictions")  # DeBERTa-v2 masked LM
# ModernBERT's masked LM keeps its output bias in a top-level `decoder`; only there is the name a pretraining head
TOP_LEVEL_PRETRAINING_HEADS = ("decoder.",)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
CONFIG_LIMIT = 64 << 20  # config files are kilobytes; never read a huge (or endless) one into memory


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    info: ModelInfo
    audit: LoadAudit
    base_prefix: str | None = None


# --- paths --------------------------------------------------------------------------------------

def resolve_model_path(model: str, allow_pickle: bool) -> tuple[str, bool, str]:
    """Return (path or hub id, is_local, weights format). Refuses what is not a checkpoint."""
    p = Path(model)
    if p.exists():
        if not p.is_dir():
            raise UsageError(f"MODEL '{model}' is a file; pass the checkpoint folder that holds "
                             "config.json and the weights (save_pretrained layout)")
        if not os.access(p, os.R_OK | os.X_OK):
            raise UsageError(f"MODEL '{model}' is not readable (permission denied)")
        refuse_special_files(p, "MODEL")
        files = {f.name for f in p.iterdir()}
        if "config.json" not in files and "adapter_config.json" not in files:
            ckpts = sorted((f for f in files if re.fullmatch(r"checkpoint-\d+", f)), key=lambda s: int(s.split("-")[1]))
            if ckpts:
                raise UsageError(f"MODEL '{model}' is a Trainer output folder; pass one of its checkpoints, "
                                 f"e.g. {p / ckpts[-1]}")
            raise UsageError(f"MODEL '{model}' is not a checkpoint folder: it has no config.json; pass the "
                             "folder written by save_pretrained (or a Trainer checkpoint-N folder)")
        if "config.json" not in files:
            # an adapter: peft loads adapter_model.safetensors when present, else unpickles adapter_model.bin
            if "adapter_model.safetensors" in files:
                return str(p), True, "safetensors"
            pickled = ["adapter_model.bin"] if "adapter_model.bin" in files else []
        elif any(f in files for f in SAFE_WEIGHTS) or any(f.endswith(".safetensors") for f in files):
            return str(p), True, "safetensors"  # from_pretrained(use_safetensors=True) never falls back to pickle
        else:
            pickled = sorted(f for f in files if f in PICKLE_WEIGHTS or f.endswith(PICKLE_SUFFIXES)
                             and not f.startswith(("optimizer", "scheduler", "rng_state", "training_args", "scaler")))
        if pickled:
            if not allow_pickle:
                raise UsageError(f"MODEL '{model}' has only pickle-based weights ({pickled[0]}); loading them "
                                 "can run code. Pass --allow-pickle if you trust the file (it is then read "
                                 "with torch.load(weights_only=True)), or convert it to safetensors")
            return str(p), True, "pickle"
        raise UsageError(f"MODEL '{model}' has no weights file ("
                         + ("adapter_model.safetensors" if "config.json" not in files else "model.safetensors")
                         + "); save the model with save_pretrained")
    if model.startswith((".", "/", "~")) or os.sep in model.strip("/").replace("/", "", 1) or not HUB_ID.match(model):
        raise UsageError(f"MODEL '{model}' {why_missing(model)}; pass a checkpoint folder or a cached hub id")
    return model, False, "hub"


def refuse_special_files(folder: Path, what: str) -> None:
    """FIFOs, devices and sockets block or never end when read: refuse them before anything opens them."""
    import stat

    for entry in folder.iterdir():
        try:
            mode = entry.stat().st_mode  # follows links: a link to /dev/zero is a device
        except OSError:
            continue  # a dangling link is never opened successfully either
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise UsageError(f"{what} '{folder}': '{entry.name}' is not a regular file (a pipe, device or socket); "
                             "replace it with the real file")


def _import_class(spec: str, trust_remote_code: bool) -> Any:
    if ":" not in spec:
        raise UsageError(f"--model-class '{spec}' must look like FILE.py:Class or module:Class")
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise UsageError(f"--model-class '{spec}' must look like FILE.py:Class or module:Class")
    if where.endswith(".py") or os.sep in where or "/" in where:
        file = Path(where)
        if not file.exists():
            raise UsageError(f"--model-class file '{where}' {why_missing(where)}")
        if not file.is_file():
            raise UsageError(f"--model-class '{where}' is not a regular Python file")
        mod_name = f"labeldiag_user_{file.stem}_{abs(hash(str(file.resolve())))}"
        spec_obj = importlib.util.spec_from_file_location(mod_name, file)
        if spec_obj is None or spec_obj.loader is None:
            raise UsageError(f"--model-class file '{where}' cannot be imported as Python")
        module = importlib.util.module_from_spec(spec_obj)
        sys.modules[mod_name] = module
        saved_path, saved_bytecode = list(sys.path), sys.dont_write_bytecode
        sys.path.insert(0, str(file.resolve().parent))  # let the file import its siblings
        sys.dont_write_bytecode = True  # no __pycache__ next to the file (it may sit in the checkpoint)
        try:
            spec_obj.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # sys.exit() at import must not end labeldiag with its code
            raise UsageError(f"importing --model-class file '{where}' failed: {describe_exception(exc)}") from None
        finally:
            sys.path[:] = saved_path  # whatever the file did to sys.path
            sys.dont_write_bytecode = saved_bytecode
    else:
        try:
            module = importlib.import_module(where)
        except (Exception, SystemExit) as exc:
            raise UsageError(f"--model-class module '{where}' cannot be imported: {describe_exception(exc)}") from None
    if not hasattr(module, name):
        import difflib

        options = [n for n, v in vars(module).items() if inspect.isclass(v)]
        close = difflib.get_close_matches(name, options, n=1)
        tip = f"; did you mean '{close[0]}'?" if close else f" (classes found: {', '.join(options[:10]) or 'none'})"
        raise UsageError(f"--model-class: '{where}' has no class '{name}'{tip}")
    cls = getattr(module, name)
    import torch

    if not (inspect.isclass(cls) and issubclass(cls, torch.nn.Module)):
        raise UsageError(f"--model-class '{spec}' is not a torch.nn.Module subclass")
    if not hasattr(cls, "from_pretrained"):
        raise UsageError(f"--model-class '{spec}' has no from_pretrained; subclass PreTrainedModel "
                         "(or give the class a from_pretrained classmethod)")
    return cls


def _config_json(path: str) -> dict:
    cfg_file = Path(path) / "config.json"
    if not os.path.lexists(cfg_file):
        return {}
    return read_json_object(cfg_file, f"MODEL '{path}': config.json")


def read_json_object(file: Path, what: str) -> dict:
    """A small JSON object from a regular file, every problem as one line."""
    if not file.is_file():
        raise UsageError(f"{what} is not a regular file (a folder, pipe, device or broken link); "
                         "replace it with the JSON file save_pretrained wrote")
    try:
        with open(file, "rb") as fh:
            raw = fh.read(CONFIG_LIMIT + 1)
    except OSError as exc:
        raise UsageError(f"{what} cannot be read ({exc.strerror or exc})") from None
    if len(raw) > CONFIG_LIMIT:
        raise UsageError(f"{what} is larger than {CONFIG_LIMIT >> 20} MB; it is not a model config, save the "
                         "model again")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{what} is not UTF-8 text; the file is corrupt, save the model again") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON ({exc}); the file is truncated or corrupt, save the "
                         "model again") from None
    except RecursionError:
        raise UsageError(f"{what} is nested too deeply to be a config; the file is corrupt, save the model "
                         "again") from None
    except ValueError as exc:  # a number with thousands of digits
        problem = "a number has too many digits" if "digits" in str(exc) else one_line(str(exc), 120)
        raise UsageError(f"{what} cannot be read as JSON ({problem}); the file is corrupt, save the model "
                         "again") from None
    if not isinstance(data, dict):
        raise UsageError(f"{what} must hold a JSON object, not a {type(data).__name__}")
    return data


# --- loading ----------------------------------------------------------------------------------

def load_model(
    model: str,
    model_class: str | None = None,
    tokenizer: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    need_tokenizer: bool = True,
    labels: tuple[str, ...] | None = None,
    num_labels: int | None = None,
    task: str | None = None,
    device_map: str | None = None,
    max_memory: tuple | None = None,
) -> LoadedModel:
    import torch
    import transformers

    path, local, weights_format = resolve_model_path(model, allow_pickle)
    raw_cfg = _config_json(path) if local else {}
    if local and (Path(path) / "adapter_config.json").exists() and not raw_cfg:
        if device_map is not None:
            raise UsageError(f"MODEL '{model}' is a PEFT adapter; --device-map loads whole checkpoints: merge the "
                             "adapter into its base (merge_and_unload) and save that, or drop --device-map")
        if num_labels is not None:
            raise UsageError(f"MODEL '{model}' is a PEFT adapter: its head comes with the adapter, so --labels / "
                             "--num-labels cannot attach another; pass the base model folder instead")
        return _load_peft(path, model_class, tokenizer, trust_remote_code, allow_pickle, need_tokenizer,
                          weights_format)
    if raw_cfg.get("auto_map") and not trust_remote_code and model_class is None:
        raise UsageError(f"MODEL '{model}' ships its own code (auto_map in config.json); pass "
                         "--trust-remote-code if you trust it, or --model-class with your class")
    token_head = task == "token" or (task is None and any(  # issue 22: NER / tagging heads
        str(a).endswith("ForTokenClassification") for a in raw_cfg.get("architectures") or ()))
    auto = transformers.AutoModelForTokenClassification if token_head else transformers.AutoModelForSequenceClassification
    cls = _import_class(model_class, trust_remote_code) if model_class else auto
    kwargs: dict[str, Any] = {"local_files_only": True}
    params = _params(cls.from_pretrained)
    accepts_any = "kwargs" in params or "model_kwargs" in params
    if "trust_remote_code" in params or cls is auto:
        kwargs["trust_remote_code"] = trust_remote_code
    if "use_safetensors" in params or accepts_any:
        kwargs["use_safetensors"] = weights_format == "safetensors" if local else None
    if "weights_only" in params:
        kwargs["weights_only"] = True
    if num_labels is not None:
        if not (accepts_any or "num_labels" in params):
            raise UsageError(f"--model-class {model_class}: its from_pretrained takes no config overrides, so "
                             "--labels / --num-labels cannot size its head; set num_labels in config.json of a copy")
        kwargs.update(_head_kwargs(raw_cfg, labels, num_labels))
    if device_map is not None:
        if not (accepts_any or "device_map" in params):
            raise UsageError(f"--model-class {model_class}: its from_pretrained takes no device_map, so "
                             "--device-map cannot place it; drop --device-map")
        kwargs.update(dispatch_kwargs(device_map, max_memory))
    info_supported = "output_loading_info" in params or accepts_any
    loading_info = None
    net = None
    try:
        if info_supported:
            try:
                out = cls.from_pretrained(path, output_loading_info=True, **kwargs)
            except TypeError as exc:
                if "output_loading_info" not in str(exc):
                    raise
                out = cls.from_pretrained(path, **kwargs)
            if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict):
                net, loading_info = out
            else:
                net = out
        else:
            net = cls.from_pretrained(path, **kwargs)
    except UsageError:
        raise
    except (Exception, SystemExit) as exc:  # a custom from_pretrained may call sys.exit()
        raise _load_error(model, path, local, exc, raw_cfg) from None
    finally:
        own_offload_folder(net, kwargs)
    if not isinstance(net, torch.nn.Module):
        raise UsageError(f"--model-class from_pretrained returned a {type(net).__name__}, not a torch.nn.Module")
    net.eval()
    base_prefix = getattr(net, "base_model_prefix", None) or None
    if base_prefix and not hasattr(net, base_prefix):
        base_prefix = None
    audit = _audit(net, path, local, loading_info, base_prefix)
    if num_labels is not None and audit.missing_head:
        audit.attached_head = {"outputs": num_labels,
                               "checkpoint_outputs": _saved_head_rows(path) if local else None}
    info = _model_info(net, path, weights_format)
    tok = None
    if need_tokenizer:
        tok = load_tokenizer(tokenizer or path, trust_remote_code, explicit=tokenizer is not None)
    return LoadedModel(model=net, tokenizer=tok, info=info, audit=audit, base_prefix=base_prefix)


def _head_kwargs(raw_cfg: dict, labels: tuple[str, ...] | None, num_labels: int) -> dict[str, Any]:
    """from_pretrained overrides for a head of num_labels classes, as transformers documents them: the config
    gets num_labels/id2label/label2id, and a saved head of another size is re-initialized, not an error."""
    if labels is None:
        saved = raw_cfg.get("id2label") if isinstance(raw_cfg.get("id2label"), dict) else {}
        keep = len(saved) == num_labels  # same size: keep the checkpoint's names
        labels = tuple(str(saved.get(str(i), f"LABEL_{i}")) if keep else f"LABEL_{i}" for i in range(num_labels))
    return {"num_labels": num_labels, "id2label": dict(enumerate(labels)),
            "label2id": {name: i for i, name in enumerate(labels)}, "ignore_mismatched_sizes": True}


def _params(fn: Any) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return {"kwargs"}


def _load_error(model: str, path: str, local: bool, exc: Exception, raw_cfg: dict) -> UsageError:
    text = str(exc)
    if ("size mismatch" in text or "mismatch" in text.lower() and "shape" in text.lower()
            or "ignore_mismatched_sizes" in text):
        n = raw_cfg.get("num_labels") or len(raw_cfg.get("id2label") or {}) or "?"
        saved = _saved_head_rows(path) if local else None
        what = (f"the saved head has {saved} outputs" if saved is not None and "ignore_mismatched_sizes" in text
                else one_line(text, 200))
        return UsageError(f"MODEL '{model}': the checkpoint's weights do not fit the config (config.json says "
                          f"num_labels={n}; {what}); make num_labels/id2label in config.json "
                          "match the saved head")
    if "trust_remote_code" in text:
        return UsageError(f"MODEL '{model}' needs its own code to load; pass --trust-remote-code if you trust it")
    if not local:
        return UsageError(f"MODEL '{model}' is not a local folder and is not in the Hugging Face cache "
                          "(labeldiag never downloads); download it first or pass a local folder")
    if ("Unrecognized model" in text or "model_type" in text or "model type" in text
            or "does not recognize this architecture" in text):
        return UsageError(f"MODEL '{model}': config.json names no model type transformers knows; pass "
                          "--model-class FILE.py:Class with the class that saved it")
    return UsageError(f"MODEL '{model}' could not be loaded ({describe_exception(exc)}); check the "
                      "checkpoint files or pass --model-class")


def _saved_head_rows(path: str) -> int | None:
    """Output rows of the classifier head as saved in the checkpoint's safetensors (None when not found)."""
    try:
        from safetensors import safe_open

        for f in sorted(Path(path).glob("*.safetensors")):
            with safe_open(str(f), framework="pt") as fh:
                keys = [k for k in fh.keys() if k.endswith(".bias") and
                        any(h in k.split(".") for h in ("classifier", "score", "out_proj"))]
                keys.sort(key=lambda k: ("out_proj" not in k, "dense" in k))
                if keys:
                    return int(fh.get_slice(keys[0]).get_shape()[0])
    except Exception:
        return None
    return None


def load_tokenizer(where: str, trust_remote_code: bool, explicit: bool) -> Any:
    from transformers import AutoTokenizer

    p = Path(where)
    if explicit and not p.exists() and (where.startswith((".", "/", "~")) or not HUB_ID.match(where)):
        raise UsageError(f"--tokenizer '{where}' {why_missing(where)}")
    if p.is_dir():
        refuse_special_files(p, "--tokenizer" if explicit else "MODEL")
    elif p.exists() and not p.is_file():
        raise UsageError(f"--tokenizer '{where}' is not a regular file or folder")
    try:
        tok = AutoTokenizer.from_pretrained(where, local_files_only=True, trust_remote_code=trust_remote_code)
        # what encode() reads: a corrupt tokenizer file can make these raise (or recurse) long after loading
        tok("a b", "c")
        tok.all_special_ids, tok.pad_token_id, tok.unk_token_id, tok.mask_token_id, len(tok)
        return tok
    except Exception as exc:
        flag = "--tokenizer" if explicit else "MODEL"
        raise UsageError(f"no usable tokenizer at {flag} '{where}' ({describe_exception(exc)}); pass "
                         "--tokenizer with the folder of the tokenizer the model was trained with") from None


def _is_pretraining_key(key: str) -> bool:
    return (any(key.startswith(h) or f".{h}" in key for h in PRETRAINING_HEADS)
            or key.startswith(TOP_LEVEL_PRETRAINING_HEADS))


def _is_head_key(key: str, base_prefix: str | None) -> bool:
    parts = key.split(".")
    if base_prefix and parts[0] == base_prefix:
        return any(p in ("pooler",) for p in parts[1:2])
    if base_prefix:
        return True
    return any(p in HEAD_NAMES for p in parts[:2])


def _audit(net: Any, path: str, local: bool, loading_info: dict | None, base_prefix: str | None) -> LoadAudit:
    audit = LoadAudit()
    if loading_info is not None:
        missing = sorted(loading_info.get("missing_keys") or [])
        unexpected = sorted(loading_info.get("unexpected_keys") or [])
        mismatched = list(loading_info.get("mismatched_keys") or [])
    elif local:
        audit.source = "labeldiag"
        ckpt_keys = _checkpoint_keys(path)
        model_keys = set(net.state_dict())
        if not ckpt_keys:
            return audit
        missing = sorted(model_keys - ckpt_keys)
        unexpected = sorted(ckpt_keys - model_keys)
        mismatched = []
    else:
        return audit
    for key in missing:
        (audit.missing_head if _is_head_key(key, base_prefix) else audit.missing_body).append(key)
    for key in unexpected:
        (audit.unused_pretraining if _is_pretraining_key(key) else audit.unused).append(key)
    for item in mismatched:
        if isinstance(item, (tuple, list)) and item:
            audit.mismatched.append(tuple(item))
            key = item[0]
            (audit.missing_head if _is_head_key(key, base_prefix) else audit.missing_body).append(key)
    return audit


def _checkpoint_keys(path: str) -> set[str]:
    from safetensors import safe_open

    keys: set[str] = set()
    for f in sorted(Path(path).glob("*.safetensors")):
        try:
            with safe_open(str(f), framework="pt") as fh:
                keys.update(fh.keys())
        except Exception:
            continue
    return keys


def _pickled_keys(file: Path) -> set[str]:
    """Keys of a pickled state dict the user allowed (--allow-pickle), read with weights_only=True."""
    import torch

    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UsageError(f"MODEL '{file.parent}': {file.name} could not be loaded safely "
                         f"({type(exc).__name__}); only plain tensors are allowed") from None
    return set(state) if isinstance(state, dict) else set()


def _model_info(net: Any, path: str, weights_format: str) -> ModelInfo:
    cfg = getattr(net, "config", None)
    raw_id2label = getattr(cfg, "id2label", None)
    raw_label2id = getattr(cfg, "label2id", None)
    num_labels = int(getattr(cfg, "num_labels", 0) or (len(raw_id2label) if raw_id2label else 0))
    id2label: dict[int, str] = {}
    for k, v in (raw_id2label or {}).items():
        try:
            id2label[int(k)] = str(v)
        except (TypeError, ValueError):
            continue
    label2id: dict[str, int] = {}
    for k, v in (raw_label2id or {}).items():
        try:
            label2id[str(k)] = int(v)
        except (TypeError, ValueError):
            continue
    rows = None
    try:
        emb = net.get_input_embeddings()
        rows = int(emb.num_embeddings) if emb is not None else None
    except Exception:
        rows = None
    max_pos = getattr(cfg, "max_position_embeddings", None)
    type_vocab = getattr(cfg, "type_vocab_size", None)
    if isinstance(max_pos, int) and getattr(cfg, "model_type", None) in ("roberta", "xlm-roberta", "camembert"):
        max_pos -= 2  # RoBERTa offsets positions by padding_idx + 1
    return ModelInfo(
        path=path, class_name=type(net).__name__, model_type=getattr(cfg, "model_type", None),
        num_labels=num_labels, id2label=id2label, label2id=label2id,
        problem_type=getattr(cfg, "problem_type", None), raw_id2label=raw_id2label, raw_label2id=raw_label2id,
        embedding_rows=rows, max_positions=max_pos if isinstance(max_pos, int) else None,
        weights_format=weights_format,
        type_vocab_size=type_vocab if isinstance(type_vocab, int) and type_vocab > 0 else None,
    )


def _load_peft(path, model_class, tokenizer, trust_remote_code, allow_pickle, need_tokenizer,
               weights_format) -> LoadedModel:
    """A PEFT adapter folder: load its base model, then the adapter on top."""
    try:
        from peft import PeftModel
    except ImportError:
        raise UsageError(f"MODEL '{path}' is a PEFT adapter folder; loading it needs peft: pip install peft") from None
    adapter_cfg = read_json_object(Path(path) / "adapter_config.json", f"MODEL '{path}': adapter_config.json")
    base = adapter_cfg.get("base_model_name_or_path")
    if not base:
        raise UsageError(f"MODEL '{path}': adapter_config.json names no base_model_name_or_path")
    if not isinstance(base, str):
        raise UsageError(f"MODEL '{path}': adapter_config.json's base_model_name_or_path is a "
                         f"{type(base).__name__}, not a path; set it to the base model's folder")
    base_dir = Path(base)
    if base_dir.is_dir() and (base_dir / "adapter_config.json").exists() and not (base_dir / "config.json").exists():
        raise UsageError(f"MODEL '{path}': adapter_config.json's base_model_name_or_path '{base}' is an adapter "
                         "folder (perhaps this one), not a model; set it to the base model's folder")
    loaded = load_model(base, model_class, tokenizer or (path if (Path(path) / "tokenizer_config.json").exists() else None),
                        trust_remote_code, allow_pickle, need_tokenizer)
    saved = _checkpoint_keys(path) if weights_format == "safetensors" else _pickled_keys(Path(path) / "adapter_model.bin")
    to_save = adapter_cfg.get("modules_to_save") or []
    if not isinstance(to_save, list) or not all(isinstance(m, str) for m in to_save):
        raise UsageError(f"MODEL '{path}': adapter_config.json's modules_to_save must be a list of module names, "
                         f"got {one_line(json.dumps(to_save), 80)}")
    to_save = [m for m in to_save if m]
    head_saved = [m for m in to_save if any(f".{m}." in k or k.startswith(f"{m}.") for k in saved)]
    kwargs = {}
    try:
        if to_save and not head_saved:
            # the adapter names a head to save but holds none: load without it (peft would raise), report it
            from peft import PeftConfig

            cfg = PeftConfig.from_pretrained(path)
            cfg.modules_to_save = None
            cfg.task_type = None  # a SEQ_CLS adapter re-adds 'classifier' to modules_to_save
            kwargs["config"] = cfg
        net = PeftModel.from_pretrained(loaded.model, path, is_trainable=False, **kwargs)
    except Exception as exc:
        raise UsageError(f"MODEL '{path}': the adapter could not be loaded onto '{base}' ({describe_exception(exc)})") from None
    audit = loaded.audit
    if to_save and not head_saved:
        audit.missing_head = sorted(set(audit.missing_head) | {f"adapter modules_to_save without weights: {', '.join(to_save)}"})
    elif head_saved:
        audit.missing_head = []  # the adapter carries the trained head
    net.eval()
    loaded.model = net
    return loaded
