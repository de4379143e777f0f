"""check-logits: is logit i label i, and are predictions degenerate?"""
from __future__ import annotations

import numpy as np

from labeldiag import thresholds as T
from labeldiag.commands.common import CommonOptions, finish, prepare, tokens_fit_model


def run(opts: CommonOptions) -> int:
    from labeldiag.checks.labels import check_label_map
    from labeldiag.checks.logits import (check_determinism, check_features, check_input_dependence,
                                         check_logit_scale, check_predictions, feature_stats, metrics)
    from labeldiag.measure.encode import blanked, subset
    from labeldiag.measure.forward import run_forward
    from labeldiag.render.plots import plot_confusion
    from labeldiag.render.progress import progress_bar

    s = prepare(opts, "check-logits", fresh_head_expected=False)
    report, enc, model = s.report, s.encoded, s.loaded.model
    if not tokens_fit_model(s):
        report.add(check_label_map(s.loaded.info, None))
        return finish(s, opts, plot_confusion)
    model.to(s.runtime.device)
    model.eval()
    n = len(enc.ids)
    with progress_bar(n, "forward", opts.progress) as advance:
        main = run_forward(model, enc, s.runtime, opts.batch_size, progress=advance)
    logits = main.logits
    report.metrics["forward_seconds"] = round(main.seconds, 3)
    report.metrics["examples_per_second"] = round(n / main.seconds, 1) if main.seconds > 0 else None
    c = logits.shape[1]
    report.add(check_label_map(s.loaded.info, c))
    names = [s.loaded.info.id2label.get(i, f"LABEL_{i}") for i in range(c)]
    if s.gold is not None and s.gold.index_names:
        names[: len(s.gold.index_names)] = [str(x) for x in s.gold.index_names][:c]
    # second eval pass and blanked-input baseline on a fixed random subset
    rng = np.random.default_rng(opts.seed)
    k = min(n, T.SUBSET_FOR_EXTRA_PASSES)
    rows = np.sort(rng.choice(n, size=k, replace=False))
    again = run_forward(model, subset(enc, rows), s.runtime, opts.batch_size, capture_features=False)
    report.add(check_determinism(logits[rows], again.logits, s.runtime.precision))
    blank = run_forward(model, blanked(enc, rows), s.runtime, opts.batch_size, capture_features=False)
    report.add(check_input_dependence(logits, blank.logits, rows))
    if s.gold is not None and c >= 2:
        usable = s.gold.usable & (s.gold.indices < c)
        gold_idx = s.gold.indices[usable]
        report.add(check_predictions(logits[usable], gold_idx, names))
        report.add(check_logit_scale(logits[usable], gold_idx))
        if not usable.any():
            report.add(check_logit_scale(logits, None))
        report.metrics.update(metrics(logits[usable], gold_idx, names))
        report.metrics["labelled_examples"] = int(usable.sum())
    elif c >= 2:
        report.add(check_logit_scale(logits, None))
        report.metrics.update(metrics(logits, None, names))
    if main.features is not None and main.features.shape[0] >= 2:
        # one set of statistics for the verdict and the metrics; a sample bounds the n x n Gram matrix
        sample = main.features[: T.FEATURE_SAMPLE].astype(np.float64)
        fs = feature_stats(sample)
        report.add(check_features(fs, sample.shape[0], main.feature_source))
        report.metrics.update({"representation_mean_cosine": fs["mean_cosine"],
                               "representation_relative_spread": fs["relative_spread"],
                               "representation_effective_rank": fs["effective_rank"],
                               "representation_source": main.feature_source})
    report.metrics["token_stats"] = {
        "max_length": enc.stats.max_length, "truncated_examples": enc.stats.truncated,
        "unk_share": (enc.stats.unk_tokens / enc.stats.content_tokens) if enc.stats.content_tokens else 0.0,
        "max_token_id": enc.stats.max_token_id, "embedding_rows": enc.stats.embedding_rows,
    }
    report.metrics["logit_stats"] = _logit_stats(logits)
    return finish(s, opts, plot_confusion)


def _logit_stats(logits: np.ndarray) -> dict:
    srt = np.sort(logits, axis=1)
    gaps = srt[:, -1] - srt[:, -2] if logits.shape[1] > 1 else np.zeros(len(logits))
    return {"median_top2_gap": float(np.median(gaps)) if len(gaps) else None,
            "max_abs_logit": float(np.abs(logits).max()) if logits.size else None,
            "mean_logit_std_across_inputs": float(logits.std(0).mean()) if len(logits) > 1 else None}
