"""Records of how a model that outgrows one device was run (issue 21, typed in issue 18): its --device-map
placement, the sharding of a launched run and its sharded-forward agreement, and what trains under --lora.

Each is attached to the Report field `report_field` names (`report.lora.rank`); `to_metrics()` is its part of the
JSON, under a key of the same name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class DeviceMap:
    """Where --device-map auto put the model (Report.device_map): each module's device, and how many parameter
    tensors are offloaded (read from the offload one at a time) or unreadable (accelerate holds no copy)."""

    report_field: ClassVar[str] = "device_map"

    placement: tuple[tuple[str, str], ...]  # (module, device) in accelerate's order
    offloaded_tensors: int
    tensors: int
    unreadable_tensors: int

    def to_metrics(self) -> dict:
        return {"device_map": {"placement": dict(self.placement), "offloaded_tensors": self.offloaded_tensors,
                               "tensors": self.tensors, "unreadable_tensors": self.unreadable_tensors}}

    @classmethod
    def from_metrics(cls, m: dict) -> DeviceMap:
        d = m.get("device_map") or {}
        return cls(tuple((str(k), str(v)) for k, v in (d.get("placement") or {}).items()),
                   d.get("offloaded_tensors") or 0, d.get("tensors") or 0, d.get("unreadable_tensors") or 0)


@dataclass(frozen=True)
class ShardMode:
    """How a launched run splits the model over its ranks (Report.shard): "ddp" or "fsdp", and why."""

    report_field: ClassVar[str] = "shard"

    mode: str
    world_size: int
    why: str
    collective_timeout_seconds: float  # a rank that dies or stalls ends the run on every rank within this

    def to_metrics(self) -> dict:
        return {"shard": {"mode": self.mode, "world_size": self.world_size, "why": self.why,
                          "collective_timeout_seconds": self.collective_timeout_seconds}}

    @classmethod
    def from_metrics(cls, m: dict) -> ShardMode:
        d = m.get("shard") or {}
        return cls(str(d.get("mode", "")), d.get("world_size") or 1, str(d.get("why", "")),
                   d.get("collective_timeout_seconds"))


@dataclass(frozen=True)
class ShardedAgreement:
    """Under FSDP2, one batch through a copy cut to `layers` blocks, whole and sharded (Report.sharded_forward):
    how far the sharded logits and head gradients stray from the whole copy's."""

    report_field: ClassVar[str] = "sharded_forward"

    layers: int
    examples: int
    tolerance: float
    logits_relative_difference: float | None
    head_grad_relative_difference: float | None

    def to_metrics(self) -> dict:
        return {"sharded_forward": {"layers": self.layers, "examples": self.examples, "tolerance": self.tolerance,
                                    "logits_relative_difference": self.logits_relative_difference,
                                    "head_grad_relative_difference": self.head_grad_relative_difference}}

    @classmethod
    def from_metrics(cls, m: dict) -> ShardedAgreement:
        d = m.get("sharded_forward") or {}
        return cls(d.get("layers") or 0, d.get("examples") or 0, d.get("tolerance"),
                   d.get("logits_relative_difference"), d.get("head_grad_relative_difference"))


@dataclass(frozen=True)
class LoraSummary:
    """What trains under --lora (Report.lora): adapters of `rank` on the target modules, the head in full."""

    report_field: ClassVar[str] = "lora"

    rank: int
    why: str  # asked for, or picked for a model above the stated size
    alpha: int  # peft's lora_alpha, twice the rank
    target_modules: tuple[str, ...] | str  # module names, or peft's pattern ("all-linear")
    modules_to_save: tuple[str, ...]  # the head, trained in full
    trainable_elements: int
    frozen_elements: int
    adapter_tensors: int
    head_tensors: int

    def to_metrics(self) -> dict:
        targets = list(self.target_modules) if isinstance(self.target_modules, tuple) else self.target_modules
        return {"lora": {"rank": self.rank, "why": self.why, "alpha": self.alpha, "target_modules": targets,
                         "modules_to_save": list(self.modules_to_save),
                         "trainable_elements": self.trainable_elements, "frozen_elements": self.frozen_elements,
                         "adapter_tensors": self.adapter_tensors, "head_tensors": self.head_tensors}}

    @classmethod
    def from_metrics(cls, m: dict) -> LoraSummary:
        d = m.get("lora") or {}
        targets = d.get("target_modules")
        return cls(d.get("rank") or 0, str(d.get("why", "")), d.get("alpha"),
                   tuple(targets) if isinstance(targets, list) else str(targets),
                   tuple(d.get("modules_to_save") or ()), d.get("trainable_elements") or 0,
                   d.get("frozen_elements") or 0, d.get("adapter_tensors") or 0, d.get("head_tensors") or 0)


BIG_MODEL_RECORDS = (DeviceMap, ShardMode, ShardedAgreement, LoraSummary)  # each read back where its key is
