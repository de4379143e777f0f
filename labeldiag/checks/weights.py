"""The model's insides judged against themselves: each block's weights, residual stream and attention
against its sibling blocks (robust z-scores over the layers of the same model), and each tensor's move
from the base model against its siblings' moves.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from labeldiag import thresholds as T
from labeldiag.findings import Finding
from labeldiag.records import Activations, BaseDistance, TensorStats
from labeldiag.catalogue import (
    ATTENTION_DEGENERATE, LAYER_WEIGHTS_ANOMALOUS, RESIDUAL_STREAM_ANOMALOUS, WEIGHTS_FAR_FROM_BASE,
)


def robust_z(values: np.ndarray, floor: float) -> np.ndarray:
    """(x - median of the others) / (1.4826 x MAD of the others, at least `floor`), for each x.

    Leaving x out keeps one extreme layer among six from inflating its own yardstick."""
    out = np.empty(len(values))
    for i in range(len(values)):
        others = np.delete(values, i)
        med = float(np.median(others))
        mad = 1.4826 * float(np.median(np.abs(others - med)))
        out[i] = (values[i] - med) / max(mad, floor)
    return out


def _by_role(items: list, min_siblings: int) -> dict[str, list]:
    groups: dict[str, list] = defaultdict(list)
    for item in items:
        if item.block is not None:
            groups[item.role].append(item)
    return {role: sorted(g, key=lambda s: s.block) for role, g in groups.items() if len(g) >= min_siblings}


def layer_weights_anomalous(stats: list[TensorStats]) -> list[Finding]:
    """Tensors whose RMS is an outlier against the same tensor in the other blocks, or that hold exactly-zero
    rows / columns that no healthy weight has.

    Scale test: robust z of log(RMS) over the siblings (>= WEIGHT_MIN_SIBLINGS blocks), |z| >= WEIGHT_MAX_Z
    and a ratio to the siblings' median beyond WEIGHT_MIN_RATIO[kind]. Zero test: at least
    WEIGHT_MIN_ZERO_ROWS exactly-zero rows or columns, more than any sibling has.
    """
    rows: list[dict] = []
    for role, group in _by_role(stats, T.WEIGHT_MIN_SIBLINGS).items():
        rms = np.array([s.rms for s in group])
        if (rms <= 0).all():
            continue
        logs = np.log(np.clip(rms, 1e-30, None))
        z = robust_z(logs, T.WEIGHT_LOG_MAD_FLOOR)
        for s, zi, li in zip(group, z, logs):
            others = np.delete(logs, group.index(s))
            if max(s.rms, math.exp(float(np.median(others)))) < T.WEIGHT_NEAR_ZERO_RMS:
                continue  # both at their zero init: differences are noise
            ratio = math.exp(li - float(np.median(others)))
            limit = T.WEIGHT_MIN_RATIO.get(s.kind, T.WEIGHT_MIN_RATIO["matrix"])
            if abs(zi) >= T.WEIGHT_MAX_Z and (ratio >= limit or ratio <= 1 / limit):
                rows.append({"tensor": s.name, "statistic": "rms", "value": s.rms, "siblings_median":
                             float(np.exp(np.median(others))), "ratio": ratio, "robust_z": float(zi),
                             "siblings": len(group)})
    by_role = _by_role(stats, 2)
    for s in stats:
        zeros = max(s.zero_rows, s.zero_cols)
        if zeros < T.WEIGHT_MIN_ZERO_ROWS:
            continue
        siblings = [o for o in by_role.get(s.role, []) if o is not s]
        if siblings and zeros <= max(max(o.zero_rows, o.zero_cols) for o in siblings):
            continue
        axis, count, of = (("rows", s.zero_rows, s.rows) if s.zero_rows >= s.zero_cols
                           else ("columns", s.zero_cols, s.cols))
        rows.append({"tensor": s.name, "statistic": f"exactly-zero {axis}", "value": count, "of": of,
                     "share": count / max(1, of), "siblings": len(siblings)})
    if not rows:
        return []
    rows.sort(key=lambda r: -abs(math.log(r["ratio"])) if "ratio" in r else -1e9 * r["share"])
    shown = "; ".join(_describe(r) for r in rows[:4]) + ("; ..." if len(rows) > 4 else "")
    test = (f"robust z-score of log RMS against the same tensor in the other blocks (|z| >= {T.WEIGHT_MAX_Z:g}), "
            f"and exactly-zero rows / columns (>= {T.WEIGHT_MIN_ZERO_ROWS}) no sibling has")
    return [Finding(
        LAYER_WEIGHTS_ANOMALOUS,
        f"{len(rows)} weight tensor{'s are' if len(rows) > 1 else ' is'} out of line with "
        f"{'their' if len(rows) > 1 else 'its'}"
        f" sibling layers: {shown}",
        {"tensors": rows, "test": test, "n_tensors": len(stats)},
    )]


def _describe(r: dict) -> str:
    if "ratio" in r:
        return (f"{r['tensor']} RMS {r['value']:.3g} is {r['ratio']:.3g}x its {r['siblings'] - 1} siblings' median "
                f"(z = {r['robust_z']:.1f})")
    return f"{r['tensor']} has {r['value']} of {r['of']} {r['statistic']}"


def residual_stream_anomalous(acts: Activations | None) -> list[Finding]:
    """A block whose update of the residual stream (median over tokens of |out - in|) is a robust outlier
    against the other blocks': |z| of the log >= STREAM_MAX_Z and a ratio to their median beyond
    STREAM_MIN_RATIO. The first block is left out: it acts on the raw embeddings, whose scale differs
    from the stream's in pre-LayerNorm models. Post-LayerNorm blocks (BERT) rescale their output, so a
    multiplied gain shows as a block whose update (and the next block's) is far larger than the others'.
    """
    blocks = list(acts.blocks[1:]) if acts is not None else []
    if len(blocks) < T.STREAM_MIN_BLOCKS:
        return []
    logs = np.log(np.clip(np.array([b.median_update for b in blocks]), 1e-30, None))
    # median and MAD over all judged blocks, the block itself included: a damaged block also disturbs the
    # next one's update, and two outliers among five must not move the yardstick
    median = float(np.median(logs))
    z = (logs - median) / max(1.4826 * float(np.median(np.abs(logs - median))), T.STREAM_LOG_MAD_FLOOR)
    rows = []
    for b, zi, li in zip(blocks, z, logs):
        ratio = math.exp(li - median)
        if abs(zi) >= T.STREAM_MAX_Z and (ratio >= T.STREAM_MIN_RATIO or ratio <= 1 / T.STREAM_MIN_RATIO):
            rows.append({"block": b.name, "statistic": "median update |out - in|", "value": b.median_update,
                         "ratio": ratio, "robust_z": float(zi), "rms_in": b.rms_in, "rms_out": b.rms_out})
    if not rows:
        return []
    shown = "; ".join(f"{r['block']} {'blows up' if r['ratio'] > 1 else 'barely changes'} the stream: median update "
                      f"{r['value']:.3g}, {r['ratio']:.3g}x the other blocks' median (z = {r['robust_z']:.1f}; "
                      f"stream RMS {r['rms_in']:.3g} -> {r['rms_out']:.3g})" for r in rows[:4])
    return [Finding(
        RESIDUAL_STREAM_ANOMALOUS,
        f"{len(rows)} block(s) change the residual stream far unlike the others: {shown}",
        {"blocks": rows, "examples": acts.examples, "n_blocks": len(acts.blocks),
         "test": f"robust z-score of the log median update over blocks 1..{len(acts.blocks) - 1} "
                 f"(|z| >= {T.STREAM_MAX_Z:g}, ratio beyond {T.STREAM_MIN_RATIO:g}x)"},
    )]


def attention_degenerate(acts: Activations | None) -> list[Finding]:
    """A layer whose every head attends uniformly (normalised entropy >= ATTENTION_UNIFORM_MIN_ENTROPY) or
    one-hot (mean largest weight >= ATTENTION_ONE_HOT_MIN_WEIGHT), or that puts ATTENTION_MAX_PAD_MASS of
    its attention on padding, while the median of its sibling layers is at least ATTENTION_SIBLING_MARGIN
    short of that bar."""
    if acts is None or len(acts.attention) < 2:
        return []
    layers = [a for a in acts.attention if a.entropy_per_head]
    kinds = {}
    for a in layers:
        others = [o for o in layers if o is not a]
        if not others:
            continue
        entropy = float(np.median([np.mean(o.entropy_per_head) for o in others]))
        weight = float(np.median([np.mean(o.max_weight_per_head) for o in others]))
        pad = float(np.median([o.pad_mass for o in others]))
        margin = T.ATTENTION_SIBLING_MARGIN
        uniform, one_hot = T.ATTENTION_UNIFORM_MIN_ENTROPY, T.ATTENTION_ONE_HOT_MIN_WEIGHT
        if min(a.entropy_per_head) >= uniform and entropy <= uniform - margin:
            kinds[a.name] = ("uniform", a)
        elif min(a.max_weight_per_head) >= one_hot and weight <= one_hot - margin:
            kinds[a.name] = ("one-hot", a)
        elif a.pad_mass >= T.ATTENTION_MAX_PAD_MASS and pad <= T.ATTENTION_MAX_PAD_MASS - margin:
            kinds[a.name] = ("on padding", a)
    if not kinds or len(kinds) > len(acts.attention) // 2:
        # most layers alike is the architecture's way (or every layer broken, which the predictions show)
        return []
    rows = [{"layer": name, "pattern": kind, "entropy_per_head": list(a.entropy_per_head),
             "max_weight_per_head": list(a.max_weight_per_head), "pad_mass": a.pad_mass, "examples": a.examples}
            for name, (kind, a) in kinds.items()]
    shown = "; ".join(f"{r['layer']} attends {r['pattern']} in every head" if r["pattern"] != "on padding"
                      else f"{r['layer']} puts {r['pad_mass']:.0%} of its attention on padding" for r in rows)
    return [Finding(
        ATTENTION_DEGENERATE, f"{shown} (over {rows[0]['examples']} examples), unlike its sibling layers",
        {"layers": rows, "uniform_entropy": T.ATTENTION_UNIFORM_MIN_ENTROPY,
         "one_hot_weight": T.ATTENTION_ONE_HOT_MIN_WEIGHT, "pad_mass": T.ATTENTION_MAX_PAD_MASS,
         "n_layers": len(acts.attention)},
    )]


def weights_far_from_base(distances: list[BaseDistance], base: str) -> list[Finding]:
    """Tensors that moved from the base by orders of magnitude more than their siblings (or, outside the
    stack, than the median tensor): ratio >= BASE_MIN_RATIO and relative change >= BASE_MIN_CHANGE."""
    if not distances:
        return []
    changes = np.array([d.relative_change for d in distances])
    overall = float(np.median(changes[np.isfinite(changes)])) if np.isfinite(changes).any() else 0.0
    groups = _by_role(distances, 2)
    rows = []
    for d in distances:
        siblings = [o.relative_change for o in groups.get(d.role, []) if o is not d]
        reference = float(np.median(siblings)) if len(siblings) >= 2 else overall
        reference = max(reference, T.BASE_CHANGE_FLOOR)
        ratio = d.relative_change / reference
        if d.relative_change >= T.BASE_MIN_CHANGE and ratio >= T.BASE_MIN_RATIO:
            rows.append({"tensor": d.name, "relative_change": d.relative_change, "reference_change": reference,
                         "ratio": ratio, "compared_with": "siblings" if len(siblings) >= 2 else "all tensors"})
    if not rows:
        return []
    rows.sort(key=lambda r: -r["ratio"])
    shown = "; ".join(f"{r['tensor']} changed by {r['relative_change']:.3g} of its base norm, "
                      f"{r['ratio']:.3g}x its {r['compared_with']}' median" for r in rows[:4])
    return [Finding(
        WEIGHTS_FAR_FROM_BASE,
        f"{len(rows)} tensor{'s' if len(rows) > 1 else ''} moved from the base model ({base}) by orders of "
        f"magnitude more than the rest of the fine-tune: {shown}{'; ...' if len(rows) > 4 else ''}",
        {"tensors": rows, "base_model": base, "median_relative_change": overall, "compared": len(distances),
         "test": f"relative change >= {T.BASE_MIN_CHANGE:g} and >= {T.BASE_MIN_RATIO:g}x the siblings' median"},
    )]
