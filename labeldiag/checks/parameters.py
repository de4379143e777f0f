"""Parameters and the first loss, judged the same way for grad-flow and smoke-train."""
from __future__ import annotations

import math

from labeldiag import thresholds as T
from labeldiag.findings import Finding
from labeldiag.records import InitialLoss, ParameterCensus, group_layers
from labeldiag.catalogue import DISCONNECTED_PARAMETERS, FROZEN_PARAMETERS, LOSS_AT_INIT_OFF, NOTHING_TRAINABLE

def listing(names: tuple[str, ...] | list[str], limit: int = 5, layers: tuple[str, ...] | None = None) -> str:
    """'layer a, layer b, ... (12 layers)': the layers given, or those the parameter names belong to."""
    layers = list(layers) if layers else group_layers(names)
    return ", ".join(layers[:limit]) + (f", ... ({len(layers)} layers)" if len(layers) > limit else "")


def parameters_frozen(c: ParameterCensus) -> list[Finding]:
    if not c.frozen:
        return []
    total = c.frozen_elements + c.trainable_elements
    return [Finding(FROZEN_PARAMETERS,
                    f"{c.frozen_elements:,} of {total:,} parameter elements are frozen ({len(c.frozen)} tensors: "
                    f"{listing(c.frozen, layers=c.frozen_layers)})",
                    {"frozen": c.frozen_elements, "trainable": c.trainable_elements, "frozen_tensors": len(c.frozen),
                     "layers": list(c.frozen_layers[:20])})]


def nothing_trainable(c: ParameterCensus) -> list[Finding]:
    if c.trainable or not c.frozen:
        return []
    return [Finding(NOTHING_TRAINABLE,
                    f"nothing is trainable: all {c.frozen_elements:,} parameter elements ({len(c.frozen)} tensors) "
                    "have requires_grad=False, so training cannot change the model",
                    {"frozen": c.frozen_elements, "trainable": 0, "layers": list(c.frozen_layers[:20])})]


def parameters_disconnected(c: ParameterCensus) -> list[Finding]:
    if not c.backward_ran or not c.no_grad or c.checkpointing:
        return []  # under checkpointing the cause is named by no-grad-under-checkpointing
    why = "" if c.loss_connected else "; the loss has no gradient path to the model at all (numpy/.item()/detach?)"
    return [Finding(DISCONNECTED_PARAMETERS,
                    f"{len(c.no_grad)} trainable parameter tensor(s) ({c.no_grad_elements:,} elements) got no "
                    f"gradient: {listing(c.no_grad, layers=c.no_grad_layers)}{why}",
                    {"count": len(c.no_grad), "elements": c.no_grad_elements, "layers": list(c.no_grad_layers[:20]),
                     "parameters": list(c.no_grad[:20]), "loss_connected": c.loss_connected},
                    hint="find where the graph is cut (a .detach(), torch.no_grad, numpy, an unused module); "
                         "'labeldiag grad-flow' shows where gradient stops")]


def loss_at_init(init: InitialLoss) -> list[Finding]:
    """With a fresh head the first loss is close to ln C; far from it means saturated logits or leaking labels."""
    if not init.head_fresh or init.loss is None or not math.isfinite(init.loss) or init.num_labels < 2:
        return []  # a non-finite loss is nonfinite-loss / loss-diverged
    ln_c = math.log(init.num_labels)
    ratio = init.loss / ln_c
    if T.LOSS_AT_INIT_MIN_RATIO <= ratio <= T.LOSS_AT_INIT_MAX_RATIO:
        return []
    high = ratio > T.LOSS_AT_INIT_MAX_RATIO
    return [Finding(LOSS_AT_INIT_OFF,
                    f"the loss with a fresh head is {init.loss:.3g}, {ratio:.2g} x ln({init.num_labels}) = {ln_c:.3g}, "
                    f"far {'above' if high else 'below'} it" + (" (saturated logits?)" if high else
                                                              " (labels leaking, or not cross-entropy?)"),
                    {"loss": init.loss, "ln_num_labels": ln_c, "ratio": ratio,
                     "allowed": [T.LOSS_AT_INIT_MIN_RATIO, T.LOSS_AT_INIT_MAX_RATIO]},
                    hint="scale the logits (temperature, LayerNorm) or check the head's init" if high else
                    "check that the labels do not reach the input and that the loss is cross-entropy")]
