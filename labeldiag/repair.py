"""labeldiag fix: a corrected copy of a checkpoint, for what its own files can fix; never in place.

Each fixable code has one function (FIXERS) that turns its finding into the file edits its evidence
proves, or into nothing: id2label/label2id permuted under a label-permutation (whose verdict already
requires a mapping that explains the model), a label2id rebuilt as the inverse of id2label, a
problem_type set to single-label only when the data's labels show class indices, and a pad token set to
the tokenizer's pad id (the tokenizer's eos token becoming its pad token only when it has none), and,
only when the user asks (--restore-from-base), the tensors weights-far-from-base names taken from the
base model. Otherwise the weights are copied byte for byte; check-logits then re-runs on the copy, and a copy whose re-check is
not clean (a fixed code still there, a new error, less accuracy than the fix promised) is removed.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from labeldiag import thresholds as T
from labeldiag.catalogue import (
    CATALOGUE, LABEL_MAP_INCONSISTENT, LABEL_PERMUTATION, PAD_TOKEN_MISSING, PROBLEM_TYPE_MISMATCH,
    WEIGHTS_FAR_FROM_BASE,
)
from labeldiag.errors import UsageError
from labeldiag.paths import resolved
from labeldiag.records import ChangeMade, FindingBefore, FixMade, FixOutcome

if TYPE_CHECKING:
    from labeldiag.findings import Finding, Report

CONFIG = "config.json"
TOKENIZER = "tokenizer"  # changes to the tokenizer, saved with save_pretrained (tokenizer_config.json)
WEIGHTS = "weights"  # tensors of the checkpoint's *.safetensors, restored from the base model


@dataclass(frozen=True)
class Change:
    file: str  # CONFIG or TOKENIZER
    key: str
    before: Any
    after: Any


@dataclass
class Fix:
    code: str  # the finding it answers
    what: str  # one line for the user
    changes: list[Change]
    evidence: dict[str, Any] = field(default_factory=dict)  # the finding's evidence behind the edit
    promised_accuracy: float | None = None  # what the re-check must reach

    def record(self) -> FixMade:
        """The fix as the report carries it, each file named as the user knows it."""
        files = {TOKENIZER: "tokenizer_config.json", WEIGHTS: "*.safetensors"}
        return FixMade(self.code, self.what, self.promised_accuracy,
                       tuple(ChangeMade(files.get(c.file, c.file), c.key, c.before, c.after) for c in self.changes),
                       self.evidence)


@dataclass
class Checkpoint:
    """What a fixer may read: the report, config.json, and the tokenizer (loaded on first use)."""

    report: Report
    config: dict[str, Any]
    tokenizer_path: str
    restore_from_base: bool = False  # the user asked for weights-far-from-base's repair
    loaded_tokenizer: Any = field(default=None, repr=False)

    @property
    def num_labels(self) -> int:
        return int(self.report.model.get("num_labels") or 0)

    def tokenizer(self) -> Any:
        if self.loaded_tokenizer is None:
            from transformers import AutoTokenizer

            self.loaded_tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_path)
        return self.loaded_tokenizer


def fix_label_names(finding: Finding, ckpt: Checkpoint) -> Fix | None:
    names = finding.evidence.get("suggested_id2label") or {}
    if len(names) != ckpt.num_labels or len(set(names.values())) != ckpt.num_labels:
        return None
    id2label = {str(i): names[str(i)] for i in range(ckpt.num_labels)}
    label2id = {v: int(k) for k, v in id2label.items()}
    return Fix(LABEL_PERMUTATION, "id2label/label2id permuted to the mapping the predictions show",
               [Change(CONFIG, "id2label", ckpt.config.get("id2label"), id2label),
                Change(CONFIG, "label2id", ckpt.config.get("label2id"), label2id)],
               promised_accuracy=finding.evidence.get("best_accuracy"))


def fix_label2id(finding: Finding, ckpt: Checkpoint) -> Fix | None:
    if ckpt.report.has(LABEL_PERMUTATION):
        return None  # the permutation's fix rewrites both maps
    id2label = {str(k): v for k, v in (ckpt.config.get("id2label") or {}).items()}
    if len(id2label) != ckpt.num_labels or len(set(id2label.values())) != ckpt.num_labels:
        return None
    return Fix(LABEL_MAP_INCONSISTENT, "label2id rebuilt as the inverse of id2label",
               [Change(CONFIG, "label2id", ckpt.config.get("label2id"), {v: int(k) for k, v in id2label.items()})])


def fix_problem_type(finding: Finding, ckpt: Checkpoint) -> Fix | None:
    """Only labelled data shows the task: integer or name labels of several classes mean single-label."""
    problem_type = ckpt.config.get("problem_type")
    if (not ckpt.report.data.get("labelled") or not finding.evidence.get("distinct_labels")
            or finding.evidence.get("label_dtype") not in ("int", "str") or ckpt.num_labels < 2
            or not problem_type or problem_type == "single_label_classification"):
        return None
    return Fix(PROBLEM_TYPE_MISMATCH,
               f"problem_type '{problem_type}' set to 'single_label_classification' (the data's "
               f"{finding.evidence['distinct_labels']} labels are class indices)",
               [Change(CONFIG, "problem_type", problem_type, "single_label_classification")])


def fix_pad_token(finding: Finding, ckpt: Checkpoint) -> Fix | None:
    """config.pad_token_id = the tokenizer's pad id; a tokenizer without one gets its eos token as pad."""
    tokenizer = ckpt.tokenizer()
    if tokenizer.pad_token_id is not None:
        return Fix(PAD_TOKEN_MISSING, f"pad_token_id set to the tokenizer's pad id {tokenizer.pad_token_id}",
                   [Change(CONFIG, "pad_token_id", ckpt.config.get("pad_token_id"), tokenizer.pad_token_id)])
    if tokenizer.eos_token is None or tokenizer.eos_token_id is None:
        return None  # no token to pad with that the model already knows
    return Fix(PAD_TOKEN_MISSING,
               f"the tokenizer had no pad token: its eos token {tokenizer.eos_token!r} is now its pad token, and "
               f"pad_token_id is its id {tokenizer.eos_token_id}",
               [Change(TOKENIZER, "pad_token", None, tokenizer.eos_token),
                Change(CONFIG, "pad_token_id", ckpt.config.get("pad_token_id"), tokenizer.eos_token_id)])


def fix_from_base(finding: Finding, ckpt: Checkpoint) -> Fix | None:
    """weights-far-from-base, only when asked (--restore-from-base): the named tensors taken from the base."""
    base = finding.evidence.get("base_model")
    names = [t["tensor"] for t in finding.evidence.get("tensors", [])]
    if not ckpt.restore_from_base or not base or not names:
        return None
    return Fix(WEIGHTS_FAR_FROM_BASE, f"{len(names)} tensor(s) restored from the base model {base}",
               [Change(WEIGHTS, name, "far from the base", f"the base's ({base})") for name in names])


# one function per code the catalogue marks fixable; each returns None when the evidence does not pin the edit down
FIXERS: dict[str, Callable[[Finding, Checkpoint], Fix | None]] = {
    LABEL_PERMUTATION: fix_label_names, LABEL_MAP_INCONSISTENT: fix_label2id,
    PROBLEM_TYPE_MISMATCH: fix_problem_type, PAD_TOKEN_MISSING: fix_pad_token,
    WEIGHTS_FAR_FROM_BASE: fix_from_base,
}


def repairable(finding: Finding, report: Report) -> bool:
    """Could `fix` repair this finding? (the console's next step asks; decided from the report alone)"""
    if finding.code == PROBLEM_TYPE_MISMATCH:
        return bool(report.data.get("labelled")) and finding.evidence.get("label_dtype") in ("int", "str") \
            and bool(finding.evidence.get("distinct_labels"))
    if finding.code == LABEL_MAP_INCONSISTENT:
        return not report.has(LABEL_PERMUTATION)
    info = CATALOGUE[finding.code]
    return info.fixable and info.fix_opt_in is None  # an opt-in repair waits for its option


def plan_fixes(ckpt: Checkpoint) -> list[Fix]:
    """The edits that answer the report's findings; only what the evidence pins down."""
    fixes = []
    for finding in ckpt.report.sorted_findings():
        fixer = FIXERS.get(finding.code)
        fix = fixer(finding, ckpt) if fixer is not None else None
        if fix is not None:
            fix.evidence = fix.evidence or dict(finding.evidence)
            fixes.append(fix)
    return fixes


def check_out_folder(out: str, model: str, data: Any) -> Path:
    target, source = resolved(out), resolved(model)
    if target == source or source in target.parents:
        raise UsageError(f"--out '{out}' is MODEL or inside it; fix never writes into the checkpoint, give a new folder")
    if target in source.parents:
        raise UsageError(f"--out '{out}' holds MODEL; give a new, empty folder")
    if isinstance(data, (str, Path)) and target == resolved(data):
        raise UsageError(f"--out '{out}' is DATA; give a new folder")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"--out '{out}' exists and is not an empty folder; give a new folder")
    if not target.parent.exists():
        raise UsageError(f"--out '{out}': folder '{target.parent}' does not exist")
    return target


def write_copy(source: Path, target: Path, fixes: list[Fix], ckpt: Checkpoint) -> None:
    """The checkpoint's files byte for byte, then config.json (and the tokenizer) edited."""
    shutil.copytree(source, target, dirs_exist_ok=True, symlinks=False)
    config = dict(ckpt.config)
    changes = [c for fix in fixes for c in fix.changes]
    for change in changes:
        if change.file == CONFIG:
            config[change.key] = change.after
    (target / CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tokenizer_changes = [c for c in changes if c.file == TOKENIZER]
    if tokenizer_changes:
        tokenizer = ckpt.tokenizer()
        for change in tokenizer_changes:
            setattr(tokenizer, change.key, change.after)
        tokenizer.save_pretrained(target)
    for fix in fixes:
        names = {c.key for c in fix.changes if c.file == WEIGHTS}
        if names:
            restore_tensors(target, names, fix.evidence["base_model"])


def restore_tensors(target: Path, names: set[str], base_model: str) -> None:
    """Overwrite the named tensors in target's *.safetensors with the base model's (UsageError when one of
    them has no counterpart of the same shape in the base)."""
    from safetensors.torch import load_file, save_file

    from labeldiag.load.base_model import read_base_state
    from labeldiag.measure.weights import matching_base_tensor

    base, restored = read_base_state(base_model), set()
    for file in sorted(target.glob("*.safetensors")):
        tensors = load_file(str(file))
        found = {name: matching_base_tensor(name, tensors[name], base) for name in names & set(tensors)}
        found = {name: ref for name, ref in found.items() if ref is not None}
        if found:
            tensors.update({name: ref.to(tensors[name].dtype).contiguous() for name, ref in found.items()})
            save_file(tensors, str(file), metadata={"format": "pt"})
            restored |= set(found)
    if restored != names:
        raise UsageError(f"--restore-from-base: the base model '{base_model}' has no tensor of the same shape for "
                         f"{', '.join(sorted(names - restored))}")


def recheck_failures(before: Report, after: Report, fixes: list[Fix]) -> list[str]:
    """Why the copy's re-check is not clean: a fixed code still reported, a new error, accuracy short of
    what a fix promised. Empty when clean."""
    failed = [f"{fix.code} is still reported" for fix in fixes if after.has(fix.code)]
    failed += [f"new {f.code} error" for f in after.sorted_findings()
               if f.severity == "error" and not before.has(f.code)]
    reached = accuracy(after)
    for fix in fixes:
        promised = fix.promised_accuracy
        if promised is not None and (reached is None or reached < promised - T.FIX_MAX_ACCURACY_SHORTFALL):
            shown = "no accuracy" if reached is None else f"accuracy {reached:.1%}"
            failed.append(f"{shown} instead of the {promised:.1%} {fix.code}'s mapping promised")
    return failed


def fix_checkpoint(model: Any, data: Any, out: Any, check_logits: Callable[..., Report], tokenizer: Any = None,
                   restore_from_base: bool = False, **options: Any) -> Report:
    """Write a corrected copy of the checkpoint folder `model` into `out`; return the copy's re-check, made
    with `check_logits` (the API's, handed in: the API sits above repair).

    The report's `fix` (FixOutcome) holds what changed (each change: file, key, before, after, and the
    evidence), the original's findings and its accuracy; its keys are the metrics' "fixes", "before" and
    "accuracy_before". Raises UsageError, writing nothing, when
    nothing can be fixed confidently or the copy's re-check is not clean.
    """
    if not isinstance(model, (str, Path)) or not (Path(model).is_dir() and (Path(model) / CONFIG).is_file()):
        raise UsageError(f"MODEL '{model}' must be a local checkpoint folder with config.json; fix writes a "
                         "corrected copy of its files")
    if tokenizer is not None and not isinstance(tokenizer, (str, Path)):
        raise UsageError("fix needs the tokenizer as a folder (it may write a corrected copy of it)")
    source, target = Path(model), check_out_folder(str(out), str(model), data)
    existed = target.exists()
    before = check_logits(str(source), data, tokenizer=tokenizer, **options)
    config = json.loads((source / CONFIG).read_text(encoding="utf-8"))
    ckpt = Checkpoint(before, config, str(tokenizer or source), restore_from_base=bool(restore_from_base))
    fixes = plan_fixes(ckpt)
    if not fixes:
        found = ", ".join(f.code for f in before.sorted_findings() if f.severity != "info") or "none"
        raise UsageError(f"nothing in MODEL can be fixed confidently from its own files (findings: {found}); "
                         f"run 'labeldiag doctor {model} {data}' for the diagnosis")
    try:
        write_copy(source, target, fixes, ckpt)
        # the tokenizer travels with the copy when fix edited it; otherwise the user's stays in use
        edited_tokenizer = any(c.file == TOKENIZER for fix in fixes for c in fix.changes)
        after = check_logits(str(target), data, tokenizer=None if edited_tokenizer else tokenizer, **options)
        failed = recheck_failures(before, after, fixes)
    except BaseException:
        remove_copy(target, existed)
        raise
    if failed:
        remove_copy(target, existed)
        raise UsageError(f"the corrected copy did not re-check clean ({'; '.join(failed)}); "
                         f"it was removed, nothing written to '{out}'")
    after.attach(FixOutcome(tuple(fix.record() for fix in fixes),
                            tuple(FindingBefore.from_metrics(f.to_dict()) for f in before.sorted_findings()),
                            accuracy(before)))  # report.fix; its keys fill report.metrics
    return after


def accuracy(report: Report) -> float | None:
    """check-logits' accuracy: its predictions' (report.logits); a token task's, which has no such record, is
    the token accuracy in its metrics."""
    return report.logits.accuracy if report.logits is not None else report.metrics.get("accuracy")


def remove_copy(target: Path, existed: bool) -> None:
    """Remove what fix wrote: the folder it made, or the contents of the empty folder it was given."""
    if not target.exists():
        return
    if existed:
        for child in target.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    else:
        shutil.rmtree(target)
