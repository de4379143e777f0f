"""doctor's ranking: which finding is the root cause, which ones are its symptoms.

Every rule is read as "CAUSE explains these SYMPTOMS": a missing head explains uniform logits and
chance predictions; a detached pooled vector explains disconnected parameters downstream and a batch
that cannot be fitted. A finding explained by a higher-ranked cause that was also found is shown
under that cause, not as a problem of its own.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labeldiag.findings import Finding

# root causes, most fundamental first: what the checkpoint and data are, then how gradient flows,
# then how the model behaves; a code's position is its rank when several are found
CAUSES: list[tuple[str, set[str], float]] = [
    ("tokenizer-model-mismatch", {"unk-heavy", "random-predictions", "uniform-logits", "constant-predictions",
                                  "input-independent-logits", "cannot-overfit", "foreign-token-ids"}, 0.9),
    ("weights-reinitialized", {"random-predictions", "uniform-logits", "constant-predictions",
                               "representation-collapse", "input-independent-logits", "underconfident-predictions",
                               "loss-at-init-off"}, 0.9),
    # a fresh head starts from scratch: at a fine-tuning lr a short smoke run may not fit the batch
    ("head-uninitialized", {"random-predictions", "uniform-logits", "constant-predictions",
                            "underconfident-predictions", "input-independent-logits", "label-permutation",
                            "cannot-overfit", "slow-convergence"}, 0.9),
    # values of 1e37 saturate every logit: whatever the predictions look like follows from them
    ("head-weights-garbage", {"logit-saturation", "label-permutation", "constant-predictions", "random-predictions",
                              "nonfinite-logits", "nonfinite-loss", "nonfinite-gradients", "loss-diverged",
                              "exploding-gradients", "cannot-overfit", "loss-at-init-off", "uniform-logits"}, 0.95),
    ("pad-token-missing", {"padding-sensitive-logits", "random-predictions"}, 0.9),
    ("label-map-inconsistent", {"label-permutation", "label-names-generic"}, 0.85),
    ("label-order-mismatch", {"label-permutation", "random-predictions"}, 0.85),
    ("label-set-mismatch", {"random-predictions", "constant-predictions", "cannot-overfit"}, 0.85),
    ("labels-out-of-range", {"random-predictions", "cannot-overfit", "constant-predictions"}, 0.85),
    ("problem-type-mismatch", {"loss-at-init-off", "cannot-overfit", "uniform-logits", "random-predictions",
                               "constant-predictions"}, 0.85),
    ("nothing-trainable", {"frozen-parameters", "cannot-overfit", "parameters-unchanged"}, 0.95),
    ("nonfinite-loss", {"nonfinite-gradients", "loss-diverged", "cannot-overfit", "parameters-unchanged"}, 0.9),
    ("nonfinite-gradients", {"loss-diverged", "cannot-overfit", "parameters-unchanged"}, 0.85),
    ("disconnected-parameters", {"cannot-overfit", "parameters-unchanged", "zero-gradients", "vanishing-gradients",
                                 "collapse-during-training", "slow-convergence"}, 0.85),
    ("no-grad-under-checkpointing", {"cannot-overfit", "parameters-unchanged", "zero-gradients",
                                     "vanishing-gradients", "slow-convergence"}, 0.9),
    ("half-precision-weights", {"parameters-unchanged", "loss-diverged", "cannot-overfit", "nonfinite-loss"}, 0.75),
    ("no-grad-to-label-tokens", {"random-predictions", "cannot-overfit", "uniform-logits"}, 0.8),
    ("padding-sensitive-logits", {"random-predictions", "nondeterministic-eval"}, 0.8),
    # issue 20: a damaged tensor or layer explains the degraded predictions and the other layer verdicts it causes
    ("weights-far-from-base", {"layer-weights-anomalous", "residual-stream-anomalous", "attention-degenerate",
                               "classes-never-predicted", "random-predictions", "constant-predictions",
                               "uniform-logits", "representation-collapse", "input-independent-logits",
                               "logit-saturation"}, 0.9),
    ("layer-weights-anomalous", {"residual-stream-anomalous", "attention-degenerate", "classes-never-predicted",
                                 "random-predictions", "constant-predictions", "uniform-logits",
                                 "representation-collapse", "input-independent-logits", "logit-saturation"}, 0.8),
    ("attention-degenerate", {"random-predictions", "constant-predictions", "uniform-logits",
                              "representation-collapse", "input-independent-logits", "classes-never-predicted"}, 0.7),
    ("residual-stream-anomalous", {"random-predictions", "constant-predictions", "uniform-logits",
                                   "representation-collapse", "input-independent-logits", "classes-never-predicted",
                                   "logit-saturation"}, 0.7),
    ("logit-saturation", {"loss-at-init-off", "exploding-gradients", "zero-gradients", "loss-diverged",
                          "cannot-overfit", "collapse-during-training"}, 0.75),
    ("learning-rate-too-high", {"loss-diverged", "collapse-during-training", "cannot-overfit",
                                "exploding-gradients"}, 0.75),
    ("exploding-gradients", {"loss-diverged", "cannot-overfit"}, 0.7),
    ("representation-collapse", {"constant-predictions", "input-independent-logits", "random-predictions",
                                 "uniform-logits", "collapse-during-training"}, 0.75),
    ("input-independent-logits", {"constant-predictions", "random-predictions", "uniform-logits"}, 0.75),
    ("loss-term-without-gradient", set(), 0.7),
    # permuted names also permute the training targets: the model must unlearn its mapping to fit them
    ("label-permutation", {"cannot-overfit", "slow-convergence", "collapse-during-training"}, 0.9),
]
RANK = {code: i for i, (code, _, _) in enumerate(CAUSES)}
# warnings that follow from the user's own options (truncation-heavy: their --max-length), not from the
# model: doctor lists them as notes under the diagnosis, never as a cause of the model's behaviour
OPTION_CONSEQUENCES = {"truncation-heavy"}
SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}


def rank_findings(findings: list[Finding]) -> list[dict[str, Any]]:
    """One ranked list: each entry a cause (or a finding no cause explains) with the symptoms it explains.

    Info findings never rank (they describe, they do not diagnose), nor do consequences of the options.
    """
    problems = [f for f in findings if f.severity != "info" and f.code not in OPTION_CONSEQUENCES]
    codes = {f.code for f in problems}
    explained_by: dict[str, str] = {}
    causes = sorted((f for f in problems if f.code in RANK), key=lambda f: RANK[f.code])
    for cause in causes:
        if cause.code in explained_by:
            continue  # itself a symptom of a cause ranked above it
        for code in codes & CAUSES[RANK[cause.code]][1]:
            explained_by.setdefault(code, cause.code)
    entries = []
    for f in sorted(problems, key=lambda f: (RANK.get(f.code, len(RANK)), SEVERITY_RANK[f.severity])):
        if f.code in explained_by:
            continue
        symptoms = sorted(c for c, by in explained_by.items() if by == f.code)
        base = CAUSES[RANK[f.code]][2] if f.code in RANK else 0.5
        confidence = min(0.99, base + 0.03 * len(symptoms)) if f.severity == "error" else base - 0.15
        why = f.message + (f"; this explains {', '.join(symptoms)}" if symptoms else "")
        entries.append({"code": f.code, "severity": f.severity, "confidence": round(confidence, 2),
                        "why": why, "explains": symptoms, "next": f.hint})
    entries.sort(key=lambda e: (SEVERITY_RANK[e["severity"]], RANK.get(e["code"], len(RANK))))
    for i, e in enumerate(entries, 1):
        e["rank"] = i
    return entries
