"""check-logits, smoke-train and grad-flow on token classifiers (issue 22): the shape branch of
pipeline/shapes.py hands the token task here."""
from __future__ import annotations

import dataclasses

import numpy as np

from labeldiag.pipeline.common import Session, ready_for_forward, untrained_head_noted
from labeldiag.errors import UsageError
from labeldiag.findings import Report


def check_logits(s: Session) -> Report:
    from labeldiag.checks.label_order import label_order_mismatch
    from labeldiag.checks.labels import check_label_map
    from labeldiag.checks.logits import check_finite_logits
    from labeldiag.checks.tokens_tagging import (bio_labels_malformed, entities_truncated, label_alignment_off,
                                                 no_token_labels, token_predictions)
    from labeldiag.measure.token_data import token_logits
    from labeldiag.records import flat_labelled, scheme_report, summarize_tokens

    report, enc, model, opts, gold = s.report, s.encoded, s.loaded.model, s.opts, s.shaped_gold
    untrained_head = untrained_head_noted(s)
    names = [s.loaded.info.id2label.get(i, f"LABEL_{i}") for i in range(s.num_classes)]
    report.add(label_order_mismatch(s.examples.declared_label_names, "the data's ClassLabel", s.loaded.info.id2label,
                                    s.loaded.info.num_labels))
    if gold is not None:
        report.data["alignment"] = gold.alignment
        report.add(no_token_labels(gold) + entities_truncated(gold))
    if not ready_for_forward(s):
        return report
    with opts.progress.bar(len(enc.ids), "forward") as advance:
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
    shifted = [] if untrained_head else label_alignment_off(summary)
    # tags one position off put the predictions read at the labelled positions out of step: their scheme
    # breaks follow from that, so only id2label's names are judged then
    report.add(bio_labels_malformed(scheme, None if untrained_head or shifted else summary))
    if not untrained_head:
        flat, tags = flat_labelled(logits, labels)
        report.add(token_predictions(flat, tags, names))
        report.add(shifted)
    report.metrics["token"] = dataclasses.asdict(summary)
    report.metrics["labelled_tokens"] = summary.tokens
    report.metrics["accuracy"] = summary.accuracy  # token accuracy: what fix's re-check holds a new id2label to
    return report


def token_batch(s: Session, opts) -> np.ndarray | None:
    """smoke-train's fixed batch: up to --max-examples examples with a labelled token (seeded); None, with
    no-token-labels reported, when no example has one."""
    from labeldiag.checks.tokens_tagging import no_token_labels

    empty = no_token_labels(s.shaped_gold)
    if empty:
        s.report.add(empty)
        return None
    pool = np.flatnonzero([(row >= 0).any() for row in s.shaped_gold.labels])
    return np.sort(pool[np.random.default_rng(opts.seed).permutation(pool.size)[:opts.max_examples]])


def token_targets(gold, rows: np.ndarray, enc) -> np.ndarray:
    """The tags of `rows` as one [rows, longest] int64 array, -100 on padding (collate pads on the right)."""
    width = max(len(enc.ids[i]) for i in rows)
    out = np.full((len(rows), width), -100, dtype=np.int64)
    for k, i in enumerate(rows):
        out[k, :len(gold.labels[i])] = gold.labels[i]
    return out


def labelled_token_rows(s: Session, command: str) -> tuple[np.ndarray, np.ndarray]:
    """grad-flow's examples (those with a labelled token) and their tags [N, longest], -100 padded."""
    gold = s.shaped_gold
    rows = np.flatnonzero([(row >= 0).any() for row in gold.labels])
    if not rows.size:
        raise UsageError(f"{command} needs labelled tokens; every token label in DATA is -100 or none survives "
                         "alignment (run check-logits: no-token-labels)")
    return rows, token_targets(gold, rows, s.encoded)
