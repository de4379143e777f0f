"""The Python API: same verdicts as the CLI, every kind of input, no trace left in the caller's process."""
from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from helpers import clone, edit_config, run_cli

pytestmark = pytest.mark.xdist_group("test_api")  # one worker builds the module's models

ZOO = Path(__file__).parent / "zoo_models.py"


@pytest.fixture(scope="module")
def rows(trained):
    return [json.loads(line) for line in Path(trained["data"]).read_text().splitlines()]


@pytest.fixture
def loaded(trained):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    return (AutoModelForSequenceClassification.from_pretrained(trained["checkpoint"]),
            AutoTokenizer.from_pretrained(trained["checkpoint"]))


def test_public_names():
    import labeldiag

    for name in ("check_logits", "grad_flow", "smoke_train", "check_predictions", "Report", "LabelDiagCallback"):
        assert name in dir(labeldiag)
    from labeldiag import Report, check_logits  # noqa: F401
    code = "import sys, labeldiag; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", "import labeldiag must stay free of torch"


# --- parity with the CLI ----------------------------------------------------------------------------

def _swapped(trained, tmp_path):
    ckpt = clone(trained["checkpoint"], tmp_path / "swapped")
    cfg = json.loads((ckpt / "config.json").read_text())
    names = cfg["id2label"]
    names["0"], names["1"] = names["1"], names["0"]
    edit_config(ckpt, id2label=names, label2id={v: int(k) for k, v in names.items()})
    return ckpt


@pytest.mark.parametrize("variant", ["healthy", "swapped-id2label", "detached-pooler", "unscaled-logits"])
def test_api_on_the_model_object_gives_the_clis_codes(trained, rows, tmp_path, variant):
    from transformers import AutoTokenizer

    from labeldiag import check_logits, grad_flow

    extra, cls = [], None
    ckpt = Path(trained["checkpoint"])
    if variant == "swapped-id2label":
        ckpt = _swapped(trained, tmp_path)
    elif variant == "detached-pooler":
        cls = "DetachedPooledBert"
    elif variant == "unscaled-logits":
        cls = "UnscaledLogitsBert"
    if cls:
        extra = ["--model-class", f"{ZOO}:{cls}"]
    cli_logits = run_cli("check-logits", ckpt, trained["data"], *extra, "--max-examples", "200", tmp=tmp_path)
    cli_flow = run_cli("grad-flow", ckpt, trained["data"], *extra, "--max-examples", "16", tmp=tmp_path)
    if cls:
        import importlib.util

        spec = importlib.util.spec_from_file_location("zoo_models_api", ZOO)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = getattr(module, cls).from_pretrained(str(ckpt))
    else:
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(str(ckpt))
    tok = AutoTokenizer.from_pretrained(str(ckpt))
    api_logits = check_logits(model, rows, tokenizer=tok, max_examples=200)
    api_flow = grad_flow(model, rows, tokenizer=tok, max_examples=16)
    assert sorted(f.code for f in api_logits.findings) == sorted(cli_logits.codes()), cli_logits.err
    assert sorted(f.code for f in api_flow.findings) == sorted(cli_flow.codes()), cli_flow.err
    assert api_logits.metrics["accuracy"] == pytest.approx(cli_logits.report["metrics"]["accuracy"])
    assert api_logits.exit_code() == cli_logits.code
    if variant == "swapped-id2label":
        assert api_logits.has("label-permutation")


# --- data kinds -------------------------------------------------------------------------------------

def test_every_kind_of_data_gives_the_same_verdicts(trained, rows, loaded):
    import pandas as pd
    import torch

    from labeldiag import check_logits

    model, tok = loaded
    rows = rows[:120]
    reference = check_logits(trained["checkpoint"], trained["data"], max_examples=120)
    label2id = model.config.label2id
    enc = tok([r["text"] for r in rows], padding=True, return_tensors="pt")
    enc["labels"] = torch.tensor([label2id[r["label"]] for r in rows])
    kinds = {"path": Path(trained["data"]), "list": rows, "dataframe": pd.DataFrame(rows),
             "tensors": {k: v for k, v in enc.items()}, "batch-encoding": enc}
    try:
        import datasets

        kinds["dataset"] = datasets.Dataset.from_list(rows)
    except ImportError:
        pass
    for kind, data in kinds.items():
        report = check_logits(model, data, tokenizer=tok, max_examples=120)
        assert report.metrics["accuracy"] == pytest.approx(reference.metrics["accuracy"], abs=1e-6), kind
        assert report.data["examples"] == 120, kind
        assert [f.code for f in report.findings] == [f.code for f in reference.findings], kind


# --- options ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("options,message", [
    ({"max_examples": 0}, "--max-examples must be a positive number, got 0"),
    ({"max_examples": 1e20}, "--max-examples must be a whole number"),
    ({"batch_size": -3}, "--batch-size must be a positive number, got -3"),
    ({"seed": 2**70}, "--seed must be between 0 and"),
    ({"precision": "fp8"}, "--precision 'fp8' is not one of"),
    ({"label_tokens": "a,b,c", "label_token_positions": [1, 2, 3]}, "not both"),
    ({"max_exampels": 10}, "did you mean 'max_examples'"),
    ({"lr": 0.1}, "check-logits has no option 'lr'"),
], ids=["zero", "huge", "negative-batch", "huge-seed", "precision", "both-label-options", "typo", "wrong-command"])
def test_bad_options_raise_the_clis_message(trained, options, message):
    from labeldiag import UsageError, check_logits

    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("'", "'")):
        check_logits(trained["checkpoint"], trained["data"], **options)


def test_cli_prints_the_same_line_for_a_bad_option(trained, tmp_path):
    res = run_cli("check-logits", trained["checkpoint"], trained["data"], "--batch-size", "-3", tmp=tmp_path)
    assert res.code == 2 and res.err.strip() == "labeldiag: error: --batch-size must be a positive number, got -3"


def test_bad_inputs_raise_usage_errors(trained, loaded):
    from labeldiag import UsageError, check_logits, smoke_train

    model, tok = loaded
    with pytest.raises(UsageError, match="torch.nn.Module"):
        check_logits(object(), [{"text": "a", "label": "sport"}], tokenizer=tok)
    check_logits(model, [{"text": "a", "label": "sport"}])  # the tokenizer is found in the model's folder
    from labeldiag.synthetic import tiny_bert

    with pytest.raises(UsageError, match="needs a tokenizer"):
        check_logits(tiny_bert(len(tok), ["sport", "politics", "tech"]), [{"text": "a", "label": "sport"}])
    with pytest.raises(UsageError, match="must hold dicts"):
        check_logits(model, ["just text"], tokenizer=tok)
    with pytest.raises(UsageError, match="steps"):
        smoke_train(model, [{"text": "a", "label": "sport"}], tokenizer=tok, steps=0)


# --- the caller's model and process -------------------------------------------------------------------

def _model_state(model):
    import torch

    return {
        "modes": {n: m.training for n, m in model.named_modules()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "grads": {n: (None if p.grad is None else p.grad.clone()) for n, p in model.named_parameters()},
        "grad_ids": {n: id(p.grad) for n, p in model.named_parameters()},
        "devices": {n: (p.device, p.dtype) for n, p in model.named_parameters()},
        "dropout": {n: m.p for n, m in model.named_modules() if isinstance(m, torch.nn.Dropout)},
        "weights": {n: p.detach().clone() for n, p in model.state_dict().items()},
    }


def _same(a, b):
    import torch

    assert a["modes"] == b["modes"] and a["requires_grad"] == b["requires_grad"]
    assert a["devices"] == b["devices"] and a["dropout"] == b["dropout"] and a["grad_ids"] == b["grad_ids"]
    for n in a["weights"]:
        assert torch.equal(a["weights"][n], b["weights"][n]), n
    for n in a["grads"]:
        assert (a["grads"][n] is None) == (b["grads"][n] is None), n
        if a["grads"][n] is not None:
            assert torch.equal(a["grads"][n], b["grads"][n]), n


def _process_state():
    import torch

    return {"random": random.getstate(), "numpy": np.random.get_state()[1].copy(), "torch": torch.get_rng_state(),
            "env": dict(os.environ), "filters": list(warnings.filters), "grad": torch.is_grad_enabled(),
            "levels": {n: logging.getLogger(n).level for n in ("transformers", "torch")},
            "tf32": (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32),
            "threads": torch.get_num_threads()}


@pytest.mark.parametrize("command", ["check_logits", "grad_flow", "smoke_train"])
def test_the_callers_model_and_process_are_left_as_they_were(rows, loaded, command, capsys):
    import torch

    import labeldiag

    model, tok = loaded
    model.train()  # an unusual but legal state: train mode, frozen embeddings, a leftover gradient, dropout 0.3
    for p in model.bert.embeddings.parameters():
        p.requires_grad_(False)
    model.classifier.weight.grad = torch.ones_like(model.classifier.weight)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.3
    model.bert.encoder.layer[0].eval()
    before, process = _model_state(model), _process_state()
    options = {"max_examples": 16, "steps": 3} if command == "smoke_train" else {"max_examples": 16}
    report = getattr(labeldiag, command)(model, rows, tokenizer=tok, **options)
    assert isinstance(report, labeldiag.Report) and report.command == command.replace("_", "-")
    _same(before, _model_state(model))
    after = _process_state()
    for key in process:
        if key == "numpy":
            assert np.array_equal(process[key], after[key])
        elif key == "torch":
            assert torch.equal(process[key], after[key])
        else:
            assert process[key] == after[key], key
    out = capsys.readouterr()
    assert out.out == "" and out.err == "", "the library prints nothing"


# --- check_predictions and Report ---------------------------------------------------------------------

def test_check_predictions_on_torch_and_numpy_arrays():
    import torch

    from labeldiag import check_predictions

    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 300)
    good = np.eye(3)[gold] * 4 + rng.normal(0, 1, (300, 3))
    swapped = good[:, [1, 0, 2]]
    assert check_predictions(good, gold, ["a", "b", "c"]).findings == []
    report = check_predictions(torch.tensor(swapped, dtype=torch.bfloat16), torch.tensor(gold), {0: "a", 1: "b", 2: "c"})
    f = report.get("label-permutation")
    assert f is not None and f.evidence["mapping"] == {"0": 1, "1": 0, "2": 2}
    constant = np.tile([5.0, 0.0, 0.0], (300, 1))
    assert check_predictions(constant, gold).has("constant-predictions")
    with_ignored = np.concatenate([gold[:-10], np.full(10, -100)])
    assert check_predictions(good, with_ignored).metrics["labelled_examples"] == 290


@pytest.mark.parametrize("logits,labels,message", [
    (np.zeros((5,)), None, "must be a \\[N, C\\] array"),
    (np.zeros((5, 3)), np.zeros(4, int), "one class index per row"),
    (np.zeros((5, 3)), np.full(5, 3), "only 3 columns"),
    (np.full((5, 3), np.nan), None, "NaN/inf"),
    (np.zeros((5, 3)), np.full(5, 0.5), "integer class indices"),
])
def test_check_predictions_refuses_bad_arrays(logits, labels, message):
    from labeldiag import UsageError, check_predictions

    with pytest.raises(UsageError, match=message):
        check_predictions(logits, labels)


def test_report_api_and_notebook_display():
    from labeldiag import UsageError, check_predictions

    gold = np.arange(300) % 3
    report = check_predictions(np.tile([5.0, 0.0, 0.0], (300, 1)), gold, ["x[/b]", "y", "z"])
    data = report.to_dict()
    assert set(data) >= {"labeldiag_version", "command", "model", "data", "findings", "metrics", "elapsed_s"}
    assert json.loads(report.to_json()) == data
    assert report.exit_code() == 1 and report.exit_code("never") == 0
    with pytest.raises(UsageError):
        report.exit_code("info")
    finding = report.findings[0]
    assert finding.code and finding.severity and finding.message and finding.hint and isinstance(finding.evidence, dict)
    html = report._repr_html_()
    assert "constant-predictions" in html and 'class="finding' in html  # HTML, not a console dump
    from rich.console import Console

    console = Console(record=True, width=80)
    console.print(report)
    assert "constant-predictions" in console.export_text()


def test_a_temporary_pad_is_not_left_on_the_callers_decoder(tokenizer_and_rows):
    from zoo_architectures import tiny_classifier

    from labeldiag import check_logits

    tokenizer, rows = tokenizer_and_rows
    model = tiny_classifier("llama", len(tokenizer), ["politics", "sport", "tech"], pad=None)
    assert model.config.pad_token_id is None
    report = check_logits(model, rows[:24], tokenizer=tokenizer)
    assert report.has("pad-token-missing")
    assert model.config.pad_token_id is None  # the run padded with a temporary id, in memory only
