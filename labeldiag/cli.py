"""The Typer app: every command registered here; each parses, calls the API, renders, exits.

Heavy imports (torch, transformers) happen inside command bodies so `labeldiag --help` stays fast.
"""
from __future__ import annotations

import os
import shlex
import sys
from typing import Annotated, Any, Optional

import typer

from labeldiag import __version__
from labeldiag.errors import EXIT_USAGE, guarded, one_line

class _Group(typer.core.TyperGroup):
    """Help that reads as the user types it: MODEL DATA, `--max-examples N`, flags without a type."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in [self, *self.commands.values()]:
            for param in command.params:
                _plain_help(param)
            command.get_help_option = _plain_help_option(command.get_help_option)


def _plain_help(param: Any) -> None:
    if isinstance(param, typer.core.TyperArgument):
        param.metavar = param.metavar or param.name.upper()
        param.display_type_rich = lambda ctx: None  # the name says it; "<str>" adds nothing
        param._usage_display_name = lambda: param.metavar  # MODEL, not {MODEL}
    elif getattr(param, "is_flag", False):
        param.metavar = ""
    elif param.metavar is None:
        param.metavar = {"int": "N", "float": "X"}.get(param.bare_type(), "TEXT")


def _plain_help_option(make: Any) -> Any:
    def get_help_option(ctx: Any) -> Any:
        option = make(ctx)
        if option is not None:
            option.metavar = ""
        return option
    return get_help_option


app = typer.Typer(
    name="labeldiag",
    cls=_Group,
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
Labels = Annotated[Optional[str], typer.Option("--labels", help="class names in head order, e.g. negative,neutral,positive: attach a fresh head of that size when the checkpoint has none or another size (never written to MODEL)")]
NumLabels = Annotated[Optional[int], typer.Option("--num-labels", help="number of classes: attach a fresh head of that size when the checkpoint has none or another size")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="forward batch size")]
MaxLength = Annotated[Optional[int], typer.Option("--max-length", help="truncation length (default: the tokenizer's, capped at 512)")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps (auto: cuda, then mps, then cpu)")]
Precision = Annotated[str, typer.Option("--precision", help="auto, fp32, bf16 or fp16 (auto: bf16 on a GPU that has it, else fp32)")]
Seed = Annotated[int, typer.Option("--seed", help="seed for every random choice")]
FailOn = Annotated[str, typer.Option("--fail-on", help="severity that makes the exit code 1: error, warning or never")]
JsonPath = Annotated[Optional[str], typer.Option("--json", help="write the JSON report here ('-' = stdout; the rich report then goes to stderr)")]
PlotPath = Annotated[Optional[str], typer.Option("--plot", help="write a PNG figure here")]
HtmlPath = Annotated[Optional[str], typer.Option("--html", help="write one self-contained HTML report here (findings, tables, figures, environment)")]
TrustRemote = Annotated[bool, typer.Option("--trust-remote-code", help="allow code shipped inside MODEL")]
AllowPickle = Annotated[bool, typer.Option("--allow-pickle", help="allow pickle-based weight or data files (read with weights_only=True)")]
Debug = Annotated[bool, typer.Option("--debug", help="show the full traceback of an internal error (also LABELDIAG_DEBUG=1)")]
Shard = Annotated[Optional[str], typer.Option("--shard", help="under torchrun / accelerate launch: ddp (a full copy per rank) or fsdp (FSDP2: every block sharded); default: what fits the device, named in the header")]
Lora = Annotated[Optional[int], typer.Option("--lora", help="train a LoRA adapter of this rank (peft) and the head, on a copy; 0: every weight (default: LoRA rank 8 above 1B parameters, named in the header)")]
DeviceMap = Annotated[Optional[str], typer.Option("--device-map", help="auto: place a model larger than one device over the GPUs, then the CPU, then disk (accelerate); never with --shard")]
MaxMemory = Annotated[Optional[str], typer.Option("--max-memory", help="with --device-map auto: memory per device, e.g. 0=20GiB,cpu=60GiB (the rest is offloaded to a temporary folder)")]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="hide progress bars")]
Task = Annotated[Optional[str], typer.Option("--task", help="single-label, multi-label, regression, pairwise or token (default: detected from the labels, the head class and config)")]
LabelAllSubwords = Annotated[bool, typer.Option("--label-all-subwords", help="token task: give every sub-word of a word its tag (default: the first sub-word only, the rest -100)")]
PairFields = Annotated[Optional[str], typer.Option("--pair-fields", help="preference data: the chosen and rejected columns (default: chosen,rejected)")]
LabelColumns = Annotated[Optional[str], typer.Option("--label-columns", help="multi-label data as one 0/1 column per label, in head order, e.g. sport,politics,tech")]
BaseModel = Annotated[Optional[str], typer.Option("--base-model", help="the base model this one was fine-tuned from (folder or cached hub id; default: the config's _name_or_path when local or cached; never downloaded): tensors far from it are named")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"labeldiag {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")] = False) -> None:
    """labeldiag: tell, with evidence, what is wrong with a text classifier."""


SHARED_PARAMETERS = ("model_class", "text_field", "text_pair_field", "label_field", "label_tokens",
                     "label_token_positions", "labels", "num_labels", "max_examples", "batch_size", "max_length",
                     "device", "precision", "seed", "trust_remote_code", "allow_pickle")
SHARED_PARAMETERS += ("task", "label_columns", "pair_fields")
SHARED_PARAMETERS += ("label_all_subwords",)


def shared_options(parameters: dict[str, Any], **fixed: Any) -> dict[str, Any]:
    """The API options every checking command takes, from a command's parameters (its locals()).

    A shared parameter the command does not offer is None, unless `fixed` gives its value.
    """
    options = {name: parameters.get(name) for name in SHARED_PARAMETERS}
    from labeldiag.progress import SILENT
    from labeldiag.render.progress import TERMINAL

    options["progress"] = SILENT if parameters["no_progress"] else TERMINAL
    return {**options, **fixed}


def run_command(command: str, model: str, data: str, tokenizer: str | None, options: dict[str, Any], *,
                json: str | None, plot: str | None, html: str | None, fail_on: str, debug: bool) -> None:
    """Parse -> API -> render -> exit code; bad outputs are refused before any work."""
    def body() -> int:
        from typer.main import get_command

        from labeldiag.api import run as run_checks
        from labeldiag.diagnose import doctor
        from labeldiag.distributed import from_env
        from labeldiag.render.deliver import Outputs, check_outputs, deliver

        out = Outputs(json_path=json, plot_path=plot, html_path=html, fail_on=fail_on,
                      command_line=" ".join(shlex.quote(a) for a in ["labeldiag", *sys.argv[1:]]),
                      commands=get_command(app).commands)
        check_outputs(out, model, data, tokenizer)
        if command == "doctor":
            report = doctor(model, data, tokenizer=tokenizer, **options)
        else:
            report = run_checks(command, model, data, tokenizer, **options)
        if from_env().main:  # under torchrun every rank holds the same findings; rank 0 shows them
            deliver(report, out)
        return report.exit_code(fail_on)

    from labeldiag.distributed import rank_zero_errors

    raise typer.Exit(guarded(rank_zero_errors(body), debug))


@app.command("check-logits")
def check_logits(
    model: Model, data: Data, model_class: ModelClass = None, tokenizer: Tokenizer = None,
    text_field: TextField = None, text_pair_field: PairField = None, label_field: LabelField = None,
    label_tokens: LabelTokens = None, label_token_positions: LabelPositions = None,
    labels: Labels = None, num_labels: NumLabels = None,
    max_examples: Annotated[int, typer.Option("--max-examples", help="examples read from DATA")] = 2048,
    batch_size: BatchSize = 32, max_length: MaxLength = None, device: Device = "auto", precision: Precision = "auto",
    seed: Seed = 0, fail_on: FailOn = "error", json: JsonPath = None, plot: PlotPath = None, html: HtmlPath = None,
    trust_remote_code: TrustRemote = False, allow_pickle: AllowPickle = False, debug: Debug = False,
    no_progress: NoProgress = False, base_model: BaseModel = None,
    task: Task = None, label_columns: LabelColumns = None, pair_fields: PairFields = None,
    label_all_subwords: LabelAllSubwords = False,
    device_map: DeviceMap = None, max_memory: MaxMemory = None,
) -> None:
    """Is logit i really label i? Do predictions collapse to one class or to chance?"""
    options = shared_options(locals(), base_model=base_model, device_map=device_map, max_memory=max_memory)
    run_command("check-logits", model, data, tokenizer, options, json=json, plot=plot, html=html,
                fail_on=fail_on, debug=debug)


@app.command("grad-flow")
def grad_flow(
    model: Model, data: Data, model_class: ModelClass = None, tokenizer: Tokenizer = None,
    text_field: TextField = None, text_pair_field: PairField = None, label_field: LabelField = None,
    label_tokens: LabelTokens = None, label_token_positions: LabelPositions = None,
    labels: Labels = None, num_labels: NumLabels = None,
    max_examples: Annotated[int, typer.Option("--max-examples", help="labelled examples in the one batch")] = 64,
    batch_size: BatchSize = 32, max_length: MaxLength = None, device: Device = "auto", precision: Precision = "auto",
    seed: Seed = 0, fail_on: FailOn = "error", json: JsonPath = None, plot: PlotPath = None, html: HtmlPath = None,
    trust_remote_code: TrustRemote = False, allow_pickle: AllowPickle = False, debug: Debug = False,
    no_progress: NoProgress = False,
    task: Task = None, label_columns: LabelColumns = None, pair_fields: PairFields = None,
    label_all_subwords: LabelAllSubwords = False,
    lr: Annotated[float, typer.Option("--lr", help="learning rate for update/weight ratios")] = 2e-5,
    shard: Shard = None, lora: Lora = None, device_map: DeviceMap = None, max_memory: MaxMemory = None,
) -> None:
    """One forward/backward: where the gradient goes, per layer and into label-token positions."""
    options = shared_options(locals())
    options["shard"], options["lora"] = shard, lora
    options["device_map"], options["max_memory"] = device_map, max_memory
    run_command("grad-flow", model, data, tokenizer, {**options, "lr": lr}, json=json, plot=plot, html=html,
                fail_on=fail_on, debug=debug)


@app.command("smoke-train")
def smoke_train(
    model: Model, data: Data, model_class: ModelClass = None, tokenizer: Tokenizer = None,
    text_field: TextField = None, text_pair_field: PairField = None, label_field: LabelField = None,
    label_tokens: LabelTokens = None, label_token_positions: LabelPositions = None,
    labels: Labels = None, num_labels: NumLabels = None,
    max_examples: Annotated[int, typer.Option("--max-examples", help="labelled examples in the fixed batch")] = 32,
    batch_size: BatchSize = 32, max_length: MaxLength = None, device: Device = "auto", precision: Precision = "auto",
    seed: Seed = 0, fail_on: FailOn = "error", json: JsonPath = None, plot: PlotPath = None, html: HtmlPath = None,
    trust_remote_code: TrustRemote = False, allow_pickle: AllowPickle = False, debug: Debug = False,
    no_progress: NoProgress = False,
    task: Task = None, label_columns: LabelColumns = None, pair_fields: PairFields = None,
    label_all_subwords: LabelAllSubwords = False,
    steps: Annotated[int, typer.Option("--steps", help="optimizer steps at most")] = 100,
    lr: Annotated[Optional[float], typer.Option("--lr", help="AdamW learning rate (default 1e-4; 1e-3 when LoRA trains)", show_default=False)] = None,
    target_loss: Annotated[float, typer.Option("--target-loss", help="stop once accuracy is 100% and loss is below this")] = 0.05,
    triage: Annotated[bool, typer.Option("--triage", help="when the batch cannot be fitted, rerun with the head alone, three learning rates and fp32")] = False,
    shard: Shard = None, lora: Lora = None,
) -> None:
    """Can the model overfit one small batch? (GPU when there is one, CPU otherwise)"""
    options = shared_options(locals())
    options["shard"], options["lora"] = shard, lora
    run_command("smoke-train", model, data, tokenizer,
                {**options, "steps": steps, "lr": lr, "target_loss": target_loss, "triage": triage},
                json=json, plot=plot, html=html, fail_on=fail_on, debug=debug)


@app.command("doctor")
def doctor(
    model: Model, data: Data, model_class: ModelClass = None, tokenizer: Tokenizer = None,
    text_field: TextField = None, text_pair_field: PairField = None, label_field: LabelField = None,
    label_tokens: LabelTokens = None, label_token_positions: LabelPositions = None,
    max_examples: Annotated[int, typer.Option("--max-examples", help="examples read from DATA (grad-flow and smoke-train use a few of them)")] = 2048,
    batch_size: BatchSize = 32, max_length: MaxLength = None, device: Device = "auto", precision: Precision = "auto",
    seed: Seed = 0, fail_on: FailOn = "error", json: JsonPath = None, plot: PlotPath = None, html: HtmlPath = None,
    trust_remote_code: TrustRemote = False, allow_pickle: AllowPickle = False, debug: Debug = False,
    no_progress: NoProgress = False, labels: Labels = None, num_labels: NumLabels = None,
    task: Task = None, label_columns: LabelColumns = None, pair_fields: PairFields = None,
    label_all_subwords: LabelAllSubwords = False,
    steps: Annotated[int, typer.Option("--steps", help="smoke-train stage: optimizer steps at most")] = 100,
) -> None:
    """Every stage, cheap to costly, on one loaded model; one ranked diagnosis, root cause first."""
    options = shared_options(locals())
    run_command("doctor", model, data, tokenizer, {**options, "steps": steps}, json=json, plot=plot, html=html,
                fail_on=fail_on, debug=debug)


@app.command("fix")
def fix(
    model: Model, data: Data,
    out: Annotated[str, typer.Option("--out", help="folder for the corrected copy (must not exist yet, or be empty)", show_default=False)],
    model_class: ModelClass = None, tokenizer: Tokenizer = None, text_field: TextField = None,
    text_pair_field: PairField = None, label_field: LabelField = None,
    label_tokens: LabelTokens = None, label_token_positions: LabelPositions = None,
    max_examples: Annotated[int, typer.Option("--max-examples", help="examples read from DATA")] = 2048,
    batch_size: BatchSize = 32, max_length: MaxLength = None, device: Device = "auto", precision: Precision = "auto",
    seed: Seed = 0, json: JsonPath = None,
    trust_remote_code: TrustRemote = False, allow_pickle: AllowPickle = False, debug: Debug = False,
    no_progress: NoProgress = False, base_model: BaseModel = None,
    restore_from_base: Annotated[bool, typer.Option("--restore-from-base", help="restore the tensors weights-far-from-base names from the base model (--base-model)")] = False,
) -> None:
    """Write a corrected copy of MODEL (never in place) for what its own files prove, and re-check it."""
    options = shared_options(locals(), base_model=base_model)

    def body() -> int:
        from labeldiag.render.fix import run_fix

        return run_fix(model, data, out, tokenizer, {**options, "restore_from_base": restore_from_base}, json)

    raise typer.Exit(guarded(body, debug))


@app.command("explain")
def explain(
    code: Annotated[Optional[str], typer.Argument(help="a finding code, e.g. label-permutation", show_default=False)] = None,
    list_all: Annotated[bool, typer.Option("--list", help="list every finding code")] = False,
) -> None:
    """What a finding code means, why it matters, how to fix it."""
    def body() -> int:
        from rich.console import Console
        from rich.markup import escape

        from labeldiag.catalogue import CATALOGUE, lookup
        from labeldiag.errors import UsageError

        console = Console(highlight=False)
        if list_all or code is None:
            if code is None and not list_all:
                raise UsageError("give a finding code (e.g. 'labeldiag explain label-permutation') or --list")
            for info in CATALOGUE.values():
                console.print(f"{info.code:28} {info.severity:8} {escape(info.command)}")
                console.print(f"{'':28} {escape(info.what)}", style="dim")
            return 0
        info = lookup(code.strip())
        console.print(f"[bold]{info.code}[/]  ({info.severity}; {escape(info.command)})")
        console.print(f"\n[bold]what[/]  {escape(info.what)}\n[bold]why[/]   {escape(info.why)}\n"
                      f"[bold]fix[/]   {escape(info.fix)}")
        return 0

    raise typer.Exit(guarded(body))


@app.command("env")
def env() -> None:
    """A paste-ready block of versions and hardware for bug reports (the same block is in every report)."""
    def body() -> int:
        from labeldiag.env import environment, environment_text

        typer.echo(environment_text(environment()))
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
        from labeldiag.render.deliver import Outputs, deliver
        from labeldiag.render.progress import TERMINAL

        return run_demo(lambda report: deliver(report, Outputs()), TERMINAL, cache, rebuild)

    raise typer.Exit(guarded(body, debug))


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the CLI never touches the network; cached hub ids resolve
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    try:
        code = app(standalone_mode=False)
    except SystemExit:
        raise
    except Exception as exc:  # click's usage errors and internals: one line, never a traceback
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if not message.strip():  # no arguments at all: click has printed the help
            sys.exit(EXIT_USAGE)
        hint = ""
        ctx = getattr(exc, "ctx", None)
        if ctx is not None and getattr(ctx, "command_path", None):
            hint = f" (see '{ctx.command_path} --help')"
        print(f"labeldiag: error: {one_line(message)}{hint}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        print("labeldiag: interrupted", file=sys.stderr)
        sys.exit(130)
    # everything is written and flushed: skip the interpreter's teardown of torch (1-8 s on a busy machine)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a reader that went away (| head) or a closed stream
            pass
    os._exit(code if isinstance(code, int) else 0)
