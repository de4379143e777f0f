"""FSDP2's DTensor read whole or as this rank's slice (a leaf: distributed.py and the sharded measurements
both read tensors through it)."""
from __future__ import annotations

from typing import Any


def is_dtensor(t: Any) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def full(t: Any) -> Any:
    """The whole tensor: gathered from every rank for a DTensor (a collective), the tensor itself otherwise."""
    return t.full_tensor() if t is not None and is_dtensor(t) else t


def local(t: Any) -> Any:
    """This rank's slice of a DTensor, or the tensor itself."""
    return t.to_local() if is_dtensor(t) else t
