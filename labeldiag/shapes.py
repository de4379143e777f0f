"""Task shapes beyond single-label: which one a model and its data are, and their gold labels read from
the data. The records and the per-shape prediction summaries live in labeldiag.records.shapes.

A shape is detected once, in `detect_task`, from `--task`, the labels, then the config
(problem_type, num_labels); everything downstream reads the TaskShape record.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from labeldiag.errors import UsageError, one_line
from labeldiag.records import PROBLEM_TYPE_TASK, MultiLabelGold, PairGold, RegressionGold, TaskShape


# --- detection ----------------------------------------------------------------------------------

def detect_task(problem_type: str | None, num_labels: int, class_name: str, labels: list[Any] | None,
                forced: str | None, preference_pairs: bool = False, token_level: bool = False) -> TaskShape:
    """The task shape: --task, else what the labels show, else what the config says."""
    if preference_pairs:
        if forced not in (None, "pairwise"):
            raise UsageError(f"DATA holds chosen / rejected pairs, which only a pairwise scorer can be judged on, "
                             f"but --task is {forced}")
        return TaskShape("pairwise", "labels", "the data holds chosen / rejected pairs")
    if token_level and forced not in (None, "token"):
        raise UsageError(f"DATA holds one tag per word or token, which only a token classifier can be judged on, "
                         f"but --task is {forced}")
    if forced:
        return TaskShape(forced, "--task", f"--task {forced}")
    if token_level:  # issue 22
        return TaskShape("token", "labels", "the data has one tag per word or token")
    if "ForTokenClassification" in class_name:
        return TaskShape("token", "config", f"the head is {class_name}")
    if labels:
        if any(isinstance(v, (list, tuple)) for v in labels):
            return TaskShape("multi-label", "labels", "the labels are lists (multi-hot vectors or label names)")
        numbers = _numbers(labels)
        if numbers is not None:
            if num_labels <= 1:
                return TaskShape("regression", "labels", "the labels are numbers and the head has one output")
            if not np.all(numbers == np.round(numbers)):
                return TaskShape("regression", "labels", "the labels are real numbers, not class indices")
        return TaskShape("single-label", "labels", "the labels are one class per example")
    if problem_type in PROBLEM_TYPE_TASK:
        return TaskShape(PROBLEM_TYPE_TASK[problem_type], "config", f"config.problem_type is '{problem_type}'")
    if num_labels == 1 and "ForSequenceClassification" in class_name:
        return TaskShape("regression", "config", "num_labels is 1")
    return TaskShape("single-label", "config", f"num_labels is {num_labels}")


def _numbers(labels: list[Any]) -> np.ndarray | None:
    """The labels as floats when every one is a number (or a numeric string), else None."""
    out = np.empty(len(labels), dtype=np.float64)
    for i, v in enumerate(labels):
        if isinstance(v, (bool, np.bool_)):
            out[i] = float(v)
        elif isinstance(v, (int, float, np.integer, np.floating)):
            out[i] = float(v)
        elif isinstance(v, str):
            try:
                out[i] = float(v.strip())
            except ValueError:
                return None
        else:
            return None
    return out


# --- gold labels per shape ----------------------------------------------------------------------

def multilabel_gold(raw: list[Any], id2label: dict[int, str], num_labels: int) -> MultiLabelGold:
    """Multi-hot vectors or lists of label names (single labels under --task multi-label) -> an [N, K] 0/1
    matrix; ragged vectors, names and numbers mixed, unknown names, NaN -> UsageError."""
    names = tuple(id2label.get(i, f"LABEL_{i}") for i in range(num_labels))
    index = {name: i for i, name in enumerate(names)}
    lists = [isinstance(v, (list, tuple)) for v in raw]
    if any(lists) and not all(lists):
        n = lists.index(False)
        raise UsageError(f"the labels mix lists and single labels (example {n} is {one_line(repr(raw[n]), 30)}); "
                         "give every example a list of label names or a multi-hot vector")
    rows = [list(v) if isinstance(v, (list, tuple)) else [v] for v in raw]
    named = [[isinstance(x, str) and not _is_number(x) for x in row] for row in rows]
    if any(any(r) for r in named) and not all(all(r) for r in named if r):
        n = next(i for i, r in enumerate(named) if r and not all(r)) if any(r and not all(r) for r in named) else \
            next(i for i, r in enumerate(named) if r and not any(r))
        raise UsageError(f"the labels mix label names and numbers (example {n}: {one_line(repr(raw[n]), 40)}); use "
                         "one form: lists of names or 0/1 vectors")
    matrix = np.zeros((len(raw), num_labels), dtype=np.int8)
    if any(any(r) for r in named):
        for n, row in enumerate(rows):
            for item in row:
                if item.strip() not in index:
                    raise UsageError(f"label '{one_line(item, 40)}' of example {n} is not one of the model's labels "
                                     f"({', '.join(names[:8])}{', ...' if len(names) > 8 else ''})")
                matrix[n, index[item.strip()]] = 1
        return MultiLabelGold(matrix=matrix, names=names)
    ragged = next((n for n, row in enumerate(rows) if len(row) != len(rows[0])), None) if any(lists) else None
    if ragged is not None:
        raise UsageError(f"the multi-label vectors are ragged: example {ragged} has {len(rows[ragged])} entries, "
                         f"example 0 has {len(rows[0])}; give every example one entry per label")
    for n, row in enumerate(rows):
        values = [_label_number(x, n) for x in row]
        if not any(lists):  # single class indices under --task multi-label
            k = values[0]
            if k != int(k) or not 0 <= k < num_labels:
                raise UsageError(f"label {row[0]} of example {n} is not a class index of the model's "
                                 f"{num_labels} labels")
            matrix[n, int(k)] = 1
            continue
        if len(row) != num_labels:
            raise UsageError(f"the multi-hot vectors have {len(row)} entries but the model has {num_labels} "
                             "labels; give one entry per label, in head order")
        if any(v not in (0.0, 1.0) for v in values):
            raise UsageError(f"the labels of example {n} hold {one_line(repr(row), 40)}; a multi-hot vector holds "
                             "only 0 and 1 (lists of labels are given by name)")
        matrix[n] = values
    return MultiLabelGold(matrix=matrix, names=names)


def _label_number(item: Any, n: int) -> float:
    try:
        number = float(item.strip() if isinstance(item, str) else item)
    except (TypeError, ValueError):
        raise UsageError(f"the labels of example {n} hold a {type(item).__name__}; give label names or a "
                         "multi-hot vector of 0 and 1") from None
    if not math.isfinite(number):
        raise UsageError(f"the labels of example {n} hold NaN or inf; multi-hot vectors hold 0 and 1")
    return number


def _is_number(text: str) -> bool:
    try:
        float(text.strip())
        return True
    except ValueError:
        return False


def regression_gold(raw: list[Any]) -> RegressionGold:
    """Real-valued targets; NaN, inf or text -> UsageError."""
    targets = np.empty(len(raw), dtype=np.float64)
    for n, value in enumerate(raw):
        if isinstance(value, (list, tuple, dict)):
            raise UsageError(f"the target of example {n} is a {type(value).__name__}; a regression head "
                             "(num_labels=1) takes one number per example")
        try:
            targets[n] = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise UsageError(f"the target of example {n} is {one_line(repr(value), 30)}, not a number; a regression "
                             "head takes one number per example") from None
        if not math.isfinite(targets[n]):
            raise UsageError(f"the target of example {n} is {value}; regression targets must be finite numbers")
    return RegressionGold(targets=targets)


def shaped_gold(task: TaskShape, examples: Any, info: Any,
                num_labels: int) -> MultiLabelGold | RegressionGold | PairGold | None:
    """The gold labels of a multi-label, regression or pairwise task (None for single-label or no labels)."""
    if task.kind == "pairwise":
        return pair_gold(examples)
    if not examples.labelled:
        return None
    if task.kind == "multi-label":
        return multilabel_gold(examples.labels, info.id2label, num_labels)
    if task.kind == "regression":
        return regression_gold(examples.labels)
    return None


def pair_gold(examples: Any) -> PairGold | None:
    return PairGold(pairs=examples.preference_pairs) if examples.preference_pairs else None


def shape_label_counts(gold: MultiLabelGold | RegressionGold | PairGold) -> dict[str, Any]:
    """What the header shows of the labels: support per label, the targets' range, or the pairs."""
    if hasattr(gold, "label_counts"):  # token tags (issue 22)
        return gold.label_counts()
    if isinstance(gold, PairGold):
        return {"pairs": gold.pairs}
    if isinstance(gold, MultiLabelGold):
        return {name: int(v) for name, v in zip(gold.names, gold.matrix.sum(0))}
    y = gold.targets
    return {"min": round(float(y.min()), 4), "mean": round(float(y.mean()), 4), "max": round(float(y.max()), 4)}


# --- rerankers: query / passage pairs with a 0/1 label on a one-score head ----------------------

def relevance_labels(examples: Any, num_labels: int, forced: str | None) -> np.ndarray | None:
    """The 0/1 relevance of each query / passage row when a one-score head (a cross-encoder reranker, trained
    with BCE on its score as sentence-transformers' CrossEncoder does) reads text pairs; else None."""
    if examples.pairs is None or not examples.labelled or num_labels != 1 or forced not in (None, "pairwise"):
        return None
    numbers = _numbers(examples.labels)
    if numbers is None or not np.isin(numbers, (0.0, 1.0)).all():
        return None
    return numbers.astype(np.int8)


def relevance_pairs(examples: Any, relevant: np.ndarray) -> tuple[Any, str]:
    """Examples regrouped as preference pairs (relevant passage = chosen, irrelevant = rejected), each row used
    once: within each query first (what a reranker orders), across queries when no query has both; the texts
    become the P chosen rows, then the P rejected rows, as for TRL pairs. Returns them and how they were paired."""
    import dataclasses

    by_query: dict[str, tuple[list[int], list[int]]] = {}
    for i, (query, rel) in enumerate(zip(examples.texts, relevant)):
        by_query.setdefault(query, ([], []))[0 if rel else 1].append(i)
    pairs = [pair for pos, neg in by_query.values() for pair in zip(pos, neg)]
    how = "a relevant and an irrelevant passage of the same query"
    if not pairs:
        pairs = list(zip(np.flatnonzero(relevant == 1).tolist(), np.flatnonzero(relevant == 0).tolist()))
        how = "a relevant and an irrelevant row in data order (no query has both)"
    if not pairs:
        raise UsageError("the query / passage rows are all relevant or all irrelevant (label "
                         f"{int(relevant[0])}); a reranker is judged on rows of both labels")
    order = [i for i, _ in pairs] + [j for _, j in pairs]
    regrouped = dataclasses.replace(examples, texts=[examples.texts[i] for i in order],
                                    pairs=[examples.pairs[i] for i in order], labels=None,
                                    preference_pairs=len(pairs))
    note = (f"reranker: {len(pairs)} pairs of {how}, from {len(relevant)} query / passage rows with 0/1 labels "
            f"({int(relevant.sum())} relevant); each row used at most once")
    return regrouped, note
