"""The data's declared class order against the model's id2label (static: no forward pass, no labels)."""
from __future__ import annotations

import re

from labeldiag.findings import Finding
from labeldiag.catalogue import LABEL_ORDER_MISMATCH

GENERIC = re.compile(r"^LABEL_\d+$")


def label_order_mismatch(declared: list[str] | None, source: str, id2label: dict[int, str],
                         num_labels: int) -> list[Finding]:
    """`declared`: class names in index order as the data (or --labels) gives them; `source` says where from."""
    if not declared or num_labels < 2:
        return []
    model = [id2label.get(i) for i in range(num_labels)]
    if any(name is None or GENERIC.match(name) for name in model) or len(declared) != num_labels:
        return []  # generic or incomplete names, or another class count: other codes speak to those

    def norm(name: str) -> str:
        return str(name).strip().lower()

    ours, theirs = [norm(n) for n in model], [norm(n) for n in declared]
    if sorted(ours) != sorted(theirs) or len(set(ours)) != len(ours) or ours == theirs:
        return []
    moved = {str(declared[i]): {"data_index": i, "model_index": ours.index(theirs[i])}
             for i in range(num_labels) if ours[i] != theirs[i]}
    return [Finding(
        LABEL_ORDER_MISMATCH,
        f"{source} declares the classes as [{', '.join(map(str, declared))}] but the model's id2label is "
        f"[{', '.join(model)}]: {len(moved)} of {num_labels} class indices mean another class",
        {"declared": list(declared), "id2label": model, "source": source, "moved": moved},
    )]
