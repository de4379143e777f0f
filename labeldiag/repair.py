"""labeldiag fix: a corrected copy of a checkpoint, for what its own files can fix; never in place.

Fixable from config.json alone: id2label/label2id permuted per label-permutation's evidence, label maps
that are not inverse, a problem_type that contradicts integer class labels, a missing pad token id.
The weights are copied byte for byte; check-logits then runs on the copy, before and after are shown.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labeldiag.errors import UsageError
from labeldiag.findings import Report


@dataclass(frozen=True)
class Fix:
    code: str  # the finding it answers
    what: str  # one line for the user
    changes: dict[str, Any]  # config.json keys -> new values (None removes the key)


def plan_fixes(report: Report, config: dict[str, Any]) -> list[Fix]:
    """The config.json edits that answer the report's findings; only what the evidence pins down."""
    fixes: list[Fix] = []
    num_labels = int(report.model.get("num_labels") or 0)
    perm = report.get("label-permutation")
    if perm is not None:
        names = perm.evidence.get("suggested_id2label") or {}
        if len(names) == num_labels and len(set(names.values())) == num_labels:
            id2label = {str(i): names[str(i)] for i in range(num_labels)}
            fixes.append(Fix("label-permutation", "id2label/label2id permuted to the mapping the predictions show",
                             {"id2label": id2label, "label2id": {v: int(k) for k, v in id2label.items()}}))
    if report.has("label-map-inconsistent") and perm is None:
        id2label = {str(k): v for k, v in (config.get("id2label") or {}).items()}
        if len(id2label) == num_labels and len(set(id2label.values())) == num_labels:
            fixes.append(Fix("label-map-inconsistent", "label2id rebuilt as the inverse of id2label",
                             {"label2id": {v: int(k) for k, v in id2label.items()}}))
    mismatch = report.get("problem-type-mismatch")
    if (mismatch is not None and num_labels >= 2 and config.get("problem_type")
            and config.get("problem_type") != "single_label_classification"
            and mismatch.evidence.get("label_dtype") in ("int", "str")):
        fixes.append(Fix("problem-type-mismatch",
                         f"problem_type '{config['problem_type']}' set to 'single_label_classification' "
                         "(the labels are class indices)", {"problem_type": "single_label_classification"}))
    if report.has("pad-token-missing") and config.get("eos_token_id") is not None:
        eos = config["eos_token_id"]
        eos = eos[0] if isinstance(eos, list) and eos else eos
        if isinstance(eos, int):
            fixes.append(Fix("pad-token-missing", f"pad_token_id set to the eos token id {eos}",
                             {"pad_token_id": eos}))
    return fixes


def restore_from_base(report: Report, target: Path) -> Fix | None:
    """weights-far-from-base (issue 20): the flagged tensors, copied from the base model into target's weights."""
    from safetensors.torch import load_file, save_file

    from labeldiag.commands.inside import read_base_state
    from labeldiag.measure.weights import matching_base_tensor

    far = report.get("weights-far-from-base")
    if far is None:
        return None
    base = read_base_state(far.evidence["base_model"])
    wanted = {t["tensor"] for t in far.evidence["tensors"]}
    restored = []
    for file in sorted(target.glob("*.safetensors")):
        tensors = load_file(str(file))
        hits = {name: matching_base_tensor(name, tensors[name], base) for name in wanted & set(tensors)}
        hits = {name: ref for name, ref in hits.items() if ref is not None}
        if hits:
            tensors.update({name: ref.to(tensors[name].dtype).contiguous() for name, ref in hits.items()})
            save_file(tensors, str(file), metadata={"format": "pt"})
            restored += sorted(hits)
    if not restored:
        return None
    return Fix("weights-far-from-base", f"{len(restored)} tensor(s) restored from the base model "
               f"{far.evidence['base_model']}: {', '.join(restored)}", {})


def check_out_folder(out: str, model: str, data: str) -> Path:
    target = Path(out).expanduser().resolve()
    source = Path(model).expanduser().resolve()
    if target == source or source in target.parents:
        raise UsageError(f"--out '{out}' is MODEL or inside it; fix never writes into the checkpoint, give a new folder")
    if target in source.parents:
        raise UsageError(f"--out '{out}' holds MODEL; give a new, empty folder")
    if target == Path(data).expanduser().resolve():
        raise UsageError(f"--out '{out}' is DATA; give a new folder")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"--out '{out}' exists and is not an empty folder; give a new folder")
    if not target.parent.exists():
        raise UsageError(f"--out '{out}': folder '{target.parent}' does not exist")
    return target


def run_fix(model: str, data: str, out: str, tokenizer: str | None, options: dict[str, Any],
            json_path: str | None, restore: bool = False) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from labeldiag.api import check_logits
    from labeldiag.render.output import write_json

    source = Path(model)
    if not (source.is_dir() and (source / "config.json").is_file()):
        raise UsageError(f"MODEL '{model}' must be a local checkpoint folder with config.json; fix writes a "
                         "corrected copy of its files")
    target = check_out_folder(out, model, data)
    if json_path and json_path != "-":
        from labeldiag.render.output import guard_output_paths

        guard_output_paths({"--json": json_path}, model, data, tokenizer)
    console = Console(stderr=json_path == "-", highlight=False)
    before = check_logits(model, data, tokenizer=tokenizer, **options)
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    fixes = plan_fixes(before, config)
    restorable = restore and before.has("weights-far-from-base")  # --restore-from-base (issue 20)
    if not fixes and not restorable:
        found = ", ".join(f.code for f in before.sorted_findings() if f.severity != "info") or "none"
        raise UsageError(f"nothing in MODEL can be fixed confidently from its own files (findings: {found}); "
                         f"run 'labeldiag doctor {model} {data}' for the diagnosis")
    shutil.copytree(source, target, dirs_exist_ok=True, symlinks=False)
    for fix in fixes:
        for key, value in fix.changes.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
    (target / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    restored = restore_from_base(before, target) if restorable else None
    fixes += [restored] if restored is not None else []
    after = check_logits(str(target), data, tokenizer=tokenizer, **options)
    table = Table(title=f"labeldiag fix: {escape(str(target))}", title_justify="left")
    table.add_column("finding")
    table.add_column("before", justify="center")
    table.add_column("after", justify="center")
    codes = dict.fromkeys(f.code for f in before.sorted_findings() + after.sorted_findings() if f.severity != "info")
    for code in codes:
        table.add_row(code, before.get(code).severity if before.has(code) else "-",
                      after.get(code).severity if after.has(code) else "fixed")
    for fix in fixes:
        console.print(f"[green]fixed[/] {fix.code}: {escape(fix.what)}", soft_wrap=True)
    console.print(table)
    acc = (before.metrics.get("accuracy"), after.metrics.get("accuracy"))
    if None not in acc:
        console.print(f"accuracy {acc[0]:.1%} -> {acc[1]:.1%}; " + ("tensors restored from the base model" if restored
                      else "weights copied unchanged, only config.json edited"))
    if json_path:
        after.metrics["fixes"] = [{"code": f.code, "what": f.what, "changes": f.changes} for f in fixes]
        after.metrics["before"] = [f.to_dict() for f in before.sorted_findings()]
        write_json(after, json_path)
    return after.exit_code("error")
