"""check-logits: is logit i label i, and are predictions degenerate?

A plan: prepare() loads and tokenizes; measure() runs every pass over the model and returns one LogitsRun;
one judging pass over logits_checks() adds the findings; record() writes the metrics and notes.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from labeldiag import thresholds as T
from labeldiag.findings import Report, plain
from labeldiag.options import Options
from labeldiag.pipeline.common import Inputs, Session, next_command, prepare, tokens_fit_model
from labeldiag.checks import Check, judge_into
from labeldiag.records import ForwardSpeed, LogitStats, LogitsRun, LogitsSummary, Representation, TokenCounts


def run(inputs: Inputs, opts: Options, settings: None = None) -> Report:
    from labeldiag.checks.labels import check_label_map
    from labeldiag.load.base_model import resolve_base

    s = prepare(inputs, opts, "check-logits", fresh_head_expected=False)
    if s.task.kind != "single-label":
        from labeldiag.pipeline import shapes

        return shapes.check_logits(s)
    base = resolve_base(opts.base_model, s.loaded.info.path)  # issue 20: found (or refused) before any work
    if s.loaded.audit.missing_head:
        s.report.notes.insert(0, "this checkpoint has no trained classification head (see head-uninitialized): its "
                                 "predictions are random, so no verdict is drawn from them; to see whether the "
                                 f"model can learn the task, run: {next_command(s, 'smoke-train')}")
    if not tokens_fit_model(s):  # token ids beyond the embedding table: no forward pass
        return judge_into(s.report, [(check_label_map, s.loaded.info, None)])
    measured = measure(s, base)
    judge_into(s.report, logits_checks(s, measured, base))
    record(s, measured, base)
    return s.report


def measure(s: Session, base: str | None) -> LogitsRun:
    """Every measurement, in the order it runs: how the token ids were made, the main forward pass (with the
    head's features and the activations read on its first batches), the second pass over whole batches of it,
    the blanked-input baseline when the logits barely move, the padding probe, and the weights."""
    from labeldiag.checks.logits import feature_stats, reads_its_input
    from labeldiag.load.dispatch import announce as announce_dispatch, place
    from labeldiag.measure.activations import ActivationTap
    from labeldiag.measure.encode import blanked, subset
    from labeldiag.measure.forward import run_forward, whole_batch_rows
    from labeldiag.measure.padding import padding_sides, probe_padding
    from labeldiag.measure.provenance import measure_casing, measure_round_trip
    from labeldiag.pipeline.inside import measure_inside

    opts, enc, model, tokenizer = s.opts, s.encoded, s.loaded.model, s.loaded.tokenizer
    casing = measure_casing(tokenizer, s.examples.texts)
    round_trip = (measure_round_trip(enc, tokenizer, T.FOREIGN_IDS_SAMPLE, opts.seed)
                  if s.examples.tokenized is not None else None)
    place(model, s.runtime.device)  # a dispatched model stays where accelerate put it
    announce_dispatch(s.report, model)
    model.eval()
    tap = ActivationTap(model, T.ACTIVATION_SAMPLE)  # issue 20: activations read during this forward
    try:
        with opts.progress.bar(len(enc.ids), "forward") as advance:
            main = run_forward(model, enc, s.runtime, opts.batch_size, feature_rows=T.FEATURE_SAMPLE,
                               progress=advance)
    finally:
        activations = tap.close()
    logits = main.logits
    keep = np.flatnonzero(np.isfinite(logits).all(axis=1))
    # issue 20: the second pass repeats whole batches of the first, so padding cannot pass for nondeterminism
    same = whole_batch_rows(enc, opts.batch_size, T.SUBSET_FOR_EXTRA_PASSES, opts.seed)
    # the blanked-input baseline on a fixed random subset, only when the logits barely move across inputs
    # (otherwise it could not change the verdict)
    picked = np.sort(np.random.default_rng(opts.seed).choice(
        keep.size, size=min(keep.size, T.SUBSET_FOR_EXTRA_PASSES), replace=False))
    again = blank = None
    padding: list = []
    if keep.size:
        with opts.progress.phase(f"second pass on {same.size} examples"):
            again = run_forward(model, subset(enc, same), s.runtime, opts.batch_size, capture_features=False).logits
        if not reads_its_input(logits[keep]):
            with opts.progress.phase(f"blanked inputs on {picked.size} examples"):
                blank = run_forward(model, blanked(enc, keep[picked]), s.runtime, opts.batch_size,
                                    capture_features=False).logits
        padding = probe_padding(model, enc, s.runtime, padding_sides(tokenizer), opts.seed)
    sampled = main.features is not None and main.features.shape[0] >= 2
    weights, distances = measure_inside(model, base)
    return LogitsRun(logits=logits, seconds=main.seconds, casing=casing, round_trip=round_trip, finite_rows=keep,
                     second_rows=same, second_logits=again, blank_rows=picked, blank_logits=blank,
                     padding=tuple(padding),
                     features=feature_stats(main.features.astype(np.float64)) if sampled else None,
                     feature_rows=main.features.shape[0] if sampled else 0,
                     feature_source=main.feature_source, activations=activations, weights=weights,
                     base_distances=distances)


def logits_checks(s: Session, m: LogitsRun, base: str | None) -> Iterator[Check]:
    """The checks that apply to this run, as (check, inputs) pairs in the order their findings are reported."""
    from labeldiag.checks.label_order import label_order_mismatch
    from labeldiag.checks.labels import check_label_map
    from labeldiag.checks.logits import check_determinism, check_features, check_finite_logits, check_input_dependence
    from labeldiag.checks.padding import padding_sensitive_logits
    from labeldiag.checks.predictions import prediction_checks
    from labeldiag.checks.provenance import foreign_token_ids, tokenizer_casing_mismatch
    from labeldiag.pipeline.inside import inside_checks

    info, logits, keep = s.loaded.info, m.logits, m.finite_rows
    yield tokenizer_casing_mismatch, m.casing
    yield foreign_token_ids, m.round_trip
    yield check_label_map, info, logits.shape[1]
    for declared, source in ((s.examples.declared_label_names, "the data's ClassLabel"),
                             (getattr(s.opts, "labels", None), "--labels")):
        yield label_order_mismatch, declared, source, info.id2label, info.num_labels
    yield check_finite_logits, logits
    if keep.size:
        finite = np.isfinite(logits[m.second_rows]).all(axis=1)
        if finite.any():
            yield check_determinism, logits[m.second_rows][finite], m.second_logits[finite], s.runtime.precision
        yield check_input_dependence, logits[keep], m.blank_logits, m.blank_rows
        yield padding_sensitive_logits, list(m.padding)
        if not s.loaded.audit.missing_head:  # a random head's predictions measure nothing: no verdicts on them
            yield from prediction_checks(*judged_predictions(s, m), s.report)
    if m.features is not None:
        yield check_features, m.features, m.feature_rows, m.feature_source
    yield from inside_checks(m.weights, m.activations, m.base_distances, base)


def judged_predictions(s: Session, m: LogitsRun) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """The logits the prediction verdicts read (the finite rows; with usable gold labels, the labelled ones),
    their gold class indices (None without labels) and the class names."""
    c = m.logits.shape[1]
    names = [s.loaded.info.id2label.get(i, f"LABEL_{i}") for i in range(c)]
    if s.gold is not None and s.gold.index_names:
        names[: len(s.gold.index_names)] = [str(x) for x in s.gold.index_names][:c]
    if s.gold is not None:
        usable = np.isfinite(m.logits).all(axis=1) & s.gold.usable & (s.gold.indices < c)
        if usable.any():
            return m.logits[usable], s.gold.indices[usable], names
    return m.logits[m.finite_rows], None, names


def record(s: Session, m: LogitsRun, base: str | None) -> None:
    """The metrics (typed records on the report, their keys in the JSON's order) and notes of the run."""
    from labeldiag.checks.logits import metrics
    from labeldiag.pipeline.inside import record_inside

    report, logits, n, enc = s.report, m.logits, len(m.logits), s.encoded
    report.attach(ForwardSpeed(round(m.seconds, 3), round(n / m.seconds, 1) if m.seconds > 0 else None))
    if m.finite_rows.size < n:
        report.notes.append(f"the verdicts below use the {m.finite_rows.size} examples with finite logits")
    untrained_head = bool(s.loaded.audit.missing_head)
    if m.finite_rows.size and (untrained_head or logits.shape[1] >= 2):
        predicted, gold, names = judged_predictions(s, m)
        report.attach(LogitsSummary.from_metrics(plain(metrics(predicted, gold, names))))
        if gold is not None and not untrained_head:
            report.metrics["labelled_examples"] = int(len(gold))
    if m.features is not None:
        report.attach(Representation(m.features["mean_cosine"], m.features["relative_spread"],
                                     m.features["effective_rank"], m.feature_source))
    record_inside(report, m.activations, m.base_distances, base)
    stats = enc.stats
    report.attach(TokenCounts(stats.max_length, stats.truncated,
                              (stats.unk_tokens / stats.content_tokens) if stats.content_tokens else 0.0,
                              stats.max_token_id, stats.embedding_rows))
    report.attach(_logit_stats(logits))


def _logit_stats(logits: np.ndarray) -> LogitStats:
    srt = np.sort(logits, axis=1)
    gaps = srt[:, -1] - srt[:, -2] if logits.shape[1] > 1 else np.zeros(len(logits))
    return LogitStats(median_top2_gap=float(np.median(gaps)) if len(gaps) else None,
                      max_abs_logit=float(np.abs(logits).max()) if logits.size else None,
                      mean_logit_std_across_inputs=float(logits.std(0).mean()) if len(logits) > 1 else None)
