"""The CLI's defaults are the options objects' defaults: one value per option, whichever way it is run."""
from __future__ import annotations

from dataclasses import fields

import pytest
from typer.main import get_command

from labeldiag import options as opt
from labeldiag.cli import app

# the settings each command's own options come from (doctor's smoke-train stage takes TrainSettings)
SETTINGS = {"grad-flow": opt.GradFlowSettings, "smoke-train": opt.TrainSettings, "doctor": opt.TrainSettings}
# the command whose --max-examples default a command shares (fix re-runs check-logits)
MAX_EXAMPLES_OF = {"fix": "check-logits"}


def _cli_defaults(command: str) -> dict:
    click_command = get_command(app).commands[command]
    return {p.name: p.default for p in click_command.params if not p.required}


@pytest.mark.parametrize("command", ["check-logits", "grad-flow", "smoke-train", "doctor", "fix"])
def test_cli_defaults_are_the_options_defaults(command):
    cli = _cli_defaults(command)
    expected = {f.name: f.default for f in fields(opt.Options) if f.name in cli}
    expected["max_examples"] = opt.DEFAULT_MAX_EXAMPLES[MAX_EXAMPLES_OF.get(command, command)]
    settings = SETTINGS.get(command)
    if settings is not None:
        expected |= {f.name: f.default for f in fields(settings) if f.name in cli and cli[f.name] is not None}
    assert expected, command
    for name, value in expected.items():
        assert cli[name] == value, f"{command} --{name.replace('_', '-')}: CLI default {cli[name]!r}, options {value!r}"
    assert "max_examples" in cli
