"""fix's changes and the callback's head statistics read as typed records, and read back from the JSON."""
from __future__ import annotations

import json

import pytest

from helpers import clone, edit_config


@pytest.fixture(scope="module")
def swapped(trained, tmp_path_factory, one_thread):
    ckpt = clone(trained["checkpoint"], tmp_path_factory.mktemp("fix-typed") / "swapped")
    names = json.loads((ckpt / "config.json").read_text())["id2label"]
    names["0"], names["1"] = names["1"], names["0"]
    edit_config(ckpt, id2label=names, label2id={v: int(k) for k, v in names.items()})
    return ckpt


def test_fix_reads_as_attributes_and_back_from_its_json(swapped, trained, tmp_path):
    from labeldiag import Report, fix

    report = fix(swapped, trained["data"], tmp_path / "fixed", max_examples=100)
    (made,) = report.fix.fixes
    assert made.code == "label-permutation" and [c.key for c in made.changes] == ["id2label", "label2id"]
    assert made.changes[0].file == "config.json" and report.metrics["fixes"][0]["changes"][0]["file"] == "config.json"
    assert "label-permutation" in [f.code for f in report.fix.before] and not report.has("label-permutation")
    assert report.fix.accuracy_before == report.metrics["accuracy_before"] < report.logits.accuracy
    again = Report.from_dict(json.loads(report.to_json()))
    assert again.to_json() == report.to_json()
    assert again.fix.fixes[0].changes == made.changes and again.fix.before == report.fix.before


def test_callback_head_statistics_are_a_record(trained):
    import torch
    from transformers import AutoModelForSequenceClassification

    from labeldiag.callback import head_statistics, train_begin_report

    model = AutoModelForSequenceClassification.from_pretrained(trained["checkpoint"])
    head = head_statistics(model)
    assert head.found and not head.fresh and "classifier.weight" in head.parameters
    batch = {"input_ids": torch.randint(5, 50, (6, 10)), "attention_mask": torch.ones(6, 10, dtype=torch.long),
             "labels": torch.tensor([0, 1, 2, 0, 1, 2])}
    report = train_begin_report(model, torch.optim.AdamW(model.parameters(), lr=1e-4), [batch], first_step=True,
                                learning_rate=1e-4)
    assert report.metrics["head"] == head.to_metrics() and report.metrics["head"]["found"] is True
    assert report.model == {"class": model.__class__.__name__, "num_labels": 3,
                            "id2label": {str(k): v for k, v in sorted(model.config.id2label.items())},
                            "problem_type": model.config.problem_type}
