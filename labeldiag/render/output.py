"""Write the JSON report and PNG figures; unwritable paths are the user's to fix (exit 2)."""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from labeldiag.errors import UsageError
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
