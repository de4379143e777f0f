"""--device-map auto: accelerate's big-model dispatch (GPUs, then CPU, then disk) for a model larger than one
device, and the rules every command keeps with a dispatched model: it is never moved with .to(), inputs go
where accelerate's hooks take them, and what is read back is copied to the CPU.

Offloaded weights go to a temporary folder of our own, removed when the model is freed: never into the
checkpoint.
"""
from __future__ import annotations

import shutil
import tempfile
import weakref
from typing import Any

from labeldiag.errors import UsageError
from labeldiag.records.bigmodel import DeviceMap


def dispatch_kwargs(device_map: str, max_memory: tuple | None) -> dict[str, Any]:
    """from_pretrained's big-model arguments, with a fresh offload folder outside the checkpoint."""
    import importlib.util

    if importlib.util.find_spec("accelerate") is None:
        raise UsageError("--device-map needs the accelerate package, which is not installed: pip install accelerate")
    kwargs: dict[str, Any] = {"device_map": device_map, "offload_folder": tempfile.mkdtemp(prefix="labeldiag-offload-")}
    if max_memory:
        kwargs["max_memory"] = dict(max_memory)
    return kwargs


def own_offload_folder(net: Any, kwargs: dict[str, Any]) -> None:
    """Remove the offload folder once the model is freed (or at exit); at once when loading failed."""
    folder = kwargs.get("offload_folder")
    if folder is None:
        return
    if net is None:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        weakref.finalize(net, shutil.rmtree, folder, True)


def is_dispatched(model: Any) -> bool:
    """Placed by accelerate (device_map): its modules carry hooks that move inputs and weights."""
    return bool(getattr(model, "hf_device_map", None))


def place(model: Any, device: Any) -> Any:
    """model.to(device), except for a dispatched model: moving one breaks its placement and offload hooks."""
    return model if is_dispatched(model) else model.to(device)


def placement(model: Any) -> dict[str, int]:
    """How many top-level placements went to each device ('cpu', 'disk', 0, 1, ...)."""
    counts: dict[str, int] = {}
    for where in (getattr(model, "hf_device_map", None) or {}).values():
        counts[str(where)] = counts.get(str(where), 0) + 1
    return counts


def refuse_training(model: Any, command: str) -> None:
    """smoke-train copies and moves the model, which a dispatched one does not allow."""
    if is_dispatched(model):
        raise UsageError(f"{command} needs the model in one place, and this one is dispatched over devices "
                         f"({placement(model)}); load it without device_map, or run {command} under torchrun "
                         "with --shard fsdp")


def named_weights(model: Any) -> Any:
    """(name, tensor) of every parameter as model.named_parameters() orders them; a weight a dispatched model
    offloaded (a meta tensor between forwards) is read from accelerate's weights map, one tensor at a time."""
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        offloaded = getattr(getattr(module, "_hf_hook", None), "weights_map", None)
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            full = f"{module_name}.{name}" if module_name else name
            if p.device.type == "meta" and offloaded is not None:
                try:
                    yield full, offloaded[name]
                    continue
                except KeyError:
                    pass
            yield full, p


def announce(report: Any, model: Any) -> None:
    """The header names the placement; a note says what the weight statistics could not read."""
    if not is_dispatched(model):
        return
    where = placement(model)
    tensors = list(model.parameters())
    offloaded = sum(1 for p in tensors if p.device.type == "meta")
    unreadable = sum(1 for _, t in named_weights(model) if t.device.type == "meta")
    report.device = f"{report.device}, device_map auto ({', '.join(f'{k}: {v}' for k, v in where.items())})"
    report.attach(DeviceMap(tuple((str(k), str(v)) for k, v in model.hf_device_map.items()), offloaded, len(tensors),
                            unreadable))
    if offloaded:
        report.notes.append(f"device_map auto: {offloaded} of {len(tensors)} parameter tensors are offloaded; the "
                            "weight statistics read them one at a time from the offload"
                            + (f", except {unreadable} accelerate holds no copy of (left out)" if unreadable else ""))
