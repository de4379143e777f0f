"""check-logits, smoke-train and grad-flow on token classifiers (issue 22): the shape branch of
pipeline/shapes.py hands the token task here."""
from __future__ import annotations

import dataclasses

import numpy as np

from labeldiag.pipeline.common import Session, ready_for_forward, untrained_head_noted
from labeldiag.errors import UsageError
from labeldiag.findings import Report
from labeldiag.checks import judge_into
from labeldiag.records import summarize_tokens


def check_logits(s: Session) -> Report:
    """The data's tagging checks -> one forward pass -> the token summary -> one judging pass -> metrics."""
    from labeldiag.checks.label_order import label_order_mismatch
    from labeldiag.checks.tokens_tagging import entities_truncated, no_token_labels
    from labeldiag.measure.token_data import token_logits

    report, gold, info = s.report, s.shaped_gold, s.loaded.info
    untrained_head = untrained_head_noted(s)
    report.add(label_order_mismatch(s.examples.declared_label_names, "the data's ClassLabel", info.id2label,
                                    info.num_labels))
    if gold is not None:
        report.data["alignment"] = gold.alignment
        report.add(no_token_labels(gold) + entities_truncated(gold))
    if not ready_for_forward(s):
        return report
    with s.opts.progress.bar(len(s.encoded.ids), "forward") as advance:
        logits = token_logits(s.loaded.model, s.encoded, s.runtime, s.opts.batch_size, progress=advance)
    c = logits[0].shape[1] if logits else s.num_classes
    names = ([info.id2label.get(i, f"LABEL_{i}") for i in range(s.num_classes)]
             + [f"LABEL_{i}" for i in range(s.num_classes, c)])[:c]
    labels = summary = None
    if gold is not None and gold.kept_tags:
        labels = [np.where(np.isfinite(row).all(1), g, -100) for g, row in zip(gold.labels, logits)]
        summary = summarize_tokens(logits, labels, names)
    judge_into(report, token_checks(s, logits, labels, summary, names, untrained_head))
    if summary is None:
        preds = np.concatenate([row.argmax(1) for row in logits]) if logits else np.zeros(0, np.int64)
        report.metrics["token"] = {"tokens": int(preds.size), "predicted_rate": {
            names[k]: float(v / max(1, preds.size)) for k, v in enumerate(np.bincount(preds, minlength=c))}}
        return report
    report.metrics["token"] = dataclasses.asdict(summary)
    report.metrics["labelled_tokens"] = summary.tokens
    report.metrics["accuracy"] = summary.accuracy  # token accuracy: what fix's re-check holds a new id2label to
    return report


def token_checks(s: Session, logits: list[np.ndarray], labels: list[np.ndarray] | None, summary,
                 names: list[str], untrained_head: bool):
    """The (check, inputs) pairs after a token classifier's forward pass, in report order. Without gold tags only
    id2label's scheme is judged; tags one position off put the predictions read at the labelled positions out of
    step, so their scheme breaks follow from that and only id2label's names are judged then."""
    from labeldiag.checks.labels import check_label_map
    from labeldiag.checks.logits import check_finite_logits
    from labeldiag.checks.tokens_tagging import bio_labels_malformed, label_alignment_off, token_predictions
    from labeldiag.records import flat_labelled, scheme_report

    c = len(names)
    yield check_label_map, s.loaded.info, c
    yield check_finite_logits, np.concatenate(logits) if logits else np.zeros((0, c), np.float32)
    scheme = scheme_report(names)
    if summary is None:
        yield bio_labels_malformed, scheme, None
        return
    shifted = not untrained_head and bool(label_alignment_off(summary))
    yield bio_labels_malformed, scheme, None if untrained_head or shifted else summary
    if not untrained_head:
        yield token_predictions, *flat_labelled(logits, labels), names
        yield label_alignment_off, summary


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
