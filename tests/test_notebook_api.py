"""The API meets notebook users (#23 item 10): tokenized datasets.Dataset objects are read like tokenized
tensor files, report.plot() / report.to_html() hand back the figure and the page, and the notebook view
is HTML that wraps to the cell's width with styles that touch nothing else in the notebook."""
from __future__ import annotations

import re

import pytest

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def parts():
    from labeldiag.synthetic import TOPICS, build_tokenizer, make_examples, tiny_bert

    rows = make_examples(48, seed=5)
    tokenizer = build_tokenizer([r["text"] for r in rows])
    return tokenizer, rows, tiny_bert(len(tokenizer), list(TOPICS), seed=1)


@pytest.fixture(scope="module")
def report(parts):
    from labeldiag import check_logits

    tokenizer, rows, model = parts
    return check_logits(model, rows, tokenizer=tokenizer)


def tokenized_dataset(tokenizer, rows, label_column="labels"):
    datasets = pytest.importorskip("datasets")
    from labeldiag.synthetic import TOPICS

    enc = tokenizer([r["text"] for r in rows], truncation=True, max_length=64)  # ragged: no padding
    names = list(TOPICS)
    features = datasets.Features({"input_ids": datasets.Sequence(datasets.Value("int32")),
                                  "token_type_ids": datasets.Sequence(datasets.Value("int8")),
                                  "attention_mask": datasets.Sequence(datasets.Value("int8")),
                                  label_column: datasets.ClassLabel(names=names)})
    return datasets.Dataset.from_dict({"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
                                       "attention_mask": enc["attention_mask"],
                                       label_column: [names.index(r["label"]) for r in rows]}, features=features)


@pytest.mark.parametrize("label_column", ["labels", "label"])
def test_tokenized_dataset_is_read_like_tokenized_tensors(parts, report, label_column):
    from labeldiag import check_logits

    tokenizer, rows, model = parts
    from_dataset = check_logits(model, tokenized_dataset(tokenizer, rows, label_column), tokenizer=tokenizer)
    assert from_dataset.data["examples"] == len(rows) and from_dataset.data["label_field"] == label_column
    assert from_dataset.metrics["accuracy"] == pytest.approx(report.metrics["accuracy"])
    assert [f.code for f in from_dataset.findings] == [f.code for f in report.findings]
    # without a tokenizer too, as a tokenized tensor file is read; and in the torch format a Trainer is given
    assert check_logits(model, tokenized_dataset(tokenizer, rows, label_column)).data["examples"] == len(rows)
    as_torch = tokenized_dataset(tokenizer, rows, label_column).with_format("torch")
    assert check_logits(model, as_torch, tokenizer=tokenizer).metrics["accuracy"] == \
        pytest.approx(report.metrics["accuracy"])


def test_tokenized_dataset_with_mismatched_columns_is_refused(parts):
    from labeldiag import UsageError, check_logits

    tokenizer, rows, model = parts
    ds = tokenized_dataset(tokenizer, rows).map(lambda r: {"attention_mask": r["attention_mask"][:-1]})
    with pytest.raises(UsageError, match="attention_mask and input_ids differ in length"):
        check_logits(model, ds, tokenizer=tokenizer)


def test_plot_returns_the_figure_and_writes_it_when_asked(report, tmp_path):
    from matplotlib.figure import Figure

    from labeldiag import UsageError

    fig = report.plot()
    assert isinstance(fig, Figure) and fig.axes and "confusion matrix" in fig.axes[0].get_title()
    path = tmp_path / "confusion.png"
    assert isinstance(report.plot(path), Figure)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(UsageError, match="PNG"):
        report.plot(tmp_path / "confusion.pdf")


def test_to_html_is_the_self_contained_page(report):
    page = report.to_html()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page
    assert "<script" not in page and "http" not in page.split("<body>")[1].split("Environment")[0]


def test_notebook_view_is_scoped_html_that_wraps(report):
    view = report._repr_html_()
    assert view.startswith('<div class="labeldiag-report">') and view.endswith("</div>")
    assert "<html" not in view and "<body" not in view and "Environment" not in view
    style = view[view.index("<style>") + 7:view.index("</style>")]
    selectors = [s.strip() for block in re.findall(r"([^{}]+)\{", style) for s in block.split(",")]
    assert selectors and all(s.startswith(".labeldiag-report") for s in selectors)
    assert "max-width: 100%" in style and "overflow-wrap: anywhere" in style
    # the findings are HTML, not a fixed-width console dump
    assert "<pre" not in view.split('id="metrics"')[0] and 'class="finding' in view
    for f in report.findings:
        assert f.code in view


def test_every_command_hands_back_its_figure(parts):
    from matplotlib.figure import Figure

    from labeldiag import grad_flow, smoke_train

    tokenizer, rows, model = parts
    flow = grad_flow(model, rows[:16], tokenizer=tokenizer)
    assert isinstance(flow.plot(), Figure)
    trained = smoke_train(model, rows[:8], tokenizer=tokenizer, steps=3)
    fig = trained.plot()
    assert isinstance(fig, Figure) and fig.axes
