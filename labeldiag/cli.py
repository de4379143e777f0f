"""The Typer app: one function per command, shared options as Annotated aliases.

Heavy imports (torch, transformers) happen inside command bodies so `labeldiag --help` stays fast.
"""
from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from labeldiag import __version__
from labeldiag.errors import EXIT_USAGE, guarded

app = typer.Typer(
    name="labeldiag",
    help="Diagnose degenerate text classifiers: swapped labels, constant or random predictions, broken "
         "gradient flow, models that cannot overfit. Exit codes: 0 ok, 1 findings at --fail-on, 2 bad "
         "input, 3 internal error.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

Model = Annotated[str, typer.Argument(help="checkpoint folder (save_pretrained or Trainer checkpoint-N) or a cached hub id", show_default=False)]
Data = Annotated[str, typer.Argument(help="examples: .jsonl .json .csv .tsv .parquet, a save_to_disk folder, or a .pt/.safetensors dict of tokenized tensors", show_default=False)]
ModelClass = Annotated[Optional[str], typer.Option("--model-class", help="custom class as FILE.py:Class or module:Class (default: AutoModelForSequenceClassification)")]
Tokenizer = Annotated[Optional[str], typer.Option("--tokenizer", help="tokenizer location (default: MODEL)")]
TextField = Annotated[Optional[str], typer.Option("--text-field", help="text column (default: detected)")]
PairField = Annotated[Optional[str], typer.Option("--text-pair-field", help="second text column for pairs (default: detected)")]
LabelField = Annotated[Optional[str], typer.Option("--label-field", help="label column (default: detected)")]
LabelTokens = Annotated[Optional[str], typer.Option("--label-tokens", help="one word per class, in class order, whose token positions carry the scores")]
LabelPositions = Annotated[Optional[str], typer.Option("--label-token-positions", help="the same as fixed input positions, e.g. 1,2,3")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="forward batch size")]
MaxLength = Annotated[Optional[int], typer.Option("--max-length", help="truncation length (default: the tokenizer's, capped at 512)")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps (auto: cuda, then mps, then cpu)")]
Precision = Annotated[str, typer.Option("--precision", help="auto, fp32, bf16 or fp16 (auto: bf16 on a GPU that has it, else fp32)")]
Seed = Annotated[int, typer.Option("--seed", help="seed for every random choice")]
FailOn = Annotated[str, typer.Option("--fail-on", help="severity that makes the exit code 1: error, warning or never")]
JsonPath = Annotated[Optional[str], typer.Option("--json", help="write the JSON report here ('-' = stdout; the rich report then goes to stderr)")]
PlotPath = Annotated[Optional[str], typer.Option("--plot", help="write a PNG figure here")]
TrustRemote = Annotated[bool, typer.Option("--trust-remote-code", help="allow code shipped inside MODEL")]
AllowPickle = Annotated[bool, typer.Option("--allow-pickle", help="allow pickle-based weight or data files (read with weights_only=True)")]
Debug = Annotated[bool, typer.Option("--debug", help="show the full traceback of an internal error (also LABELDIAG_DEBUG=1)")]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="hide progress bars")]


def _options(params: dict):
    """CommonOptions from a command's parameters (its locals()); command-specific ones are left out."""
    import dataclasses

    from labeldiag.commands.common import CommonOptions

    kw = dict(params)
    kw["json_path"], kw["plot_path"] = kw.pop("json", None), kw.pop("plot", None)
    kw["progress"] = not kw.pop("no_progress", False)
    names = {f.name for f in dataclasses.fields(CommonOptions)}
    return CommonOptions(**{k: v for k, v in kw.items() if k in names})


def _version(value: bool) -> None:
    if value:
        typer.echo(f"labeldiag {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")] = False) -> None:
    """labeldiag: tell, with evidence, what is wrong with a text classifier."""


@app.command("check-logits")
def check_logits(
    model: Model, data: Data, model_class: ModelClass = None, tokenizer: Tokenizer = None,
    text_field: TextField = None, text_pair_field: PairField = None, label_field: LabelField = None,
    label_tokens: LabelTokens = None, label_token_positions: LabelPositions = None,
    max_examples: Annotated[int, typer.Option("--max-examples", help="examples read from DATA")] = 2048,
    batch_size: BatchSize = 32, max_length: MaxLength = None, device: Device = "auto", precision: Precision = "auto",
    seed: Seed = 0, fail_on: FailOn = "error", json: JsonPath = None, plot: PlotPath = None,
    trust_remote_code: TrustRemote = False, allow_pickle: AllowPickle = False, debug: Debug = False,
    no_progress: NoProgress = False,
) -> None:
    """Is logit i really label i? Do predictions collapse to one class or to chance?"""
    opts = _options(locals())

    def body() -> int:
        from labeldiag.commands import check_logits as cmd

        return cmd.run(opts)

    raise typer.Exit(guarded(body, debug))


@app.command("explain")
def explain(
    code: Annotated[Optional[str], typer.Argument(help="a finding code, e.g. label-permutation", show_default=False)] = None,
    list_all: Annotated[bool, typer.Option("--list", help="list every finding code")] = False,
) -> None:
    """What a finding code means, why it matters, how to fix it."""
    def body() -> int:
        from rich.console import Console

        from labeldiag.catalogue import CATALOGUE, lookup
        from labeldiag.errors import UsageError

        console = Console(highlight=False)
        if list_all or code is None:
            if code is None and not list_all:
                raise UsageError("give a finding code (e.g. 'labeldiag explain label-permutation') or --list")
            for info in CATALOGUE.values():
                console.print(f"{info.code:28} {info.severity:8} {info.command:13} {info.what}")
            return 0
        info = lookup(code.strip())
        console.print(f"[bold]{info.code}[/]  ({info.severity}, {info.command if info.command != 'all' else 'every command'})")
        console.print(f"\n[bold]what[/]  {info.what}\n[bold]why[/]   {info.why}\n[bold]fix[/]   {info.fix}")
        return 0

    raise typer.Exit(guarded(body))


@app.command("demo")
def demo(
    cache: Annotated[Optional[str], typer.Option("--cache", help="folder for the demo models (default: ~/.cache/labeldiag/demo)")] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="train the demo models again even if cached")] = False,
    debug: Debug = False,
) -> None:
    """A first run with nothing to download: trains a small classifier, breaks a copy, checks both."""
    def body() -> int:
        from labeldiag.demo import run_demo

        return run_demo(cache, rebuild)

    raise typer.Exit(guarded(body, debug))


def main() -> None:
    try:
        app()
    except SystemExit:
        raise
    except Exception as exc:  # click/typer internals; never a traceback for the user
        print(f"labeldiag: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


# grad-flow and smoke-train live in cli_train.py (same app); importing it registers them
from labeldiag import cli_train  # noqa: E402,F401
