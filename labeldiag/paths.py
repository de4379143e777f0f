"""Paths the user gave, compared as the file system sees them."""
from __future__ import annotations

import os
from pathlib import Path


def resolved(path: str) -> Path:
    # realpath, not Path.resolve(): a symlink loop is the user's input to report, not a RuntimeError
    return Path(os.path.realpath(os.path.expanduser(str(path))))
