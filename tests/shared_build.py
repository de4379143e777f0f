"""A session fixture's build shared by the xdist workers of one run: the first worker builds, the others
read what it built (a session fixture is otherwise built once per worker)."""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Callable


def built_once(tmp_path_factory, name: str, build: Callable[[Path], dict]) -> dict:
    """build(folder) -> a JSON-able dict; run once per test run, under a lock the workers share."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return build(tmp_path_factory.mktemp(name))
    root = tmp_path_factory.getbasetemp().parent  # the run's folder, above each worker's own
    result = root / f"{name}.json"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if result.exists():
            return json.loads(result.read_text())
        built = build(root / name)
        result.write_text(json.dumps(built))
        return built
