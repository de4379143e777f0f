"""Findings from the load audit (every command)."""
from __future__ import annotations

from labeldiag.findings import Finding
from labeldiag.records import LoadAudit
from labeldiag.catalogue import (
    HEAD_UNINITIALIZED, PRETRAINING_HEAD_UNUSED, UNUSED_CHECKPOINT_WEIGHTS, WEIGHTS_REINITIALIZED,
)


def _group(keys: list[str], depth: int = 2) -> list[str]:
    """Shorten parameter names to their module (first `depth` parts) so long lists stay readable."""
    seen: list[str] = []
    for k in keys:
        head = ".".join(k.split(".")[:depth]) if "." in k else k
        if head not in seen:
            seen.append(head)
    return seen


def check_load_audit(audit: LoadAudit, fresh_head_expected: bool) -> list[Finding]:
    out: list[Finding] = []
    if audit.missing_head:
        how = ("look freshly initialized (zero biases, weights at the initializer's scale)"
               if audit.source == "statistics" else "were not in the checkpoint and were freshly initialized")
        out.append(Finding(
            HEAD_UNINITIALIZED,
            f"{len(audit.missing_head)} head weight(s) {how} ({', '.join(_group(audit.missing_head)[:4])})"
            + (" — normal at the start of fine-tuning" if fresh_head_expected else ""),
            {"missing": audit.missing_head[:20], "count": len(audit.missing_head),
             "mismatched": [list(map(str, m)) for m in audit.mismatched][:10], "attached_head": audit.attached_head},
        ))
    if audit.missing_body:
        groups = _group(audit.missing_body, 3)
        out.append(Finding(
            WEIGHTS_REINITIALIZED,
            f"{len(audit.missing_body)} encoder/embedding weight(s) were missing from the checkpoint and were "
            f"freshly initialized ({', '.join(groups[:4])}{', ...' if len(groups) > 4 else ''})",
            {"missing": audit.missing_body[:20], "count": len(audit.missing_body), "modules": groups[:20]},
        ))
    if audit.unused:
        groups = _group(audit.unused, 2)
        out.append(Finding(
            UNUSED_CHECKPOINT_WEIGHTS,
            f"the checkpoint holds {len(audit.unused)} weight(s) the model did not use "
            f"({', '.join(groups[:4])}{', ...' if len(groups) > 4 else ''})",
            {"unused": audit.unused[:20], "count": len(audit.unused)},
        ))
    if audit.unused_pretraining:
        out.append(Finding(
            PRETRAINING_HEAD_UNUSED,
            f"the checkpoint's pretraining head ({', '.join(_group(audit.unused_pretraining)[:3])}) is not used by a classifier",
            {"count": len(audit.unused_pretraining)},
        ))
    return out
