"""Write the JSON report and PNG figures; unwritable paths are the user's to fix (exit 2)."""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from labeldiag.errors import UsageError
from labeldiag.paths import resolved

if TYPE_CHECKING:
    from labeldiag.findings import Report


def check_writable(path: str | None, flag: str) -> None:
    """Fail before the work starts when an output path cannot be written."""
    if path is None or path == "-":
        return
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{flag} '{path}' is a folder; give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise UsageError(f"{flag} '{path}': folder '{parent}' does not exist")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageError(f"{flag} '{path}' is not writable (permission denied)")


CHECKPOINT_MARKERS = ("config.json", "adapter_config.json")  # or *model*.safetensors weights (not tensor data)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_SOFTWARE = "labeldiag"  # the tEXt 'Software' value that marks a figure as ours
HTML_GENERATOR = '<meta name="generator" content="labeldiag">'  # marks an HTML report as ours


def guard_output_paths(outputs: dict[str, str | None], model: str, data: str, tokenizer: str | None) -> None:
    """Refuse, before any work, an output path that would destroy or pollute the user's inputs.

    `outputs` maps each flag (--json, --plot, ...) to its path. Refused: MODEL, DATA or the tokenizer
    (or a path inside one of them), a path inside any checkpoint folder, two outputs naming one file,
    and an existing file that labeldiag did not write (overwriting a report or figure of an earlier
    run is fine).
    """
    inputs = [(model, "MODEL"), (data, "DATA")] + ([(tokenizer, "--tokenizer")] if tokenizer else [])
    protected = [(resolved(where), what) for where, what in inputs]
    seen: dict[Path, str] = {}
    for flag, path in outputs.items():
        if path is None or path == "-":
            continue
        target = resolved(path)
        if target in seen:
            raise UsageError(f"{seen[target]} and {flag} name the same file '{path}'; give them different paths")
        seen[target] = flag
        for where, what in protected:
            if target == where:
                raise UsageError(f"{flag} '{path}' is {what}; writing there would destroy it, give another path")
            if where in target.parents:
                raise UsageError(f"{flag} '{path}' is inside {what} '{where}'; labeldiag never writes into its "
                                 "inputs, give a path outside it")
        if _is_checkpoint_folder(target.parent):
            raise UsageError(f"{flag} '{path}' is inside the checkpoint folder '{target.parent}'; labeldiag never "
                             "writes into a checkpoint, give a path outside it")
        if os.path.lexists(target) and not target.is_dir():
            if not target.is_file():
                raise UsageError(f"{flag} '{path}' exists and is not a regular file; give a file name"
                                 + (" ('-' writes the JSON to stdout)" if flag == "--json" else ""))
            if not _written_by_labeldiag(target):
                raise UsageError(f"{flag} '{path}' exists and was not written by labeldiag; labeldiag only "
                                 "overwrites its own reports, give a new file name")


def _is_checkpoint_folder(folder: Path) -> bool:
    try:
        return folder.is_dir() and (any((folder / m).is_file() for m in CHECKPOINT_MARKERS)
                                    or any(folder.glob("*model*.safetensors")))
    except OSError:
        return False


def _written_by_labeldiag(path: Path) -> bool:
    """A JSON report (it starts with "labeldiag_version"), a PNG marked by save_figure or an HTML report."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return False
    if head.startswith(PNG_SIGNATURE):
        return PNG_SOFTWARE in _png_text(head)
    return b'"labeldiag_version"' in head[:200] or HTML_GENERATOR.encode() in head


def _png_text(head: bytes) -> str:
    """The 'Software' tEXt value among the PNG chunks before the image data ('' when there is none)."""
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(head):
        length = int.from_bytes(head[pos:pos + 4], "big")
        kind = head[pos + 4:pos + 8]
        if kind == b"IDAT":
            break
        if kind == b"tEXt":
            key, _, value = head[pos + 8:pos + 8 + length].partition(b"\0")
            if key == b"Software":
                return value.decode("latin-1")
        pos += 12 + length
    return ""


def save_figure(fig, path: str) -> None:
    """Write a PNG to exactly `path` (no suffix added), marked so a later run may overwrite it."""
    try:
        fig.savefig(path, format="png", dpi=120, bbox_inches="tight", metadata={"Software": PNG_SOFTWARE})
    except OSError as exc:
        raise UsageError(f"--plot '{path}' could not be written ({exc.strerror or exc})") from None


def write_json(report: Report, path: str) -> None:
    text = json.dumps(report.to_dict(), indent=2, allow_nan=False)
    if path == "-":
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return
    _atomic_write(Path(path), text.encode("utf-8"), "--json")


def _atomic_write(p: Path, data: bytes, flag: str) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=str(p.parent or "."), prefix=".labeldiag-", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, p)
    except OSError as exc:
        raise UsageError(f"{flag} '{p}' could not be written ({exc.strerror or exc})") from None
