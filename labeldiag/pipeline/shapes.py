"""check-logits and smoke-train for multi-label and regression heads: the existing commands call these
with one branch at the top when the task is not single-label."""
from __future__ import annotations

import dataclasses

import numpy as np

from labeldiag import thresholds as T
from labeldiag.pipeline.common import Session, ready_for_forward, untrained_head_noted
from labeldiag.checks import judge_into
from labeldiag.errors import UsageError
from labeldiag.findings import Report, plain
from labeldiag.options import TrainSettings
from labeldiag.records import ForwardSpeed, TrainingSummary


def require_pairs(s: Session, command: str, scores: int | None = None) -> None:
    """A pairwise task needs chosen / rejected pairs and a head of one score."""
    if s.shaped_gold is None:
        raise UsageError(f"{command} --task pairwise needs preference pairs: rows with 'chosen' and 'rejected' "
                         "texts (or name them with --pair-fields)")
    if scores is not None and scores != 1:
        raise UsageError(f"a pairwise scorer has one output, this head has {scores} (see problem-type-mismatch); "
                         "pass --task to judge it as another shape")


def check_logits(s: Session) -> Report:
    """A plan like the single-label one: one forward pass -> the shape's summary -> one judging pass -> metrics."""
    from labeldiag.measure.forward import run_forward

    if s.task.kind == "token":  # issue 22
        from labeldiag.pipeline import token_tasks

        return token_tasks.check_logits(s)
    if s.task.kind == "pairwise":
        require_pairs(s, "check-logits")
    untrained_head = untrained_head_noted(s)
    if not ready_for_forward(s):
        return s.report
    with s.opts.progress.bar(len(s.encoded.ids), "forward") as advance:
        main = run_forward(s.loaded.model, s.encoded, s.runtime, s.opts.batch_size, capture_features=False,
                           progress=advance)
    s.report.attach(ForwardSpeed(round(main.seconds, 3), None, rated=False))
    if s.task.kind == "pairwise":
        require_pairs(s, "check-logits", main.logits.shape[1])
    summary = shaped_summary(s, main.logits)
    judge_into(s.report, shaped_checks(s, main.logits, summary, untrained_head))
    if summary is not None:
        s.report.metrics[SUMMARY_KEY[s.task.kind]] = dataclasses.asdict(summary)
    elif np.isfinite(main.logits).all(axis=1).any():  # a one-output head without targets: its spread alone
        scores = main.logits[np.isfinite(main.logits).all(axis=1), 0]
        s.report.metrics["regression"] = {"examples": int(scores.size), "prediction_mean": float(scores.mean()),
                                          "prediction_std": float(scores.std())}
    return s.report


SUMMARY_KEY = {"pairwise": "pairwise", "multi-label": "multilabel", "regression": "regression"}


def shaped_summary(s: Session, logits: np.ndarray):
    """The shape's summary of the finite logits against DATA's gold (PairwiseSummary, MultiLabelSummary or
    RegressionSummary); None for a regression head without targets, or of more than one output, or with fewer
    than two finite examples. A note says when multi-label gold and logits differ in width."""
    from labeldiag.records import summarize_multilabel, summarize_pairwise, summarize_regression

    c, gold = logits.shape[1], s.shaped_gold
    keep = np.flatnonzero(np.isfinite(logits).all(axis=1))
    if s.task.kind == "pairwise":
        scores, half = logits[:, 0], gold.pairs
        both = np.isfinite(scores[:half]) & np.isfinite(scores[half:2 * half])
        return summarize_pairwise(scores[:half][both], scores[half:2 * half][both])
    if s.task.kind == "multi-label":
        names = [s.loaded.info.id2label.get(i, f"LABEL_{i}") for i in range(c)]
        matrix = gold.matrix[keep] if gold is not None else None
        if matrix is not None and matrix.shape[1] != c:
            matrix = None  # label-map-inconsistent says why; per-label scores need one logit per label
            s.report.notes.append(f"the data has {gold.matrix.shape[1]} labels but the head {c} logits: no "
                                  "per-label verdict")
        return summarize_multilabel(logits[keep], matrix, names, T.MULTILABEL_MIN_SUPPORT)
    if gold is not None and c == 1 and keep.size >= 2:
        return summarize_regression(logits[keep, 0], gold.targets[keep], T.REGRESSION_PERMUTATIONS, s.opts.seed)
    return None


def shaped_checks(s: Session, logits: np.ndarray, summary, untrained_head: bool):
    """The (check, inputs) pairs of a multi-label, regression or pairwise check-logits run, in report order;
    no verdict on a random head's predictions."""
    from labeldiag.checks.labels import check_label_map
    from labeldiag.checks.logits import check_finite_logits
    from labeldiag.checks.multilabel import multilabel_verdicts
    from labeldiag.checks.pairwise import pairwise_chance, score_collapse
    from labeldiag.checks.regression import mean_predictor, targets_unscaled

    yield check_label_map, s.loaded.info, logits.shape[1]
    yield check_finite_logits, logits
    if summary is None:
        return
    if s.task.kind == "regression":
        yield targets_unscaled, summary
    if untrained_head:
        return
    if s.task.kind == "pairwise":
        yield score_collapse, summary
        yield pairwise_chance, summary
    elif s.task.kind == "multi-label":
        yield multilabel_verdicts, summary
    else:
        yield mean_predictor, summary


def smoke_train(s: Session, opts, settings: TrainSettings, d) -> Report:
    """Fit one fixed batch with BCE (multi-label), MSE (regression) or Bradley-Terry (pairwise) on the logits."""
    from labeldiag.checks.parameters import loss_at_init, nothing_trainable, parameters_disconnected, parameters_frozen
    from labeldiag.checks.regression import targets_unscaled
    from labeldiag.checks.training import check_training, fit_rule
    from labeldiag.measure.shape_training import train_shape
    from labeldiag.measure.lora import announce, lora_summary, plan_for
    from labeldiag.measure.training import training_copy
    from labeldiag.records import InitialLoss, TrainingTrace, summarize_regression

    report, gold = s.report, s.shaped_gold
    if s.task.kind == "pairwise":
        require_pairs(s, "smoke-train", s.loaded.info.num_labels)
    if d.active:
        raise UsageError(f"smoke-train on a {s.task.kind} task runs in one process; run it without torchrun")
    if gold is None:
        raise UsageError(f"DATA '{report.data.get('path')}' has no labels; smoke-train needs labelled examples "
                         "(name the column with --label-field, or --label-columns)")
    n = {"multi-label": lambda: len(gold.matrix), "regression": lambda: len(gold.targets),
         "pairwise": lambda: gold.pairs, "token": lambda: len(gold.labels)}[s.task.kind]()
    rows = np.sort(np.random.default_rng(opts.seed).permutation(n)[:opts.max_examples])
    if s.task.kind == "token":  # issue 22: examples with a labelled token, or no-token-labels
        from labeldiag.pipeline.token_tasks import token_batch

        rows = token_batch(s, opts)
        if rows is None:
            return report
    report.metrics.update({"lr": settings.lr, "target_loss": settings.target_loss, "steps_budget": settings.steps,
                           "device_name": s.runtime.device_name, "precision": s.runtime.precision})
    report.data.update({"pool_examples": n, "batch_examples": int(rows.size)})
    if s.task.kind == "pairwise":
        targets = np.zeros(2 * rows.size, dtype=np.float32)  # the pairing is the target
        rows = np.concatenate([rows, rows + gold.pairs])
        trace = TrainingTrace(num_classes=2, batch_classes=0, head_fresh=bool(s.loaded.audit.missing_head),
                              classification_source="Bradley-Terry loss")
        fit_what = "the chosen text above the rejected one in every pair"
    elif s.task.kind == "multi-label":
        targets = gold.matrix[rows].astype(np.float32)
        sets = {r.tobytes() for r in targets.astype(np.int8)}
        # mean BCE per label of a fresh head is ln 2: the trace's reference is a two-class loss
        trace = TrainingTrace(num_classes=2, batch_classes=len(sets), head_fresh=bool(s.loaded.audit.missing_head),
                              classification_source="mean BCE per label")
        fit_what = "every label of every example right at sigmoid 0.5"
    elif s.task.kind == "token":
        from labeldiag.pipeline.token_tasks import token_targets

        targets = token_targets(gold, rows, s.encoded)
        trace = TrainingTrace(num_classes=s.num_classes, batch_classes=int(np.unique(targets[targets >= 0]).size),
                              head_fresh=bool(s.loaded.audit.missing_head),
                              classification_source="cross-entropy per labelled token")
        fit_what = "every labelled token of every example right"
    else:
        targets = gold.targets[rows].astype(np.float32)
        report.add(targets_unscaled(summarize_regression(targets, targets, 1, opts.seed)))
        trace = TrainingTrace(num_classes=2, batch_classes=0, head_fresh=False,
                              classification_source="MSE / variance of the targets")
        fit_what = (f"every example within {T.SMOKE_REGRESSION_EXAMPLE_TOLERANCE ** 0.5:.1f} target std of its "
                    "target")
    lora = plan_for(s.loaded.model, opts.lora)  # issue 21: reward models of 7B+ train an adapter
    if lora.rank and not settings.lr_given:
        settings = dataclasses.replace(settings, lr=T.LORA_DEFAULT_LR)
        report.metrics["lr"] = settings.lr
    with opts.progress.phase(f"training a copy on {rows.size} examples"):
        model = training_copy(s.loaded.model, s.runtime.device, lora=lora.rank)
        if lora.rank:
            announce(report, lora_summary(model, lora))
        train_shape(model, s.encoded, rows, targets, s.task.kind, s.runtime, settings, trace,
                    lambda t: fit_rule(t, settings.target_loss))
        del model
    report.add(nothing_trainable(trace.census) + ([] if lora.rank else parameters_frozen(trace.census))
               + parameters_disconnected(trace.census))
    if s.task.kind != "regression":  # mean BCE per label and the Bradley-Terry loss both start at ln 2
        report.add(loss_at_init(InitialLoss(trace.initial_loss, trace.num_classes if s.task.kind == "token" else 2,
                                            trace.head_fresh)))
    report.add(check_training(trace, settings))
    if trace.fitted:
        report.notes.append(f"fitted at step {trace.fit_step}: {trace.fit_rule}")
    report.notes.append(f"{s.task.kind}: fitted means {fit_what} and {trace.classification_source} below "
                        f"--target-loss {settings.target_loss:g}")
    curve = [{"step": i + 1, "loss": l, "accuracy": a, "grad_norm": g}
             for i, (l, a, g) in enumerate(zip(trace.losses, trace.accuracies, trace.grad_norms))]
    report.metrics.update({"steps_run": trace.steps_run, "fitted": trace.fitted, "fit_step": trace.fit_step,
                           "fit_rule": trace.fit_rule, "initial_loss": trace.initial_loss,
                           "final_loss": trace.final_loss if trace.losses else trace.initial_loss,
                           "final_accuracy": trace.final_accuracy if trace.losses else None,
                           "classification_loss_source": trace.classification_source,
                           "final_classification_loss": trace.classification_losses[-1]
                           if trace.classification_losses else None,
                           "diverged_step": trace.diverged_step, "curve": curve})
    if s.task.kind != "regression":
        report.metrics["ln_2"] = float(np.log(2))
    # the typed view of the keys above (those a shaped run does not measure stay None), as from_dict reads it
    report.training = TrainingSummary.from_metrics(plain(report.metrics))
    return report


def labelled_rows(s: Session, command: str) -> tuple[np.ndarray, np.ndarray]:
    """grad-flow's examples and float targets: multi-hot rows [N, K] or real targets [N] (per-token tags [N, T],
    -100 padded, for the token task)."""
    gold = s.shaped_gold
    if gold is None:
        raise UsageError(f"{command} needs labelled examples; DATA has no label column (pass --label-field or "
                         "--label-columns)")
    if s.task.kind == "token":  # issue 22
        from labeldiag.pipeline.token_tasks import labelled_token_rows

        return labelled_token_rows(s, command)
    targets = gold.matrix.astype(np.float32) if s.task.kind == "multi-label" else gold.targets.astype(np.float32)
    return np.arange(len(targets)), targets
