"""grad-flow and smoke-train commands, registered on the same app as check-logits."""
from __future__ import annotations

from typing import Annotated

import typer

from labeldiag.cli import (AllowPickle, BatchSize, Data, Debug, Device, FailOn, JsonPath, LabelField, LabelPositions,
                           LabelTokens, MaxLength, Model, ModelClass, NoProgress, PairField, PlotPath, Precision, Seed,
                           TextField, Tokenizer, TrustRemote, _options, app)
from labeldiag.errors import guarded


@app.command("grad-flow")
def grad_flow(
    model: Model, data: Data, model_class: ModelClass = None, tokenizer: Tokenizer = None,
    text_field: TextField = None, text_pair_field: PairField = None, label_field: LabelField = None,
    label_tokens: LabelTokens = None, label_token_positions: LabelPositions = None,
    max_examples: Annotated[int, typer.Option("--max-examples", help="labelled examples in the one batch")] = 64,
    batch_size: BatchSize = 32, max_length: MaxLength = None, device: Device = "auto", precision: Precision = "auto",
    seed: Seed = 0, fail_on: FailOn = "error", json: JsonPath = None, plot: PlotPath = None,
    trust_remote_code: TrustRemote = False, allow_pickle: AllowPickle = False, debug: Debug = False,
    no_progress: NoProgress = False,
    lr: Annotated[float, typer.Option("--lr", help="learning rate for update/weight ratios")] = 2e-5,
) -> None:
    """One forward/backward: where the gradient goes, per layer and into label-token positions."""
    opts = _options(locals())

    def body() -> int:
        from labeldiag.commands import grad_flow as cmd

        return cmd.run(opts, lr=lr)

    raise typer.Exit(guarded(body, debug))


@app.command("smoke-train")
def smoke_train(
    model: Model, data: Data, model_class: ModelClass = None, tokenizer: Tokenizer = None,
    text_field: TextField = None, text_pair_field: PairField = None, label_field: LabelField = None,
    label_tokens: LabelTokens = None, label_token_positions: LabelPositions = None,
    max_examples: Annotated[int, typer.Option("--max-examples", help="labelled examples in the fixed batch")] = 32,
    batch_size: BatchSize = 32, max_length: MaxLength = None, device: Device = "auto", precision: Precision = "auto",
    seed: Seed = 0, fail_on: FailOn = "error", json: JsonPath = None, plot: PlotPath = None,
    trust_remote_code: TrustRemote = False, allow_pickle: AllowPickle = False, debug: Debug = False,
    no_progress: NoProgress = False,
    steps: Annotated[int, typer.Option("--steps", help="optimizer steps at most")] = 100,
    lr: Annotated[float, typer.Option("--lr", help="AdamW learning rate")] = 1e-4,
    target_loss: Annotated[float, typer.Option("--target-loss", help="stop once accuracy is 100% and loss is below this")] = 0.05,
    triage: Annotated[bool, typer.Option("--triage", help="when the batch cannot be fitted, rerun with the head alone, three learning rates and fp32")] = False,
) -> None:
    """Can the model overfit one small batch? (GPU when there is one, CPU otherwise)"""
    opts = _options(locals())

    def body() -> int:
        from labeldiag.commands import smoke_train as cmd

        return cmd.run(opts, steps=steps, lr=lr, target_loss=target_loss, triage=triage)

    raise typer.Exit(guarded(body, debug))
