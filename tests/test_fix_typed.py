"""The callback's head statistics read as a typed record (fix's typed outcome: test_fix_evidence.py)."""
from __future__ import annotations


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
