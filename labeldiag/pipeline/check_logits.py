"""check-logits: is logit i label i, and are predictions degenerate?"""
from __future__ import annotations

import numpy as np

from labeldiag import thresholds as T
from labeldiag.pipeline.common import Inputs, next_command, prepare, tokens_fit_model
from labeldiag.findings import Report, plain
from labeldiag.options import Options
from labeldiag.records import LogitsSummary


def run(inputs: Inputs, opts: Options, settings: None = None) -> Report:
    from labeldiag.checks.labels import check_label_map
    from labeldiag.checks.logits import (check_determinism, check_features, check_finite_logits,
                                         check_input_dependence, feature_stats, metrics,
                                         reads_its_input)
    from labeldiag.checks.label_order import label_order_mismatch
    from labeldiag.checks.padding import padding_sensitive_logits
    from labeldiag.checks.provenance import foreign_token_ids, tokenizer_casing_mismatch
    from labeldiag.checks.predictions import prediction_findings
    from labeldiag.pipeline.inside import inside_findings
    from labeldiag.load.base_model import resolve_base
    from labeldiag.load.dispatch import announce as announce_dispatch, place
    from labeldiag.measure.activations import ActivationTap
    from labeldiag.measure.encode import blanked, subset
    from labeldiag.measure.forward import run_forward, whole_batch_rows
    from labeldiag.measure.padding import padding_sides, probe_padding
    from labeldiag.measure.provenance import measure_casing, measure_round_trip

    s = prepare(inputs, opts, "check-logits", fresh_head_expected=False)
    if s.task.kind != "single-label":
        from labeldiag.pipeline import shapes

        return shapes.check_logits(s)
    report, enc, model = s.report, s.encoded, s.loaded.model
    base = resolve_base(opts.base_model, s.loaded.info.path)  # issue 20: found (or refused) before any work
    untrained_head = bool(s.loaded.audit.missing_head)
    if untrained_head:
        report.notes.insert(0, "this checkpoint has no trained classification head (see head-uninitialized): its "
                               "predictions are random, so no verdict is drawn from them; to see whether the "
                               f"model can learn the task, run: {next_command(s, 'smoke-train')}")
    if not tokens_fit_model(s):
        report.add(check_label_map(s.loaded.info, None))
        return report
    report.add(tokenizer_casing_mismatch(measure_casing(s.loaded.tokenizer, s.examples.texts)))
    if s.examples.tokenized is not None:
        report.add(foreign_token_ids(measure_round_trip(enc, s.loaded.tokenizer, T.FOREIGN_IDS_SAMPLE, opts.seed)))
    place(model, s.runtime.device)  # a dispatched model stays where accelerate put it
    announce_dispatch(report, model)
    model.eval()
    n = len(enc.ids)
    tap = ActivationTap(model, T.ACTIVATION_SAMPLE)  # issue 20: activations read during this forward
    try:
        with opts.progress.bar(n, "forward") as advance:
            main = run_forward(model, enc, s.runtime, opts.batch_size, feature_rows=T.FEATURE_SAMPLE,
                               progress=advance)
    finally:
        activations = tap.close()
    logits = main.logits
    report.metrics["forward_seconds"] = round(main.seconds, 3)
    report.metrics["examples_per_second"] = round(n / main.seconds, 1) if main.seconds > 0 else None
    c = logits.shape[1]
    report.add(check_label_map(s.loaded.info, c))
    for declared, source in ((s.examples.declared_label_names, "the data's ClassLabel"),
                             (getattr(opts, "labels", None), "--labels")):
        report.add(label_order_mismatch(declared, source, s.loaded.info.id2label, s.loaded.info.num_labels))
    names = [s.loaded.info.id2label.get(i, f"LABEL_{i}") for i in range(c)]
    if s.gold is not None and s.gold.index_names:
        names[: len(s.gold.index_names)] = [str(x) for x in s.gold.index_names][:c]
    report.add(check_finite_logits(logits))
    finite = np.isfinite(logits).all(axis=1)
    if not finite.all():
        report.notes.append(f"the verdicts below use the {int(finite.sum())} examples with finite logits")
    keep = np.flatnonzero(finite)
    if keep.size:
        # second eval pass on a fixed random subset, and the blanked-input baseline when the logits
        # barely move across inputs (otherwise it could not change the verdict)
        rng = np.random.default_rng(opts.seed)
        picked = np.sort(rng.choice(keep.size, size=min(keep.size, T.SUBSET_FOR_EXTRA_PASSES), replace=False))
        rows = keep[picked]
        # issue 20: the second pass repeats whole batches of the first, so padding cannot pass for nondeterminism
        same = whole_batch_rows(enc, opts.batch_size, T.SUBSET_FOR_EXTRA_PASSES, opts.seed)
        with opts.progress.phase(f"second pass on {same.size} examples"):
            again = run_forward(model, subset(enc, same), s.runtime, opts.batch_size, capture_features=False)
        if finite[same].any():
            report.add(check_determinism(logits[same][finite[same]], again.logits[finite[same]], s.runtime.precision))
        blank_logits = None
        if not reads_its_input(logits[keep]):
            with opts.progress.phase(f"blanked inputs on {rows.size} examples"):
                blank_logits = run_forward(model, blanked(enc, rows), s.runtime, opts.batch_size,
                                           capture_features=False).logits
        report.add(check_input_dependence(logits[keep], blank_logits, picked))
        report.add(padding_sensitive_logits(probe_padding(model, enc, s.runtime, padding_sides(s.loaded.tokenizer),
                                                          opts.seed)))
        usable = finite & (s.gold.usable & (s.gold.indices < c)) if s.gold is not None else None
        labelled = usable is not None and usable.any()
        if untrained_head:  # a random head's predictions measure nothing: metrics only, no verdicts on them
            measured = (metrics(logits[usable], s.gold.indices[usable], names) if labelled
                        else metrics(logits[keep], None, names))
            report.attach(LogitsSummary.from_metrics(plain(measured)))
        elif labelled:
            prediction_findings(report, logits[usable], s.gold.indices[usable], names)
        else:
            prediction_findings(report, logits[keep], None, names)
    if main.features is not None and main.features.shape[0] >= 2:
        # one set of statistics for the verdict and the metrics, on the forward's bounded feature sample
        sample = main.features.astype(np.float64)
        fs = feature_stats(sample)
        report.add(check_features(fs, sample.shape[0], main.feature_source))
        report.metrics.update({"representation_mean_cosine": fs["mean_cosine"],
                               "representation_relative_spread": fs["relative_spread"],
                               "representation_effective_rank": fs["effective_rank"],
                               "representation_source": main.feature_source})
    # issue 20: the model's own weights and activations, and the base model when there is one
    inside_findings(report, model, activations, base)
    report.metrics["token_stats"] = {
        "max_length": enc.stats.max_length, "truncated_examples": enc.stats.truncated,
        "unk_share": (enc.stats.unk_tokens / enc.stats.content_tokens) if enc.stats.content_tokens else 0.0,
        "max_token_id": enc.stats.max_token_id, "embedding_rows": enc.stats.embedding_rows,
    }
    report.metrics["logit_stats"] = _logit_stats(logits)
    return report


def _logit_stats(logits: np.ndarray) -> dict:
    srt = np.sort(logits, axis=1)
    gaps = srt[:, -1] - srt[:, -2] if logits.shape[1] > 1 else np.zeros(len(logits))
    return {"median_top2_gap": float(np.median(gaps)) if len(gaps) else None,
            "max_abs_logit": float(np.abs(logits).max()) if logits.size else None,
            "mean_logit_std_across_inputs": float(logits.std(0).mean()) if len(logits) > 1 else None}
