"""`labeldiag demo`: train a small classifier, break a copy, and show what check-logits says about each."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.text import Text

from labeldiag.findings import Report
from labeldiag.progress import Progress
from labeldiag.catalogue import LABEL_PERMUTATION

MARKER = "demo-ready.json"


def default_cache() -> Path:
    base = os.environ.get("LABELDIAG_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                            os.path.expanduser("~/.cache"), "labeldiag")
    return Path(base) / "demo"


def build(cache: Path, console: Console, rebuild: bool = False) -> dict:
    """Healthy and broken (swapped id2label) checkpoints plus held-out data, cached."""
    marker = cache / MARKER
    if marker.exists() and not rebuild:
        try:
            info = json.loads(marker.read_text())
            if all(Path(info[k]).exists() for k in ("healthy", "broken", "data")):
                console.print(Text(f"using the demo models cached in {cache} (--rebuild to train again)",
                                   style="dim"))
                return info
        except (json.JSONDecodeError, KeyError):
            pass
    import torch

    from labeldiag.synthetic import build_trained

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    if cache.exists():
        shutil.rmtree(cache)
    cache.mkdir(parents=True)
    console.print("training a small BERT (2 layers, hidden 32) on a synthetic 3-topic task "
                  "(sport / politics / tech) ...")
    start = time.perf_counter()
    out = build_trained(cache / "work", seed=0, steps=200)
    healthy = Path(out["checkpoint"]).rename(cache / "healthy")
    broken = cache / "broken"
    shutil.copytree(healthy, broken)
    # the classic bug: names attached to the wrong logits (e.g. a sorted label list at training time)
    cfg_path = broken / "config.json"
    cfg = json.loads(cfg_path.read_text())
    names = [cfg["id2label"][str(i)] for i in range(len(cfg["id2label"]))]
    swapped = [names[1], names[0]] + names[2:]
    cfg["id2label"] = {str(i): n for i, n in enumerate(swapped)}
    cfg["label2id"] = {n: i for i, n in enumerate(swapped)}
    cfg_path.write_text(json.dumps(cfg, indent=2))
    data = Path(out["data"]).rename(cache / "test.jsonl")
    shutil.rmtree(cache / "work", ignore_errors=True)
    console.print(f"trained in {time.perf_counter() - start:.0f} s, held-out accuracy {out['accuracy']:.1%}; "
                  f"broken copy: id2label of logits 0 and 1 swapped")
    info = {"healthy": str(healthy), "broken": str(broken), "data": str(data), "accuracy": out["accuracy"]}
    (cache / MARKER).write_text(json.dumps(info))
    return info


def run_demo(show: Callable[[Report], None], progress: Progress, cache: str | None = None,
             rebuild: bool = False) -> int:
    """`show` renders each report as the CLI does; `progress` is the CLI's display."""
    from labeldiag.api import check_logits

    console = Console(highlight=False, soft_wrap=True)  # a command stays one line, so it pastes whole
    root = Path(cache).expanduser() if cache else default_cache()
    console.rule("[bold]labeldiag demo")
    info = build(root, console, rebuild)
    codes = {}
    for name in ("healthy", "broken"):
        console.print()
        console.rule(f"[bold]{name} model")
        report = check_logits(info[name], info["data"], device="cpu", progress=progress)
        show(report)
        codes[name] = report.exit_code("error")
    console.print()
    console.rule("[bold]what happened")
    console.print(f"healthy model: exit code {codes['healthy']} (no findings expected)")
    console.print(f"broken model:  exit code {codes['broken']} (label-permutation: the model is right, its "
                  "label names are not)")
    console.print("\nrun them yourself:")
    commands = [["check-logits", info[name], info["data"], "--plot", f"{name}.png"] for name in ("healthy", "broken")]
    commands += [["fix", info["broken"], info["data"], "--out", f"{info['broken']}-fixed"],
                 ["explain", LABEL_PERMUTATION]]
    for words in commands:
        console.print(Text("  " + shlex.join(["labeldiag", *words])))
    ok = codes["healthy"] == 0 and codes["broken"] == 1
    return 0 if ok else 1
