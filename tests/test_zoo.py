"""Every defect of the zoo (tests/zoo.py), planted for real in a tiny model and caught by its command."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import zoo
from helpers import clone, run_cli, write_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def starts(trained, tmp_path_factory):
    """The starting checkpoints by name, each built on first use."""
    built = {"trained": trained["checkpoint"]}

    def start(name: str) -> str:
        if name not in built:
            builder = {"fresh-head": zoo.fresh_head, "random": zoo.random_model}[name]
            built[name] = builder(trained, tmp_path_factory.mktemp(name))
        return built[name]
    return start


@pytest.mark.parametrize("defect", zoo.DEFECTS, ids=[f"{d.command}:{d.name}" for d in zoo.DEFECTS])
def test_defect_is_caught(defect, trained, starts, tmp_path):
    model = starts(defect.start)
    if defect.plant is not None:
        model = clone(model, tmp_path / "model")
        defect.plant(model)
    rows = [json.loads(line) for line in Path(trained["data"]).read_text().splitlines()]
    data = trained["data"]
    if defect.rows is not None:
        rows = defect.rows(rows) if defect.rows is not zoo.correctly_classified else defect.rows(rows, model)
        data = write_jsonl(rows, tmp_path / "data.jsonl")
    r = run_cli(defect.command, model, data, "--device", "cpu", *defect.argv(), tmp=tmp_path)
    for code in defect.codes:
        assert code in r.codes(), f"{defect.name}: {code} not in {r.codes()}\n{r.out}{r.err}"
        finding = r.finding(code)
        assert finding["hint"] and finding["message"]
    for code, severity in defect.severities.items():
        assert r.severities()[code] == severity, (code, r.severities())
    exit_code = defect.exit_code if defect.exit_code is not None else int("error" in r.severities().values())
    assert r.code == exit_code, f"{defect.name}: exit {r.code}, findings {r.severities()}"
    json.dumps(r.report)  # plain JSON, no NaN
    if defect.evidence is not None:
        defect.evidence(r, rows)
