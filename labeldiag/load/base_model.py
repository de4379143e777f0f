"""The base model a checkpoint was fine-tuned from (issue 20): found locally or in the cache, never
downloaded, and its tensors read."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from labeldiag.errors import UsageError


def resolve_base(given: str | None, model_path: str | None) -> str | None:
    """The base model's folder: --base-model (a folder, or a hub id already in the local cache), else the
    saved config.json's _name_or_path when that is a local folder or cached; never a download.
    An explicit --base-model that cannot be found is a usage error; a default that cannot is skipped."""
    if given is not None:
        found = _local_folder(given)
        if found is None:
            raise UsageError(f"--base-model '{given}' is neither a folder with safetensors weights nor a model in the "
                             "local Hugging Face cache (nothing is downloaded); pass the base model's folder")
        return found
    # the saved config.json's _name_or_path (a model in memory carries the folder it was loaded from there)
    if not (model_path and os.path.isdir(model_path)):
        return None
    try:
        name = json.loads((Path(model_path) / "config.json").read_text()).get("_name_or_path")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(name, str) or not name:
        return None
    found = _local_folder(name)
    if found is None or (model_path and os.path.realpath(found) == os.path.realpath(model_path)):
        return None
    return found


def _local_folder(name: str) -> str | None:
    if os.path.isdir(name):
        return name if list(Path(name).glob("*.safetensors")) else None
    if name.count("/") > 1 or name.startswith((".", "/", "~")):
        return None
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(name, local_files_only=True, allow_patterns=["*.safetensors", "*.json"])
    except Exception:
        return None
    return folder if list(Path(folder).glob("*.safetensors")) else None


def read_base_state(folder: str) -> dict[str, Any]:
    from safetensors.torch import load_file

    state: dict[str, Any] = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        try:
            state.update(load_file(str(f)))
        except Exception as exc:
            raise UsageError(f"--base-model '{folder}': cannot read {f.name} ({type(exc).__name__}: {exc})") from None
    return state
