"""--help reads as the user types: MODEL DATA, `--max-examples N`, flags without a type."""
from __future__ import annotations

import re

import pytest

from helpers import run_cli

COMMANDS = ["check-logits", "grad-flow", "smoke-train", "doctor", "fix", "explain", "env", "demo"]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_has_no_type_noise(command):
    result = run_cli(*([command] if command else []), "--help")
    assert result.code == 0, result.err
    assert not re.search(r"<(bool|str|int|float|path)>", result.out), result.out
    assert "{" not in result.out.split("\n\n")[0] + result.out[:400], result.out[:400]
    if command in ("check-logits", "grad-flow", "smoke-train", "doctor", "fix"):
        assert "MODEL DATA" in result.out and "--max-examples" in result.out and " N " in result.out
