"""The self-contained HTML report: content, escaping, no external reference, and a real browser load."""
from __future__ import annotations

import html
import json
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from helpers import clone, edit_config, run_cli
from labeldiag.catalogue import CATALOGUE
from labeldiag.env import environment
from labeldiag.render.html import CURVE_ROWS, render_html

pytestmark = pytest.mark.xdist_group("test_html")  # one worker builds the module's models

ZOO = str(Path(__file__).parent / "zoo_models.py")
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
FIGURE_RGB = (0, 153, 102)  # a green the page's own style never uses


@pytest.fixture(scope="module")
def env():
    return environment()


@pytest.fixture(scope="module")
def reports(trained, tmp_path_factory):
    """Real JSON reports with findings and their --plot figures: {command: (report, png bytes, argv)}."""
    import torch
    from transformers import AutoTokenizer

    from labeldiag.synthetic import TOPICS, tiny_bert

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # far faster than two threads on a shared 2-core machine
    tmp = tmp_path_factory.mktemp("html")
    swapped = clone(trained["checkpoint"], tmp / "swapped")
    edit_config(swapped, id2label={"0": "politics", "1": "sport", "2": "tech"},
                label2id={"politics": 0, "sport": 1, "tech": 2})
    tok = AutoTokenizer.from_pretrained(trained["checkpoint"])
    random_model = tmp / "random"
    tiny_bert(len(tok), list(TOPICS), seed=3).save_pretrained(random_model)
    tok.save_pretrained(random_model)
    data = trained["data"]
    runs = {
        "check-logits": [swapped, data],
        "grad-flow": [trained["checkpoint"], data, "--model-class", f"{ZOO}:DetachedPooledBert",
                      "--max-examples", 32],
        "smoke-train": [random_model, data, "--model-class", f"{ZOO}:DetachedPooledBert", "--lr", "3e-3",
                        "--steps", 20],
    }
    out = {}
    try:
        for command, args in runs.items():
            plot = tmp / f"{command}.png"
            argv = [command, *args, "--no-progress", "--plot", plot]
            r = run_cli(*argv, tmp=tmp)
            assert r.code == 1 and r.report and r.report["findings"], (command, r.code, r.err)
            out[command] = (r.report, plot.read_bytes(), " ".join(["labeldiag", *map(str, argv)]))
    finally:
        torch.set_num_threads(before)
    return out


def page_for(reports, env, command):
    report, png, command_line = reports[command]
    return render_html(report, command_line=command_line, environment=env, figures=[(f"{command} figure", png)])


# --- what the page must not hold -------------------------------------------------------------

URL_ATTRIBUTE = re.compile(r"""\b(?:src|href|srcset|action|formaction|poster|background|data|xlink:href)\s*=\s*
                               (?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I | re.X)
FORBIDDEN = ("<script", "<link", "<iframe", "<object", "<embed", "<base", "@import", "url(", "http-equiv")


def external_references(page: str) -> list[str]:
    """Everything in the page that could make a browser fetch something outside it."""
    found = [next(g for g in m.groups() if g is not None) for m in URL_ATTRIBUTE.finditer(page)]
    found = [v for v in found if not v.startswith(("data:image/png;base64,", "#"))]
    found += [tag for tag in FORBIDDEN if tag in page.lower()]
    found += re.findall(r"[a-z][a-z0-9+.-]*://\S{0,40}", page, re.I)
    return found


def test_the_reference_check_catches_planted_references():
    planted = ('<img src="http://example.invalid/a.png"><link rel="stylesheet" href="x.css">'
               '<style>b { background: url(z.png) }</style><p>file:///etc/passwd</p>')
    found = external_references(planted)
    assert "http://example.invalid/a.png" in found and "x.css" in found and "url(" in found
    assert any(f.startswith("file:///etc") for f in found)
    assert external_references('<img src="data:image/png;base64,AAAA"><a href="#x">x</a>') == []


@pytest.mark.parametrize("command", ["check-logits", "grad-flow", "smoke-train"])
def test_real_report_is_self_contained(reports, env, command):
    page = page_for(reports, env, command)
    assert external_references(page) == []
    assert "http" not in page
    assert page.count("<img ") == 1
    assert 'src="data:image/png;base64,' in page


# --- what the page must hold -----------------------------------------------------------------

@pytest.mark.parametrize("command", ["check-logits", "grad-flow", "smoke-train"])
def test_every_finding_with_its_explanation_and_evidence(reports, env, command):
    import base64

    report, png, command_line = reports[command]
    page = page_for(reports, env, command)
    for finding in report["findings"]:
        for text in (finding["code"], finding["message"], finding["hint"], CATALOGUE[finding["code"]].what):
            assert html.escape(text) in page, (finding["code"], text)
        for key in finding["evidence"]:
            assert f"<th>{html.escape(key)}</th>" in page, key
    assert html.escape(command_line) in page
    assert html.escape(report["model"]["path"]) in page and html.escape(report["data"]["path"]) in page
    assert base64.b64encode(png).decode() in page
    for key, value in env.items():
        assert html.escape(f"- {key}: {value}") in page


def test_findings_are_ordered_by_severity(env):
    report = {"command": "check-logits", "findings": [
        {"code": "label-names-generic", "severity": "info", "message": "names are generic", "evidence": {}, "hint": ""},
        {"code": "uniform-logits", "severity": "warning", "message": "logits near uniform", "evidence": {}, "hint": ""},
        {"code": "random-predictions", "severity": "error", "message": "chance predictions", "evidence": {},
         "hint": ""},
    ]}
    page = render_html(report, command_line="labeldiag check-logits m d", environment=env)
    positions = [page.index(m) for m in ("chance predictions", "logits near uniform", "names are generic")]
    assert positions == sorted(positions)
    assert "<title>labeldiag check-logits: 1 error, 1 warning, 1 info</title>" in page


def test_user_strings_are_escaped(env):
    hostile = {
        "command": "check-logits",
        "model": {"path": "/m/<script>alert(1)</script>", "class": "X<b>", "num_labels": 2,
                  "id2label": {"0": "<b>neg</b>", "1": 'pos & "q"'}},
        "data": {"path": "/d/<svg onload=alert(2)>.jsonl", "examples": 4, "label_counts": {"<i>neg</i>": 2}},
        "device": "cpu",
        "findings": [
            {"code": "label-permutation", "severity": "error", "message": "logit <img src=x onerror=alert(3)>",
             "hint": "</p><script>alert(4)</script>", "evidence": {"<k>": "<v>", "nested": {"a": "<i>"}}},
            {"code": "my-plugin-check", "severity": "warning", "message": "a code the catalogue does not know",
             "hint": "h", "evidence": {}},
        ],
        "metrics": {"confusion_matrix": [[1, 0], [0, 1]], "confusion_labels": ["<u>a</u>", "b"],
                    "note": "<marquee>"},
        "notes": ["<blink>note</blink>"],
    }
    command_line = "labeldiag check-logits '<svg onload=alert(5)>' data.jsonl"
    page = render_html(hostile, command_line=command_line, environment={"Platform": "<x>"})
    for raw in ("<script>alert", "<svg", "<img src=x", "<b>neg", "X<b>", "<i>", "<k>", "<v>", "<u>a",
                "<marquee>", "<blink>", "<x>", "</p><script>"):
        assert raw not in page, raw
    for text in ("/m/<script>alert(1)</script>", "logit <img src=x onerror=alert(3)>", command_line,
                 "<blink>note</blink>", '{"a": "<i>"}', "- Platform: <x>", "<u>a</u>"):
        assert html.escape(text) in page, text
    assert "my-plugin-check" in page and "a code the catalogue does not know" in page
    assert "<script" not in page.lower()


class Tables(HTMLParser):
    """Every table's rows as (tr class, [cell texts])."""

    def __init__(self, page: str):
        super().__init__()
        self.tables: list[list[tuple[str, list[str]]]] = []
        self._cell: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append((dict(attrs).get("class") or "", []))
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1][1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def starting_with(self, first_cell: str) -> list[tuple[str, list[str]]]:
        return next(t for t in self.tables if t and t[0][1] and t[0][1][0] == first_cell)


def test_check_logits_confusion_matrix_table(reports, env):
    report = reports["check-logits"][0]
    table = Tables(page_for(reports, env, "check-logits")).starting_with("gold \\ logit")
    labels, matrix = report["metrics"]["confusion_labels"], report["metrics"]["confusion_matrix"]
    assert table[0][1] == ["gold \\ logit"] + [f"{i}:{name}" for i, name in enumerate(labels)]
    assert [cells for _, cells in table[1:]] == [[name] + [str(v) for v in row] for name, row in zip(labels, matrix)]


def test_grad_flow_layer_table_flags_layers_without_gradient(reports, env):
    report = reports["grad-flow"][0]
    table = Tables(page_for(reports, env, "grad-flow")).starting_with("name")
    rows = {cells[0]: css for css, cells in table[1:]}
    assert list(rows) == [layer["name"] for layer in report["metrics"]["layers"]]
    for layer in report["metrics"]["layers"]:
        assert (rows[layer["name"]] == "flag") == bool(layer["no_grad"]), layer["name"]
    assert "flag" in rows.values() and "" in rows.values()  # the detached encoder, the connected head


def test_smoke_train_curve_is_summarised(reports, env):
    report = reports["smoke-train"][0]
    curve = report["metrics"]["curve"]
    assert len(curve) > CURVE_ROWS  # or the summary has nothing to leave out
    page = page_for(reports, env, "smoke-train")
    table = Tables(page).starting_with("step")
    steps = [int(cells[0]) for _, cells in table[1:]]
    assert len(steps) <= CURVE_ROWS and steps == sorted(steps)
    assert steps[0] == curve[0]["step"] and steps[-1] == curve[-1]["step"]
    assert f"{len(curve)} step(s) recorded, showing {len(steps)}" in page


def test_doctor_diagnosis_is_shown_by_rank(env):
    report = {"command": "doctor", "findings": [], "diagnosis": [
        {"code": "uniform-logits", "rank": 2, "confidence": 0.4, "why": "explained by the missing head"},
        {"code": "head-uninitialized", "rank": 1, "confidence": 0.9, "why": "classifier.weight was missing",
         "explains": ["uniform-logits", "random-predictions"]},
    ]}
    page = render_html(report, command_line="labeldiag doctor m d", environment=env)
    assert page.index("classifier.weight was missing") < page.index("explained by the missing head")
    assert "confidence 90%" in page and "confidence 40%" in page
    assert html.escape('["uniform-logits", "random-predictions"]') in page


def test_a_clean_report_says_so(env):
    page = render_html({"command": "check-logits", "findings": [], "metrics": {"accuracy": 0.99}},
                       command_line="labeldiag check-logits m d", environment=env)
    assert "No findings" in page and "<title>labeldiag check-logits: no findings</title>" in page
    assert "0.99" in page


# --- a real browser ----------------------------------------------------------------------------

def solid_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def load_in_chromium(page_path: Path, tmp: Path, width: int = 800) -> tuple[Path, list[str]]:
    """Load the page headless; return the screenshot and every URL the page itself asked the network for."""
    shot, net_log = tmp / f"shot-{width}.png", tmp / f"net-{width}.json"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={tmp / f'profile-{width}'}",
           "--host-resolver-rules=MAP * ~NOTFOUND",  # whatever is asked for, nothing leaves the machine
           f"--log-net-log={net_log}", f"--window-size={width},2400", f"--screenshot={shot}", page_path.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    return shot, page_requests(net_log)


def page_requests(net_log: Path) -> list[str]:
    """URLs of network requests made for a page; the browser's own (updates, time) have no origin."""
    text = net_log.read_text()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # a log cut short still holds every event written before the end
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [e["params"]["url"] for e in log["events"]
            if e["type"] == start_job and "url" in e.get("params", {})
            and e["params"].get("initiator", "not an origin") != "not an origin"]


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


@needs_chromium
def test_browser_check_sees_a_planted_request(tmp_path):
    page = tmp_path / "planted.html"
    page.write_text('<!DOCTYPE html><p>hello</p><img src="http://198.51.100.7/pixel.png">')
    _, requests = load_in_chromium(page, tmp_path)
    assert requests == ["http://198.51.100.7/pixel.png"]


@needs_chromium
def test_report_loads_in_chromium_with_no_request(reports, env, tmp_path):
    import numpy as np
    from PIL import Image

    report, png, command_line = reports["check-logits"]
    page = render_html(report, command_line=command_line, environment=env,
                       figures=[("marker", solid_png(240, 120, FIGURE_RGB)), ("confusion matrix", png)])
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    shot, requests = load_in_chromium(path, tmp_path)
    assert requests == []
    # the inlined figure was decoded and drawn: its colour covers about its own area
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    marker = int((np.abs(pixels - np.array(FIGURE_RGB)).max(axis=-1) <= 8).sum())
    assert marker >= 0.9 * 240 * 120, marker
