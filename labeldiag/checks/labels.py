"""The label map in the config, the labels in the data, and the loss transformers will pick."""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from labeldiag.errors import UsageError, one_line
from labeldiag.findings import Finding
from labeldiag.records import ModelInfo
from labeldiag.catalogue import (
    LABELS_OUT_OF_RANGE, LABEL_MAP_INCONSISTENT, LABEL_NAMES_GENERIC, LABEL_SET_MISMATCH, PROBLEM_TYPE_MISMATCH,
)

GENERIC = re.compile(r"^LABEL_(\d+)$")


@dataclass
class GoldLabels:
    """Gold labels as class indices; -1 where a label could not be mapped."""

    indices: np.ndarray
    kind: str  # "int", "float" or "str"
    distinct: list[Any]
    # names the indices stand for when they come from the data, not the config (generic config names)
    index_names: list[str] | None = None

    @property
    def usable(self) -> np.ndarray:
        return self.indices >= 0


def names_are_generic(info: ModelInfo) -> bool:
    return bool(info.id2label) and all(GENERIC.match(v) for v in info.id2label.values())


def label_kind(values: list[Any], where: str = "DATA") -> tuple[str, list[Any]]:
    """Classify raw labels as int / float / str, parsing numeric strings (CSV). Mixed types are an error."""
    kinds = set()
    parsed: list[Any] = []
    for v in values:
        if isinstance(v, (bool, np.bool_)):
            kinds.add("int")
            parsed.append(int(v))
        elif isinstance(v, (int, np.integer)):
            kinds.add("int")
            parsed.append(int(v))
        elif isinstance(v, (float, np.floating)):
            if not np.isfinite(v):
                raise UsageError(f"labels in {where} hold NaN or inf; every example needs a class label")
            kinds.add("float")
            parsed.append(float(v))
        elif isinstance(v, str):
            s = v.strip()
            number = None
            if len(s) <= 40 and re.fullmatch(r"[+-]?\d+", s):
                number = int(s)
            elif len(s) <= 40 and re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", s):
                try:
                    number = float(s)
                except ValueError:
                    number = None
                if number is not None and not np.isfinite(number):
                    raise UsageError(f"labels in {where} hold a number too large for a class label ({s[:20]}); "
                                     "use class names or indices")
            if number is None:
                kinds.add("str")
                parsed.append(s)
            else:
                kinds.add("int" if isinstance(number, int) else "float")
                parsed.append(number)
        elif isinstance(v, (list, tuple, dict)):
            raise UsageError(f"labels in {where} are {type(v).__name__}s (multi-label?) but the task is "
                             "single-label: drop --task single-label, or give one class per example")
        else:
            raise UsageError(f"labels in {where} hold a {type(v).__name__} ({one_line(repr(v), 40)}); "
                             "use class names or indices")
    big = next((v for v, p in zip(values, parsed) if isinstance(p, int) and abs(p) >= 2**53), None)
    if big is not None:
        raise UsageError(f"labels in {where} hold a number too large for a class label "
                         f"({one_line(repr(big), 30)}); use class names or indices")
    if len(kinds) > 1:
        if kinds == {"int", "float"}:
            return "float", [float(x) for x in parsed]
        example = {k: next(one_line(repr(v), 30) for v, p in zip(values, parsed) if _kind_of(p) == k) for k in kinds}
        raise UsageError(f"labels in {where} mix types ({', '.join(f'{k} such as {e}' for k, e in sorted(example.items()))}); "
                         "use one kind: all class names or all integer indices")
    return (kinds.pop() if kinds else "int"), parsed


def _kind_of(x: Any) -> str:
    return "str" if isinstance(x, str) else "float" if isinstance(x, float) else "int"


def check_label_map(info: ModelInfo, head_outputs: int | None) -> list[Finding]:
    problems: list[str] = []
    ids = sorted(info.id2label)
    n = info.num_labels
    if info.raw_id2label and len(info.id2label) != len(info.raw_id2label):
        problems.append("id2label has keys that are not integers")
    if ids and ids != list(range(len(ids))):
        problems.append(f"id2label keys are {ids[:8]}, not 0..{len(ids) - 1}")
    if ids and len(ids) != n:
        problems.append(f"id2label has {len(ids)} entries but num_labels is {n}")
    names = list(info.id2label.values())
    dupes = sorted({x for x in names if names.count(x) > 1})
    if dupes:
        problems.append(f"id2label repeats names {dupes[:5]}")
    if info.label2id:
        inverse = {v: k for k, v in info.id2label.items()}
        bad = [k for k, v in info.label2id.items() if inverse.get(k) != v]
        if bad or len(info.label2id) != len(info.id2label):
            pairs = ", ".join(f"label2id[{k!r}]={info.label2id[k]} but id2label gives "
                              f"{inverse.get(k, 'no id')}" for k in bad[:3])
            problems.append("label2id is not the inverse of id2label" + (f" ({pairs})" if pairs else ""))
    if head_outputs is not None and n and head_outputs != n:
        problems.append(f"the head outputs {head_outputs} logits but num_labels is {n}")
    out = []
    if problems:
        out.append(Finding(LABEL_MAP_INCONSISTENT, "; ".join(problems),
                           {"id2label": info.id2label, "label2id": info.label2id, "num_labels": n,
                            "head_outputs": head_outputs}))
    if names_are_generic(info):
        out.append(Finding(LABEL_NAMES_GENERIC,
                           f"config.json only names the classes {', '.join(names[:4])}{', ...' if len(names) > 4 else ''}",
                           {"id2label": info.id2label}))
    return out


def map_labels(raw: list[Any], info: ModelInfo, num_classes: int) -> tuple[GoldLabels, list[Finding]]:
    """Turn raw labels into class indices and report what cannot be mapped."""
    kind, parsed = label_kind(raw)
    findings: list[Finding] = []
    idx = np.full(len(parsed), -1, dtype=np.int64)
    distinct = sorted(set(parsed), key=lambda x: (str(type(x)), x))
    index_names = None
    if kind == "str":
        if names_are_generic(info) or not info.label2id:
            shown = [str(d) for d in distinct[:6]]
            findings.append(Finding(
                LABEL_SET_MISMATCH,
                f"the data labels examples by name ({', '.join(shown)}{', ...' if len(distinct) > 6 else ''}) but "
                "the model's config has no real label names, so names cannot be matched to logits",
                {"data_labels": distinct[:50], "id2label": info.id2label},
                hint=(f"a head of {num_classes} outputs cannot hold {len(distinct)} classes: pass --labels "
                      f"{','.join(shown if len(distinct) <= 6 else map(str, distinct))} to attach a fresh head "
                      "with these names (MODEL is not written)" if len(distinct) > num_classes else
                      "set id2label/label2id in config.json to the class names in training order (check-logits "
                      "scores the names in sorted order, so its confusion matrix shows which logit behaves like "
                      "which name), or pass --labels NAME,NAME,... in head order"),
            ))
            # sorted-name order, only so the confusion matrix can show which logit behaves like which name
            order = {name: i for i, name in enumerate(sorted(distinct))}
            if len(order) <= num_classes:
                idx = np.array([order[p] for p in parsed], dtype=np.int64)
                index_names = sorted(distinct)
        else:
            lookup = dict(info.label2id)
            folded = {k.lower(): v for k, v in lookup.items()}
            unknown = [d for d in distinct if d not in lookup]
            for i, p in enumerate(parsed):
                if p in lookup:
                    idx[i] = lookup[p]
            if unknown:
                tips = []
                for u in unknown[:5]:
                    close = difflib.get_close_matches(u, list(lookup), n=1, cutoff=0.5)
                    if u.lower() in folded:
                        close = [next(k for k in lookup if k.lower() == u.lower())]
                    tips.append(f"'{u}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
                n_bad = int((idx < 0).sum())
                findings.append(Finding(
                    LABEL_SET_MISMATCH,
                    f"{n_bad} example(s) have label names the model does not know: {', '.join(tips)}; known: "
                    f"{', '.join(list(lookup)[:8])}",
                    {"unknown": unknown[:50], "known": list(lookup), "examples_affected": n_bad},
                ))
    else:
        values = np.array(parsed, dtype=np.float64)
        integral = np.all(values == np.round(values))
        if integral:
            ok = (values >= 0) & (values < num_classes)
            ints = np.clip(values, -2**62, 2**62).astype(np.int64)
            idx[ok] = ints[ok]
            if not ok.all():
                lo, hi = int(ints.min()), int(ints.max())
                one_based = lo >= 1 and hi == num_classes
                findings.append(Finding(
                    LABELS_OUT_OF_RANGE,
                    f"{int((~ok).sum())} of {len(ints)} labels fall outside 0..{num_classes - 1} (labels range "
                    f"{lo}..{hi})" + ("; they look 1-based" if one_based else ""),
                    {"min": lo, "max": hi, "num_labels": num_classes, "out_of_range": int((~ok).sum()),
                     "classes_outside": sorted({int(v) for v in ints[~ok]})[:20],
                     "looks_one_based": one_based},
                    hint=("subtract 1 from every label (they are 1-based)" if one_based else
                          f"pass --num-labels {hi + 1} to attach a fresh {hi + 1}-class head (MODEL is not written), "
                          "or map the labels to 0..num_labels-1" if lo >= 0 else ""),
                ))
    return GoldLabels(indices=idx, kind=kind, distinct=distinct, index_names=index_names), findings


def replay_problem_type(problem_type: str | None, num_labels: int, label_kind_: str) -> str:
    """What transformers' *ForSequenceClassification.forward picks, given the labels' dtype.

    Mirrors modeling_bert / modeling_distilbert / modeling_roberta: an unset problem_type becomes
    regression when num_labels == 1, single-label when labels are int64/int32, else multi-label.
    String labels are turned into int64 ids by any pipeline, so they count as integers.
    """
    if problem_type:
        return problem_type
    if num_labels == 1:
        return "regression"
    return "single_label_classification" if label_kind_ in ("int", "str") else "multi_label_classification"


LOSS_NAMES = {"regression": "MSELoss (regression)", "single_label_classification": "CrossEntropyLoss",
              "multi_label_classification": "BCEWithLogitsLoss (multi-label)"}


def check_problem_type(info: ModelInfo, gold: GoldLabels | None, task: Any = None) -> list[Finding]:
    """The loss the config makes transformers pick against the task the labels (or --task) show; without
    either, only a config that contradicts itself (single-label with one logit)."""
    if task is not None and task.kind == "token":
        return []  # *ForTokenClassification trains with cross-entropy per token whatever problem_type says
    if task is not None and not task.from_evidence:
        if info.problem_type == "single_label_classification" and info.num_labels == 1:
            return [Finding(
                PROBLEM_TYPE_MISMATCH,
                "config.problem_type is 'single_label_classification' but num_labels is 1: cross-entropy over one "
                "logit is always 0, so nothing trains",
                {"problem_type": info.problem_type, "num_labels": info.num_labels, "task_source": task.source},
                hint="set num_labels to the number of classes, or problem_type 'regression' for a single score",
            )]
        return []  # no labels: nothing shows what the task is, so nothing contradicts the config
    if task is not None and task.kind != "single-label":
        wrong = _shape_loss_mismatch(info, task)
        return [Finding(PROBLEM_TYPE_MISMATCH, *wrong)] if wrong else []
    kind = gold.kind if gold is not None else "int"
    picked = replay_problem_type(info.problem_type, info.num_labels, kind)
    if picked == "single_label_classification":
        if kind != "float":
            return []
        # problem_type is pinned to single-label but the labels are floats: CrossEntropyLoss
        # takes float targets as class probabilities of shape [batch, C] and fails on [batch]
        return [Finding(
            PROBLEM_TYPE_MISMATCH,
            "the labels are floats (e.g. 1.0) while config.problem_type is 'single_label_classification': "
            "CrossEntropyLoss needs int64 class indices and fails (or misreads them) on float labels",
            {"problem_type": info.problem_type, "label_dtype": kind, "num_labels": info.num_labels},
            hint="store the labels as integers (int64), e.g. cast the label column to int before training",
        )]
    distinct = len(gold.distinct) if gold is not None else None
    if picked == "regression" and gold is not None and kind == "float" and distinct is not None and distinct > 20:
        return []  # real-valued targets: a regression task, not a classifier gone wrong
    reasons = []
    if info.problem_type:
        reasons.append(f"config.problem_type is '{info.problem_type}'")
    if info.num_labels == 1:
        reasons.append("num_labels is 1")
    if kind == "float" and info.problem_type is None and info.num_labels > 1:
        reasons.append("the labels are floats (e.g. 1.0), so transformers picks multi-label BCE")
    task = (f"the data has {distinct} distinct class labels" if distinct is not None else
            "the task is single-label classification")
    return [Finding(
        PROBLEM_TYPE_MISMATCH,
        f"the model will train with {LOSS_NAMES.get(picked, picked)} because {' and '.join(reasons) or 'of its config'}, "
        f"but {task}: single-label cross-entropy is what the task needs",
        {"problem_type": info.problem_type, "loss_picked": picked, "num_labels": info.num_labels,
         "label_dtype": kind, "distinct_labels": distinct},
    )]


def _shape_loss_mismatch(info: ModelInfo, task: Any) -> tuple[str, dict, str] | None:
    """(message, evidence, hint) of problem-type-mismatch for multi-label, regression and pairwise tasks."""
    from labeldiag.records import TASK_PROBLEM_TYPE

    needed = TASK_PROBLEM_TYPE.get(task.kind, "regression")  # a pairwise scorer is one regression-style score
    if task.kind == "multi-label":
        picked = info.problem_type or ("regression" if info.num_labels == 1 else needed)
    else:
        picked = replay_problem_type(info.problem_type, info.num_labels, "float")
    wrong_width = task.kind in ("regression", "pairwise") and info.num_labels != 1
    if picked == needed and not wrong_width:
        return None
    return (
        f"the task is {task.kind} ({task.reason}) but the model will train with {LOSS_NAMES.get(picked, picked)} "
        f"(config.problem_type {info.problem_type!r}, num_labels {info.num_labels})",
        {"problem_type": info.problem_type, "loss_picked": picked, "loss_needed": needed,
         "num_labels": info.num_labels, "task": task.kind, "task_source": task.source},
        f"set problem_type '{needed}' in config.json" + (" and num_labels 1" if wrong_width else "")
        + f", or pass --task if the task is not {task.kind}",
    )
