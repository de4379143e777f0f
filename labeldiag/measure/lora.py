"""--lora R: smoke-train and grad-flow train a LoRA adapter (peft) of rank R and the head, on a copy.

The adapter is injected into a copy the caller passes in (training_copy's), never into the loaded
model: peft replaces modules in place. The head goes into modules_to_save, so it trains in full; the
base weights are frozen by design, which the report says instead of calling them frozen-parameters.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labeldiag import thresholds as T
from labeldiag.errors import UsageError
from labeldiag.records.bigmodel import LoraSummary


@dataclass(frozen=True)
class LoraPlan:
    rank: int  # 0: no adapter
    why: str


def plan_lora(requested: int | None, parameters: int, already_adapted: bool) -> LoraPlan:
    """The rank smoke-train uses: --lora when given, else LoRA above T.LORA_DEFAULT_ABOVE_PARAMETERS."""
    if requested and already_adapted:
        raise UsageError(f"--lora {requested}: the model already carries peft adapters, which train as they are; "
                         "drop --lora (or pass the base model)")
    if requested is not None:
        return LoraPlan(requested, f"--lora {requested}")
    if already_adapted:
        return LoraPlan(0, "the model already carries peft adapters; they train as they are")
    if parameters > T.LORA_DEFAULT_ABOVE_PARAMETERS:
        return LoraPlan(T.LORA_DEFAULT_RANK, f"picked: {parameters / 1e9:.3g}B parameters, above the "
                        f"{T.LORA_DEFAULT_ABOVE_PARAMETERS / 1e9:g}B where a full training copy stops fitting; "
                        "--lora 0 trains every weight")
    return LoraPlan(0, "full fine-tuning")


def is_adapted(model: Any) -> bool:
    """A peft model (PeftModel, or a transformers model with adapters loaded into it)."""
    return bool(getattr(model, "peft_config", None)) or type(model).__name__.startswith("Peft")


def head_modules(model: Any, head_parameters: set[str]) -> list[str]:
    """The modules holding the head's parameters, by their outermost head-like name (score, classifier)."""
    from labeldiag.measure.parameters import HEAD_MODULES

    out = []
    for name in sorted(head_parameters):
        parts = name.split(".")[:-1]
        inside = [i for i, part in enumerate(parts) if part in HEAD_MODULES]
        module = ".".join(parts[:inside[0] + 1] if inside else parts[:1])
        if module and module not in out:
            out.append(module)
    return out


def target_modules(model: Any) -> list[str] | str:
    """peft's own choice for the architecture (q/v projections), else every linear layer but the head."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as KNOWN

    model_type = getattr(getattr(model, "config", None), "model_type", None)
    known = KNOWN.get(model_type)
    if known:
        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        if all(k in names for k in known):
            return list(known)
    return "all-linear"


def wrap_lora(net: Any, rank: int, head_parameters: set[str]) -> Any:
    """`net` (a copy; changed in place) as a peft model: adapters of `rank`, the head in modules_to_save."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise UsageError("--lora needs peft: pip install 'labeldiag[peft]' (or --lora 0 to train every weight)") from None
    heads = head_modules(net, head_parameters)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=target_modules(net),
                        modules_to_save=heads or None)
    try:
        return get_peft_model(net, config)
    except ValueError as exc:  # no module peft can adapt
        raise UsageError(f"--lora {rank}: peft cannot adapt this model ({' '.join(str(exc).split())[:200]}); "
                         "use --lora 0") from None


def lora_summary(net: Any, plan: LoraPlan) -> LoraSummary:
    """What trains in `net` (lora_copy's, or its FSDP2-sharded copy), as plain numbers for the report."""
    config = net.peft_config["default"]
    trainable = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    frozen = [(n, p) for n, p in net.named_parameters() if not p.requires_grad]
    targets = config.target_modules
    return LoraSummary(rank=plan.rank, why=plan.why, alpha=config.lora_alpha,
                       target_modules=(tuple(sorted(targets)) if isinstance(targets, (set, list, tuple))
                                       else str(targets)),
                       modules_to_save=tuple(sorted(config.modules_to_save or [])),
                       trainable_elements=sum(p.numel() for _, p in trainable),
                       frozen_elements=sum(p.numel() for _, p in frozen),
                       adapter_tensors=sum(1 for n, _ in trainable if ".lora_" in n),
                       head_tensors=sum(1 for n, _ in trainable if ".lora_" not in n))


def lora_note(summary: LoraSummary) -> str:
    total = summary.trainable_elements + summary.frozen_elements
    targets = summary.target_modules
    return (f"LoRA rank {summary.rank} ({summary.why}) on "
            f"{', '.join(targets) if isinstance(targets, tuple) else targets}; the head "
            f"({', '.join(summary.modules_to_save) or 'none found'}) trains in full: "
            f"{summary.trainable_elements:,} of {total:,} parameter elements train, the "
            f"{summary.frozen_elements:,} base elements are frozen by design (not a frozen-parameters finding); "
            "a copy is trained, the model is not changed")


def plan_for(model: Any, requested: int | None) -> LoraPlan:
    return plan_lora(requested, sum(p.numel() for p in model.parameters()), is_adapted(model))


def announce(report: Any, summary: LoraSummary) -> None:
    """The header says LoRA trains (device line and a note); the report carries what trains."""
    report.attach(summary)
    report.device = f"{report.device}, LoRA rank {summary.rank}"
    report.notes.append(lora_note(summary))


def lora_copy(model: Any, plan: LoraPlan) -> tuple[Any, LoraSummary]:
    """A deep copy of `model` with an adapter of plan.rank (dtype and device kept), and what trains in it.

    The copy is the model itself with the adapters injected (peft's get_base_model()), not the PeftModel
    wrapper: its parameter names are the caller's (model.layers.0.self_attn.q_proj.lora_A.default.weight),
    so the per-layer tables group them as they group the caller's. `model` is not changed.
    """
    import copy

    from labeldiag.measure.parameters import head_parameter_names

    import torch

    net = copy.deepcopy(model)
    net.zero_grad(set_to_none=True)
    where = next(net.parameters()).device
    # lora_A is drawn from a fixed seed: the same adapter on every rank and in every launch mode, whatever
    # else drew random numbers before (under FSDP2 the sharded-forward check builds a model first)
    with torch.random.fork_rng(devices=[where] if where.type == "cuda" else []):
        torch.manual_seed(0)
        adapted = wrap_lora(net, plan.rank, head_parameter_names(model))
    inner = adapted.get_base_model()
    return inner, lora_summary(inner, plan)


def zero_by_design(flow: Any) -> tuple[Any, int]:
    """grad-flow's measurement without the lora_A tensors' zero gradients, and how many there were: lora_B
    starts at zero (so the adapted model equals the base), which makes lora_A's first gradient exactly zero."""
    import dataclasses

    count = 0
    layers = []
    for layer in flow.layers:
        kept = [n for n in layer.zero_grad_names if ".lora_A." not in n]
        count += len(layer.zero_grad_names) - len(kept)
        layers.append(dataclasses.replace(layer, zero_grad_names=kept))
    return dataclasses.replace(flow, layers=layers), count
