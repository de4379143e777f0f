"""Hostile inputs, round 2: outputs that would destroy inputs, pickles behind decoys, pipes that block,
markup and control characters, NaN weights, model code that exits, nested configs, Ctrl-C.

Every case runs under a deadline (a blocked read fails the test instead of hanging it), hashes each
input before and after, and expects exit 2 with one line, or a finding, never exit 3 or a traceback.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import clone, edit_config, edit_weights, run_cli, sigint_default, write_jsonl
from labeldiag.errors import UsageError

COMMANDS = ["check-logits", "grad-flow", "smoke-train"]
FAST = {"check-logits": ["--max-examples", "12"], "grad-flow": ["--max-examples", "8"],
        "smoke-train": ["--max-examples", "6", "--steps", "2"]}
DEADLINE_S = 90


@pytest.fixture(autouse=True)
def deadline():
    """A blocked open() or read() is interrupted by SIGALRM, so a hang fails the test instead of stalling it."""
    def expire(signum, frame):
        raise TimeoutError(f"the case did not finish within {DEADLINE_S} s (a hang)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(DEADLINE_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def digest(*roots: Path) -> dict[str, str]:
    """sha256 of every regular file under the roots (pipes are named, never opened)."""
    out = {}
    for root in roots:
        root = Path(root)
        for p in sorted([root] if not root.is_dir() else root.rglob("*")):
            if p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            elif not p.is_dir():
                out[str(p)] = "special"
    return out


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in Path(root).rglob("*")}


def run(command: str, model, data, *extra, tmp: Path):
    """The CLI in-process with the fast options; the JSON report goes to tmp/out unless extra names --json."""
    args = [command, str(model), str(data), *FAST[command], "--device", "cpu", "--no-progress", *map(str, extra)]
    report = None
    if "--json" not in args:
        out = tmp / "out"
        out.mkdir(exist_ok=True)
        report = out / f"report-{len(list(out.iterdir()))}.json"
        args += ["--json", str(report)]
    result = run_cli(*args)
    result.report = json.loads(report.read_text()) if report is not None and report.is_file() else None
    return result


def refused(result, says: str) -> None:
    err = result.err.strip()
    assert result.code == 2, f"exit {result.code}: {err[-800:]}"
    assert "Traceback" not in err and len(err.splitlines()) == 1 and err.startswith("labeldiag: error:"), err
    assert says.lower() in err.lower(), err


@pytest.fixture
def ckpt(trained, tmp_path):
    return clone(trained["checkpoint"], tmp_path / "inputs" / "ckpt")


@pytest.fixture
def data(trained, tmp_path):
    p = tmp_path / "inputs" / "data.jsonl"
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(Path(trained["data"]).read_bytes())
    return p


# --- 1. outputs never overwrite or pollute the inputs -------------------------------------------

OUTPUT_CASES = {
    "json-onto-config": (lambda c, d, t: ["--json", c / "config.json"], "inside MODEL"),
    "json-onto-weights": (lambda c, d, t: ["--json", c / "model.safetensors"], "inside MODEL"),
    "json-onto-data": (lambda c, d, t: ["--json", d], "is DATA"),
    "plot-onto-data": (lambda c, d, t: ["--plot", d], ".png"),  # refused for its suffix already
    "plot-into-checkpoint": (lambda c, d, t: ["--plot", c / "flow.png"], "inside MODEL"),
    "plot-onto-weights": (lambda c, d, t: ["--plot", c / "model.safetensors"], ".png"),
    "json-via-dotdot": (lambda c, d, t: ["--json", c / ".." / "ckpt" / "config.json"], "inside MODEL"),
    "json-via-symlink": (lambda c, d, t: ["--json", _link(t / "inputs" / "r.json", c / "config.json")], "inside MODEL"),
    "json-into-tokenizer": (lambda c, d, t: ["--tokenizer", _tokenizer_copy(c, t), "--json",
                                             t / "inputs" / "tok" / "r.json"], "inside --tokenizer"),
    "json-into-other-checkpoint": (lambda c, d, t: ["--json", clone(c, t / "inputs" / "other") / "r.json"],
                                   "checkpoint folder"),
    "json-onto-foreign-file": (lambda c, d, t: ["--json", _file(t / "inputs" / "notes.json", b'{"mine": 1}')],
                               "not written by labeldiag"),
    "plot-onto-foreign-png": (lambda c, d, t: ["--plot", _file(t / "inputs" / "photo.png",
                                                               b"\x89PNG\r\n\x1a\n" + b"\0" * 64)],
                              "not written by labeldiag"),
    "json-onto-model-class-file": (lambda c, d, t: ["--json", _file(t / "inputs" / "model.py", b"x = 1\n")],
                                   "not written by labeldiag"),
    "json-onto-device": (lambda c, d, t: ["--json", "/dev/null"], "not a regular file"),
    "json-and-plot-one-file-two-spellings": (lambda c, d, t: ["--json", t / "inputs" / "x.png", "--plot",
                                                              t / "inputs" / "." / "x.png"], "same file"),
}


def _link(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link


def _file(p: Path, content: bytes) -> Path:
    p.write_bytes(content)
    return p


def _tokenizer_copy(ckpt: Path, tmp: Path) -> Path:
    tok = tmp / "inputs" / "tok"
    tok.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tok / name).write_bytes((ckpt / name).read_bytes())
    return tok


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", list(OUTPUT_CASES))
def test_outputs_that_would_harm_an_input_are_refused_before_any_work(name, command, ckpt, data, tmp_path):
    build, says = OUTPUT_CASES[name]
    extra = build(ckpt, data, tmp_path)
    before, files = digest(tmp_path / "inputs"), listing(tmp_path / "inputs")
    t0 = time.perf_counter()
    refused(run(command, ckpt, data, *extra, tmp=tmp_path), says)
    assert time.perf_counter() - t0 < 20, "refused only after the work"
    assert digest(tmp_path / "inputs") == before and listing(tmp_path / "inputs") == files


def test_previous_reports_and_figures_are_overwritten_and_plot_goes_to_the_exact_path(trained, tmp_path):
    report, figure = tmp_path / "report.json", tmp_path / "figure"  # no suffix: written as given, no '.png' added
    before = digest(Path(trained["checkpoint"]), Path(trained["data"]))
    for _ in range(2):  # the second run overwrites the first run's outputs
        res = run("check-logits", trained["checkpoint"], trained["data"], "--json", report, "--plot", figure,
                  tmp=tmp_path)
        assert res.code == 0, res.err
        assert json.loads(report.read_text())["labeldiag_version"]
        assert figure.read_bytes().startswith(b"\x89PNG") and not (tmp_path / "figure.png").exists()
        assert f"figurewrittento{figure}" in "".join(res.out.split())
    assert digest(Path(trained["checkpoint"]), Path(trained["data"])) == before


# --- 2. pickles: decided per file actually loaded --------------------------------------------------

PAYLOAD = """
import os
class Payload:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))
"""


def _adapter(trained, tmp_path, weights: str) -> Path:
    pytest.importorskip("peft")
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "inputs" / "adapter"
    model = AutoModelForSequenceClassification.from_pretrained(trained["checkpoint"])
    get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=4, target_modules=["query", "value"])
                   ).save_pretrained(out, safe_serialization=weights == "safetensors")
    return out


def test_adapter_bin_behind_a_safetensors_decoy_is_never_unpickled(trained, tmp_path):
    adapter = _adapter(trained, tmp_path, "bin")
    marker = tmp_path / "payload-ran"
    namespace: dict = {}
    exec(PAYLOAD.format(marker=marker), namespace)
    import torch

    torch.save({"x": namespace["Payload"]()}, adapter / "adapter_model.bin")
    (adapter / "decoy.safetensors").write_bytes(b"")
    before = digest(adapter)
    refused(run("check-logits", adapter, trained["data"], "--tokenizer", trained["checkpoint"], tmp=tmp_path),
            "--allow-pickle")
    res = run("check-logits", adapter, trained["data"], "--tokenizer", trained["checkpoint"], "--allow-pickle",
              tmp=tmp_path)
    assert res.code == 2 and "weights_only" not in res.err and "Traceback" not in res.err, res.err
    assert not marker.exists()
    assert digest(adapter) == before


def test_allowed_bin_adapter_keeps_its_trained_head(trained, tmp_path):
    adapter = _adapter(trained, tmp_path, "bin")
    assert (adapter / "adapter_model.bin").exists() and not (adapter / "adapter_model.safetensors").exists()
    res = run("check-logits", adapter, trained["data"], "--tokenizer", trained["checkpoint"], "--allow-pickle",
              "--max-examples", "300", tmp=tmp_path)
    assert res.code == 0 and "head-uninitialized" not in res.codes(), res.err + res.out
    assert res.report["metrics"]["accuracy"] > 0.85


# --- 3. pipes, devices, endless files -----------------------------------------------------------

def _fifo(p: Path) -> Path:
    if p.exists():
        p.unlink()
    os.mkfifo(p)
    return p


HANG_CASES = {
    "config-json-fifo": (lambda c, d, t: (_fifo(c / "config.json") and c, d, []), "config.json"),
    "config-json-link-to-dev-zero": (lambda c, d, t: (_devzero(c / "config.json") and c, d, []), "config.json"),
    "tokenizer-json-fifo": (lambda c, d, t: (_fifo(c / "tokenizer.json") and c, d, []), "tokenizer.json"),
    "weights-fifo": (lambda c, d, t: (_fifo(c / "model.safetensors") and c, d, []), "model.safetensors"),
    "data-jsonl-fifo": (lambda c, d, t: (c, _fifo(t / "inputs" / "pipe.jsonl"), []), "not a regular file"),
    "data-safetensors-fifo": (lambda c, d, t: (c, _fifo(t / "inputs" / "pipe.safetensors"), []),
                              "not a regular file"),
    "data-pt-fifo": (lambda c, d, t: (c, _fifo(t / "inputs" / "pipe.pt"), ["--allow-pickle"]), "not a regular file"),
    "data-dataset-folder-with-fifo": (lambda c, d, t: (c, _dataset_with_fifo(t), []), "not a regular file"),
    "model-class-fifo": (lambda c, d, t: (c, d, ["--model-class", f"{_fifo(t / 'inputs' / 'm.py')}:M"]),
                         "not a regular"),
    "tokenizer-folder-with-fifo": (lambda c, d, t: (c, d, ["--tokenizer", _fifo_in(_tokenizer_copy(c, t))]),
                                   "not a regular file"),
}


def _devzero(p: Path) -> Path:
    p.unlink()
    p.symlink_to("/dev/zero")
    return p


def _dataset_with_fifo(tmp: Path) -> Path:
    folder = tmp / "inputs" / "ds"
    folder.mkdir()
    (folder / "dataset_info.json").write_text("{}")
    _fifo(folder / "data-00000-of-00001.arrow")
    return folder


def _fifo_in(folder: Path) -> Path:
    _fifo(folder / "tokenizer.json")
    return folder


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", list(HANG_CASES))
def test_pipes_and_devices_are_refused_without_blocking(name, command, ckpt, data, tmp_path):
    build, says = HANG_CASES[name]
    model, d, extra = build(ckpt, data, tmp_path)
    before = digest(tmp_path / "inputs")
    refused(run(command, model, d, *extra, tmp=tmp_path), says)
    assert digest(tmp_path / "inputs") == before


# --- 5. exit 3 on user input: each is exit 2 with one line, or a finding -----------------------------

def _rename_labels(ckpt: Path, data: Path, names: list[str]) -> None:
    """The same classes under hostile names, in config.json and in the data alike."""
    old = [json.loads((ckpt / "config.json").read_text())["id2label"][str(i)] for i in range(len(names))]
    edit_config(ckpt, id2label={str(i): n for i, n in enumerate(names)}, label2id={n: i for i, n in enumerate(names)})
    rows = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    write_jsonl([{**r, "label": names[old.index(r["label"])]} for r in rows], data)


MARKUP_NAMES = ["[/]", "[/b]", "[bold red]x"]
CONTROL_NAMES = ["\x1b[2J\x1b[Hclear", "\x1b]0;owned\x07title", "tab\there"]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("names", [MARKUP_NAMES, CONTROL_NAMES], ids=["markup", "control-characters"])
def test_label_names_with_markup_or_control_characters_are_shown_inert(names, command, ckpt, data, tmp_path):
    _rename_labels(ckpt, data, names)
    res = run(command, ckpt, data, tmp=tmp_path)
    assert res.code in (0, 1), res.err
    assert "\x1b" not in res.out + res.err and "\x07" not in res.out + res.err
    if command == "check-logits" and names is MARKUP_NAMES:
        assert "[/b]" in res.out  # shown literally, not interpreted


@pytest.mark.parametrize("command", COMMANDS)
def test_paths_and_columns_with_markup_are_shown_literally(command, trained, tmp_path):
    folder = clone(trained["checkpoint"], tmp_path / "inputs" / "run[" / "[/b]ckpt")
    rows = [json.loads(line) for line in Path(trained["data"]).read_text().splitlines() if line.strip()]
    data = write_jsonl([{"[/]": r["text"], "label": r["label"]} for r in rows], tmp_path / "inputs" / "[b]d.jsonl")
    res = run(command, folder, data, "--text-field", "[/]", tmp=tmp_path)
    assert res.code in (0, 1), res.err
    assert "run[/[/b]ckpt" in "".join(res.out.split())


NAN = float("nan")


@pytest.mark.parametrize("command", COMMANDS)
def test_all_nan_weights_are_a_finding_not_a_crash(command, ckpt, data, tmp_path):
    edit_weights(ckpt, lambda t: {k: v.clone().fill_(NAN) if v.is_floating_point() else v for k, v in t.items()})
    res = run(command, ckpt, data, tmp=tmp_path)
    assert res.code == 1 and "Traceback" not in res.err, res.err
    if command == "check-logits":
        assert "nonfinite-logits" in res.codes(), res.codes()
        assert not {"nondeterministic-eval", "input-independent-logits"} & set(res.codes()), res.codes()


EXIT_AT_IMPORT = "import sys\nsys.exit(0)\n"
EXIT_IN_FORWARD = """
import sys
from transformers import BertForSequenceClassification

class Custom(BertForSequenceClassification):
    def forward(self, *args, **kwargs):
        sys.exit(0)
"""
EXIT_IN_FROM_PRETRAINED = """
import sys
import torch

class Custom(torch.nn.Module):
    @classmethod
    def from_pretrained(cls, path, **kwargs):
        sys.exit(0)
"""
EDITS_SYS_PATH = """
import sys
sys.path.clear()
sys.path.append("/nonexistent-labeldiag-test")
from transformers import BertForSequenceClassification as Custom
"""


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("body,says", [(EXIT_AT_IMPORT, "SystemExit"), (EXIT_IN_FORWARD, "sys.exit"),
                                       (EXIT_IN_FROM_PRETRAINED, "SystemExit")],
                         ids=["at-import", "in-forward", "in-from-pretrained"])
def test_model_code_calling_sys_exit_is_an_error_not_a_pass(body, says, command, ckpt, data, tmp_path):
    file = tmp_path / "inputs" / "exiting_model.py"
    file.write_text(body)
    refused(run(command, ckpt, data, "--model-class", f"{file}:Custom", tmp=tmp_path), says)


@pytest.mark.parametrize("command", COMMANDS)
def test_model_code_that_edits_sys_path_leaves_it_as_it_was(command, ckpt, data, tmp_path):
    file = tmp_path / "inputs" / "path_model.py"
    file.write_text(EDITS_SYS_PATH)
    saved = list(sys.path)
    res = run(command, ckpt, data, "--model-class", f"{file}:Custom", tmp=tmp_path)
    assert sys.path == saved
    assert res.code in (0, 1), res.err


def test_model_code_inside_the_checkpoint_writes_no_bytecode_there(ckpt, data, tmp_path, monkeypatch):
    (ckpt / "my_model.py").write_text("from transformers import BertForSequenceClassification as Custom\n")
    (ckpt / "my_helpers.py").write_text("VALUE = 1\n")
    (ckpt / "my_model.py").write_text("import my_helpers\nfrom transformers import BertForSequenceClassification "
                                      "as Custom\n")
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as for a user without PYTHONDONTWRITEBYTECODE
    files = listing(ckpt)
    res = run("check-logits", ckpt, data, "--model-class", f"{ckpt / 'my_model.py'}:Custom", tmp=tmp_path)
    assert res.code in (0, 1), res.err
    assert listing(ckpt) == files and sys.dont_write_bytecode is False


def _deep(n: int) -> str:
    return "[" * n + "]" * n


CONFIG_CASES = {
    "config-json-is-a-folder": (lambda c: (c / "config.json").unlink() or (c / "config.json").mkdir(), "config.json"),
    "config-json-nested-100k": (lambda c: (c / "config.json").write_text('{"a": ' + _deep(100_000) + "}"),
                                "nested too deeply"),
    "config-json-5000-digit-int": (lambda c: (c / "config.json").write_text(
        '{"model_type": "bert", "num_labels": ' + "9" * 5000 + "}"), "too many digits"),
    "config-json-oversized": (lambda c: _sparse(c / "config.json", 80 << 20), "larger than"),
    "adapter-config-is-a-list": (lambda c: _adapter_only(c, "[1, 2]"), "JSON object"),
    "adapter-config-points-at-itself": (lambda c: _adapter_only(c, json.dumps({"base_model_name_or_path": str(c)})),
                                        "adapter folder"),
    "adapter-config-base-is-a-number": (lambda c: _adapter_only(c, '{"base_model_name_or_path": 42}'), "int"),
    "adapter-config-nested": (lambda c: _adapter_only(c, '{"x": ' + _deep(100_000) + "}"), "nested too deeply"),
}


def _sparse(p: Path, size: int) -> None:
    with open(p, "r+b") as fh:
        fh.truncate(size)  # a config padded with NUL bytes up to `size`: never read whole


def _adapter_only(ckpt: Path, text: str) -> None:
    (ckpt / "config.json").unlink()
    (ckpt / "model.safetensors").rename(ckpt / "adapter_model.safetensors")
    (ckpt / "adapter_config.json").write_text(text)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", list(CONFIG_CASES))
def test_hostile_configs_are_one_line_errors(name, command, ckpt, data, tmp_path, capfd):
    """Through the API for every command (a UsageError, nothing printed); through the CLI once (exit 2)."""
    from labeldiag.api import run as run_api

    build, says = CONFIG_CASES[name]
    build(ckpt)
    before = digest(tmp_path / "inputs")
    options = {"device": "cpu", "max_examples": 6, **({"steps": 2} if command == "smoke-train" else {})}
    with pytest.raises(UsageError) as caught:
        run_api(command, str(ckpt), str(data), **options)
    assert says.lower() in str(caught.value).lower() and "\n" not in str(caught.value).strip()
    assert capfd.readouterr().out == ""
    if command == "check-logits":
        refused(run(command, ckpt, data, tmp=tmp_path), says)
    assert digest(tmp_path / "inputs") == before


def _tensors(tmp: Path, **arrays) -> Path:
    """A labelled batch of six examples with the given tensors replaced."""
    import torch
    from safetensors.torch import save_file

    batch = {"input_ids": _ids(), "labels": torch.tensor([0, 1, 2, 0, 1, 2]), **arrays}
    p = tmp / "inputs" / "batch.safetensors"
    save_file({k: v.contiguous() for k, v in batch.items()}, str(p))
    return p


def _ids():
    import torch

    return torch.randint(5, 50, (6, 8))


TENSOR_CASES = {
    "attention-mask-all-zeros": (lambda t: _tensors(t, attention_mask=_ids() * 0), "all zeros"),
    "one-example-mask-all-zeros": (lambda t: _tensors(t, attention_mask=_mask_one_empty()), "example 2"),
    "token-type-ids-beyond-model": (lambda t: _tensors(t, token_type_ids=_ids() * 0 + 7), "token_type_ids"),
    "token-type-ids-negative": (lambda t: _tensors(t, token_type_ids=_ids() * 0 - 1), "token_type_ids"),
}


def _mask_one_empty():
    import torch

    mask = torch.ones(6, 8, dtype=torch.long)
    mask[2] = 0
    return mask


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", list(TENSOR_CASES))
def test_hostile_tensor_batches_are_the_datas_fault(name, command, trained, tmp_path):
    (tmp_path / "inputs").mkdir()
    build, says = TENSOR_CASES[name]
    data = build(tmp_path)
    res = run(command, trained["checkpoint"], data, tmp=tmp_path)
    refused(res, says)
    assert "tokenizer" not in res.err.lower()


@pytest.mark.parametrize("command", COMMANDS)
def test_pickled_object_in_data_gets_no_advice_to_disable_weights_only(command, trained, tmp_path):
    import torch

    marker = tmp_path / "payload-ran"
    namespace: dict = {}
    exec(PAYLOAD.format(marker=marker), namespace)
    data = tmp_path / "batch.pt"
    torch.save({"input_ids": namespace["Payload"]()}, data)
    res = run(command, trained["checkpoint"], data, "--allow-pickle", tmp=tmp_path)
    refused(res, "pickled objects")
    assert "weights_only" not in res.err and "False" not in res.err and "safe_globals" not in res.err
    assert not marker.exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_csv_with_a_repeated_column_is_refused(command, trained, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("text,label,label\nthe match,sport,politics\nthe vote,politics,sport\n")
    refused(run(command, trained["checkpoint"], data, tmp=tmp_path), "'label' more than once")


# --- 4. Ctrl-C stops every phase with exit 130 --------------------------------------------------------

@pytest.mark.slow  # a whole process or a 10 MB input: the full suite runs it, the fast tier does not
def test_ctrl_c_during_tokenization_stops_with_exit_130(trained, tmp_path):
    rows = [json.loads(line) for line in Path(trained["data"]).read_text().splitlines() if line.strip()]
    data = tmp_path / "big.jsonl"
    with open(data, "w", encoding="utf-8") as fh:
        for i in range(200_000):
            fh.write(json.dumps(rows[i % len(rows)]) + "\n")
    started = tmp_path / "tokenizing"
    # the child marks the moment tokenization starts, so the signal lands there and not during imports
    child = (f"import sys, labeldiag.measure.encode as E\norig = E._tokenize\n"
             f"def marked(*a, **k):\n    open({str(started)!r}, 'w').close()\n    return orig(*a, **k)\n"
             f"E._tokenize = marked\nsys.argv = ['labeldiag'] + sys.argv[1:]\nfrom labeldiag.cli import main\nmain()\n")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", child, "check-logits", trained["checkpoint"], str(data),
                             "--max-examples", "200000", "--device", "cpu", "--no-progress",
                             "--json", str(tmp_path / "r.json")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=tmp_path, preexec_fn=sigint_default)
    try:
        t0 = time.perf_counter()
        while not started.exists() and proc.poll() is None and time.perf_counter() - t0 < 60:
            time.sleep(0.05)
        assert started.exists(), proc.stderr.read() if proc.poll() is not None else "tokenization never started"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-1000:]
    assert err.strip().splitlines()[-1] == "labeldiag: interrupted", err[-1000:]
    assert "Traceback" not in err and "Exception ignored" not in err
    assert not (tmp_path / "r.json").exists()


# --- the same hostile inputs through the Python API: a UsageError, nothing printed, the process intact --

API_CASES = {f"hang:{k}": v for k, v in HANG_CASES.items() if not k.startswith("tokenizer-folder")}


@pytest.mark.parametrize("name", list(API_CASES))
def test_python_api_raises_usage_error_on_hostile_inputs(name, ckpt, data, tmp_path, capfd):
    import labeldiag

    build, says = API_CASES[name]
    if name.startswith("hang:"):
        model, d, extra = build(ckpt, data, tmp_path)
    else:
        build(ckpt)
        model, d, extra = ckpt, data, []
    options = {"allow_pickle": "--allow-pickle" in extra}
    if "--model-class" in extra:
        options["model_class"] = extra[extra.index("--model-class") + 1]
    before, saved_path = digest(tmp_path / "inputs"), list(sys.path)
    with pytest.raises(labeldiag.UsageError) as caught:
        labeldiag.check_logits(str(model), str(d), device="cpu", max_examples=12, **options)
    assert says.lower() in str(caught.value).lower() and "\n" not in str(caught.value)
    assert capfd.readouterr() == ("", "")
    assert digest(tmp_path / "inputs") == before and sys.path == saved_path
