"""Verdicts on token classifiers (NER, tagging; issue 22), from a TokenGold and a TokenSummary."""
from __future__ import annotations

import numpy as np

from labeldiag import thresholds as T
from labeldiag.findings import Finding
from labeldiag.records import SchemeReport, TokenGold, TokenSummary
from labeldiag.catalogue import BIO_LABELS_MALFORMED, ENTITIES_TRUNCATED, LABEL_ALIGNMENT_OFF, NO_TOKEN_LABELS


def token_predictions(logits: np.ndarray, gold: np.ndarray, names: list[str]) -> list[Finding]:
    """constant-predictions, random-predictions and label-permutation over the labelled tokens (each token one
    observation: tokens of a sentence are not independent, so the p-values are on the optimistic side)."""
    from labeldiag.checks.logits import check_predictions

    return check_predictions(logits, gold, names, max_gold_share=T.TOKEN_CONSTANT_MAX_GOLD_SHARE, unit="tokens")


def no_token_labels(gold: TokenGold) -> list[Finding]:
    """Every label is -100, or none survives the alignment to sub-words and truncation."""
    kept = gold.kept_tags
    if kept:
        return []
    if gold.given_tags == 0:
        why = "every tag in the data is -100 (ignored)"
    else:
        why = (f"the data has {gold.given_tags} tags but none survives alignment ({gold.alignment}) and truncation "
               f"at {gold.max_length} tokens")
    return [Finding(
        NO_TOKEN_LABELS,
        f"no token of the {len(gold.labels)} examples has a label: {why}; the loss is empty and nothing is learned "
        "or measured",
        {"examples": len(gold.labels), "tags_in_data": gold.given_tags, "labelled_tokens": kept,
         "alignment": gold.alignment, "max_length": gold.max_length, "test": "count of labels other than -100"},
    )]


def label_alignment_off(summary: TokenSummary) -> list[Finding]:
    """The gold tags agree with the prediction one sub-word or one word away far more often than in place
    (exact McNemar on the paired tags, Bonferroni over the shifts tried)."""
    level = T.ALPHA / max(1, len(summary.shifts))
    best = None
    for shift in summary.shifts:
        discordant = shift.only_shifted + shift.only_given
        if shift.compared < T.TOKEN_MIN_LABELS or not discordant:
            continue
        share = shift.only_shifted / discordant
        if share >= T.ALIGNMENT_MIN_DISCORDANT_SHARE and shift.p_value < level and (best is None or share > best[0]):
            best = (share, shift)
    if best is None:
        return []
    share, s = best
    gain = (s.shifted_correct - s.given_correct) / s.compared
    where = "later" if s.offset > 0 else "earlier"
    return [Finding(
        LABEL_ALIGNMENT_OFF,
        f"the gold tags match the model's tag one {s.unit} {where} on {s.shifted_correct / s.compared:.0%} of "
        f"{s.compared} labelled tokens, but in place on only {s.given_correct / s.compared:.0%} (exact McNemar: "
        f"{s.only_shifted} right only shifted vs {s.only_given} right only in place, p {s.p_value:.2g}): the "
        "labels sit one position off their tokens",
        {"unit": s.unit, "offset": s.offset, "compared": s.compared, "accuracy_in_place": s.given_correct / s.compared,
         "accuracy_shifted": s.shifted_correct / s.compared, "gain": gain, "only_shifted": s.only_shifted,
         "only_in_place": s.only_given, "discordant_share_shifted": share,
         "test": "exact one-sided McNemar, Bonferroni over the shifts", "p_value": s.p_value, "level": level,
         "min_discordant_share": T.ALIGNMENT_MIN_DISCORDANT_SHARE},
    )]


def bio_labels_malformed(scheme: SchemeReport, summary: TokenSummary | None) -> list[Finding]:
    """id2label breaks the BIO scheme (I-X without B-X, names outside it), or the predictions break it far more
    often than the gold tags do."""
    problems, evidence = [], {"test": "id2label names against the BIO / IOB2 scheme"}
    if scheme.uses_scheme and scheme.inside_without_begin:
        problems.append(f"{', '.join(scheme.inside_without_begin[:5])} without the matching B- tag")
        evidence["inside_without_begin"] = list(scheme.inside_without_begin)
    if scheme.outside:
        problems.append(f"tag name(s) outside the scheme: {', '.join(repr(n) for n in scheme.outside[:5])}")
        evidence["outside_scheme"] = list(scheme.outside)
    if scheme.uses_scheme and not scheme.has_outside_tag:
        problems.append("no 'O' tag")
        evidence["has_o"] = False
    if problems:
        return [Finding(BIO_LABELS_MALFORMED, f"id2label breaks the BIO scheme: {'; '.join(problems)}", evidence)]
    if summary is None or not summary.scheme_positions:
        return []
    n, predicted, gold = summary.scheme_positions, summary.predicted_violations, summary.gold_violations
    share = predicted / n
    if (share < T.BIO_MIN_BREAK_SHARE or predicted < T.BIO_BREAK_RATIO * max(gold, 1)
            or summary.violations_p >= T.ALPHA):
        return []
    return [Finding(
        BIO_LABELS_MALFORMED,
        f"the predicted tags break the BIO scheme (an I-X that continues no X entity) at {predicted} of {n} "
        f"tokens ({share:.1%}), the gold tags at {gold} (exact McNemar: {summary.violations_only_predicted} vs "
        f"{summary.violations_only_gold}, p {summary.violations_p:.2g})",
        {"positions": n, "predicted_breaks": predicted, "gold_breaks": gold, "share": share,
         "test": "exact one-sided McNemar on positions", "p_value": summary.violations_p,
         "min_share": T.BIO_MIN_BREAK_SHARE, "min_ratio": T.BIO_BREAK_RATIO},
    )]


def entities_truncated(gold: TokenGold) -> list[Finding]:
    """A share of the gold entities lies (partly) beyond --max-length: they are never seen or scored."""
    if not gold.entities or gold.entities_cut < T.ENTITIES_CUT_MIN:
        return []
    share = gold.entities_cut / gold.entities
    if share < T.ENTITIES_CUT_MIN_SHARE:
        return []
    return [Finding(
        ENTITIES_TRUNCATED,
        f"{gold.entities_cut} of {gold.entities} gold entities ({share:.1%}, in {gold.examples_cut} examples) lie "
        f"beyond --max-length {gold.max_length} tokens: truncation drops them from training and evaluation",
        {"entities": gold.entities, "entities_cut": gold.entities_cut, "share": share,
         "examples_cut": gold.examples_cut, "max_length": gold.max_length,
         "test": "count over every example read", "min_share": T.ENTITIES_CUT_MIN_SHARE},
        hint=f"raise --max-length (and the training max_length) above {gold.max_length}, or split long texts into "
             "windows with a stride (return_overflowing_tokens=True)",
    )]


def judge_token_predictions(logits: np.ndarray, labels: np.ndarray | None, names: list[str], command: str):
    """check_predictions on a token classifier's [N, T, C] logits and [N, T] labels (-100 ignored)."""
    from labeldiag.errors import UsageError
    from labeldiag.findings import Report
    from labeldiag.records import flat_labelled, scheme_report, summarize_tokens

    n, t, c = logits.shape
    if n == 0 or c < 2:
        raise UsageError(f"token logits must be [N, T, C] with N >= 1 and C >= 2 tags, got shape {logits.shape}")
    if not np.isfinite(logits).all():
        raise UsageError(f"logits hold {int((~np.isfinite(logits)).sum())} NaN/inf values; the model's outputs are "
                         "non-finite (run labeldiag grad-flow on the model)")
    report = Report(command=command, device="n/a")
    report.model = {"class": None, "num_labels": c, "id2label": {str(i): name for i, name in enumerate(names)},
                    "task": "token", "task_source": "the logits are [N, T, C]"}
    rows = list(logits.astype(np.float32))
    scheme = scheme_report(names)
    if labels is None:
        report.data = {"examples": n, "labelled": False, "label_counts": None}
        report.add(bio_labels_malformed(scheme, None))
        return report
    if labels.shape != (n, t) or not (np.issubdtype(labels.dtype, np.integer) or np.all(labels == np.round(labels))):
        raise UsageError(f"token labels must be integer tags of shape [N, T] = {(n, t)} like the logits' first two "
                         f"axes, got shape {labels.shape} ({labels.dtype})")
    tags = labels.astype(np.int64)
    if (tags >= c).any() or ((tags < 0) & (tags != -100)).any():
        raise UsageError(f"token labels hold values outside 0..{c - 1} and -100")
    gold = list(tags)
    counts = np.bincount(tags[tags >= 0], minlength=c)
    report.data = {"examples": n, "labelled": True, "label_counts": {names[k]: int(counts[k]) for k in range(c)}}
    if not (tags >= 0).any():
        raise UsageError("every token label is -100 (ignored); nothing to judge")
    summary = summarize_tokens(rows, gold, names)
    flat, flat_gold = flat_labelled(rows, gold)
    shifted = label_alignment_off(summary)
    report.add(token_predictions(flat, flat_gold, names) + shifted
               + bio_labels_malformed(scheme, None if shifted else summary))
    import dataclasses

    report.metrics["token"] = dataclasses.asdict(summary)
    report.metrics["labelled_tokens"] = summary.tokens
    return report
