"""check-logits, smoke-train and grad-flow on token classifiers (issue 22): the shape branch of
commands/shapes.py hands the token task here."""
from __future__ import annotations

import dataclasses

import numpy as np

from labeldiag.commands.common import Session, tokens_fit_model
from labeldiag.errors import UsageError
from labeldiag.findings import Report


def check_logits(s: Session) -> Report:
    from labeldiag.checks.labels import check_label_map
    from labeldiag.checks.logits import check_finite_logits
    from labeldiag.checks.tokens_tagging import (bio_labels_malformed, entities_truncated, label_alignment_off,
                                                 no_token_labels, token_predictions)
    from labeldiag.measure.token_data import token_logits
    from labeldiag.render.progress import progress_bar
    from labeldiag.tagging import flat_labelled, scheme_report, summarize_tokens

    report, enc, model, opts, gold = s.report, s.encoded, s.loaded.model, s.opts, s.shaped_gold
    untrained_head = bool(s.loaded.audit.missing_head)
    if untrained_head:
        report.notes.insert(0, "this checkpoint has no trained head (see head-uninitialized): its predictions are "
                               "random, so no verdict is drawn from them")
    names = [s.loaded.info.id2label.get(i, f"LABEL_{i}") for i in range(s.num_classes)]
    if gold is not None:
        report.data["alignment"] = gold.alignment
        report.add(no_token_labels(gold) + entities_truncated(gold))
    if not tokens_fit_model(s):
        report.add(check_label_map(s.loaded.info, None))
        return report
    model.to(s.runtime.device)
    model.eval()
    with progress_bar(len(enc.ids), "forward", opts.progress) as advance:
        logits = token_logits(model, enc, s.runtime, opts.batch_size, progress=advance)
    c = logits[0].shape[1] if logits else s.num_classes
    report.add(check_label_map(s.loaded.info, c))
    names = (names + [f"LABEL_{i}" for i in range(len(names), c)])[:c]
    report.add(check_finite_logits(np.concatenate(logits) if logits else np.zeros((0, c), np.float32)))
    scheme = scheme_report(names)
    if gold is None or not gold.kept_tags:
        report.add(bio_labels_malformed(scheme, None))
        preds = np.concatenate([row.argmax(1) for row in logits]) if logits else np.zeros(0, np.int64)
        report.metrics["token"] = {"tokens": int(preds.size), "predicted_rate": {
            names[k]: float(v / max(1, preds.size)) for k, v in enumerate(np.bincount(preds, minlength=c))}}
        return report
    finite = [np.isfinite(row).all(1) for row in logits]
    labels = [np.where(ok, g, -100) for g, ok in zip(gold.labels, finite)]
    summary = summarize_tokens(logits, labels, names)
    report.add(bio_labels_malformed(scheme, None if untrained_head else summary))
    if not untrained_head:
        flat, tags = flat_labelled(logits, labels)
        report.add(token_predictions(flat, tags, names))
        report.add(label_alignment_off(summary))
    report.metrics["token"] = dataclasses.asdict(summary)
    report.metrics["labelled_tokens"] = summary.tokens
    return report
