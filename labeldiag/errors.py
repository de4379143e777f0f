"""User-facing errors: exit code 2 with one line; anything else is a bug, exit code 3."""
from __future__ import annotations

import errno
import os
import re
import sys
import traceback
from typing import Callable


EXIT_USAGE, EXIT_INTERNAL = 2, 3


class UsageError(Exception):
    """Bad arguments or bad input: what is wrong and how to fix it, in one line."""


class ModelCodeError(UsageError):
    """The user's model code raised; that is their input, not our bug."""


def why_missing(path: object) -> str:
    """'does not exist', or why a path that is there cannot be followed (a symlink loop, a dangling link)."""
    where = os.path.expanduser(str(path))
    if os.path.islink(where):
        try:
            os.path.realpath(where, strict=True)
        except OSError as exc:
            if exc.errno == errno.ELOOP or isinstance(exc, RuntimeError):
                return "is a symlink loop (its links lead back to themselves)"
            return f"is a symlink to '{os.readlink(where)}', which does not exist"
    return "does not exist"


def debug_enabled(flag: bool = False) -> bool:
    return flag or os.environ.get("LABELDIAG_DEBUG", "") not in ("", "0", "false", "no")


CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f-\x9f]")
UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def strip_control(text: str) -> str:
    """Text without terminal escapes and control characters (a file's content must not drive the terminal)."""
    return CONTROL.sub("", text)


def one_line(text: str, limit: int = 400) -> str:
    text = " ".join(strip_control(str(text)).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_exception(exc: BaseException) -> str:
    msg = str(exc)
    if "Weights only load failed" in msg:  # torch's text advises weights_only=False: never pass that on
        found = UNSAFE_GLOBAL.search(msg)
        msg = "the file holds pickled objects, not only tensors" + (f" ({found.group(1)})" if found else "")
    msg = one_line(msg, 250)
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def guarded(fn: Callable[[], int], debug: bool = False) -> int:
    """Run a command body; map errors to exit codes and one-line messages."""
    try:
        return fn()
    except UsageError as exc:
        if debug_enabled(debug):
            traceback.print_exc()
        print(f"labeldiag: error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("labeldiag: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("labeldiag: error: out of memory; lower --batch-size or --max-examples", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # a bug in labeldiag
        if debug_enabled(debug):
            traceback.print_exc()
        print(
            f"labeldiag: internal error ({describe_exception(exc)}); please report it with the "
            "output of the same command run with --debug",
            file=sys.stderr,
        )
        return EXIT_INTERNAL

