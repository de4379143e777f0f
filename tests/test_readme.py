"""README's Python example runs as written (on the test fixture's model instead of a fresh one)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_api_example_runs(trained, capsys):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", text, flags=re.S).group(1)
    call = 'build_trained("/tmp/labeldiag-example")'
    assert call in block
    exec(compile(block.replace(call, "PATHS"), "README.md", "exec"), {"PATHS": trained})
    out = capsys.readouterr().out
    assert "<Report check-logits: 0 error(s), 0 warning(s)" in out
    assert "logit 0 behaves like 'politics'" in out
