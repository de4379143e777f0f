"""Every finding code, declared once: severity, the command that reports it, what / why / fix.

`labeldiag explain CODE` prints an entry; README's code table is tested against this file.
Codes are retired, never reused or renamed (CONTRACT.md).
"""
from __future__ import annotations

from dataclasses import dataclass

from labeldiag.errors import UsageError


@dataclass(frozen=True)
class CodeInfo:
    code: str
    severity: str
    command: str  # check-logits, grad-flow, smoke-train or "all"
    what: str
    why: str
    fix: str


CATALOGUE: dict[str, CodeInfo] = {}


def _declare(code: str, severity: str, command: str, what: str, why: str, fix: str) -> None:
    if code in CATALOGUE:
        raise ValueError(f"finding code {code!r} declared twice")
    CATALOGUE[code] = CodeInfo(code, severity, command, what, why, fix)


def lookup(code: str) -> CodeInfo:
    try:
        return CATALOGUE[code]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(code, CATALOGUE, n=1)
        tip = f"; did you mean '{close[0]}'?" if close else "; run 'labeldiag explain --list' for all codes"
        raise UsageError(f"unknown finding code '{code}'{tip}") from None


# --- loading (every command) ------------------------------------------------------------
_declare(
    "head-uninitialized", "error", "all",
    "Classifier/head weights were missing from the checkpoint and were freshly initialized.",
    "A random head gives random predictions; evaluating it measures nothing. At the start of "
    "fine-tuning (grad-flow, smoke-train) a fresh head is normal, so there it is info.",
    "load the checkpoint that was saved after fine-tuning (it must contain the head, e.g. "
    "'classifier.weight'), or check --model-class matches the class that saved it",
)
_declare(
    "weights-reinitialized", "error", "all",
    "Weights outside the head (encoder, embeddings) were missing from the checkpoint and were "
    "freshly initialized.",
    "The model silently became partly random: usually a prefix mismatch (a custom class calls its "
    "encoder 'encoder' while the checkpoint says 'bert') or the wrong architecture.",
    "make the attribute names of --model-class match the checkpoint's keys (see the evidence), or "
    "load with the class that saved it",
)
_declare(
    "unused-checkpoint-weights", "warning", "all",
    "The checkpoint holds weights the model did not use.",
    "Often the trained head was saved under another name (an adapter's modules_to_save, a renamed "
    "attribute), so the model runs with a fresh head while the trained one is ignored.",
    "rename the model's attributes to the checkpoint's keys, or load with the class that saved it",
)
_declare(
    "pretraining-head-unused", "info", "all",
    "The checkpoint holds a pretraining head (masked-LM / next-sentence) that a classifier does not use.",
    "Normal when fine-tuning starts from a pretrained encoder; listed so nothing is hidden.",
    "nothing to do when you start from a pretrained encoder",
)

# --- check-logits --------------------------------------------------------------------------
_declare(
    "label-map-inconsistent", "error", "check-logits",
    "id2label / label2id are not inverse, have duplicates, or disagree with the head's output size.",
    "Reports, pipelines and the Trainer turn logit indices into names through these maps; a broken "
    "map mislabels every prediction even when the model is right.",
    "rewrite id2label and label2id in config.json so that they are inverse and have exactly "
    "num_labels entries, in the order the model was trained",
)
_declare(
    "label-names-generic", "info", "check-logits",
    "The config only has LABEL_0, LABEL_1, ... names.",
    "With generic names, string labels in the data cannot be matched to logits, and reports show "
    "meaningless names.",
    "pass id2label/label2id with the real class names to from_pretrained when you fine-tune",
)
_declare(
    "label-set-mismatch", "error", "check-logits",
    "Label names in the data that the model's label2id does not know, or names in the data when the "
    "model has none.",
    "Unknown names cannot be turned into class indices: training on such data fails or silently "
    "uses another mapping.",
    "make the data's label names match config.json's label2id (spelling and case), or fix label2id",
)
_declare(
    "labels-out-of-range", "error", "check-logits",
    "Integer labels outside 0..num_labels-1 (e.g. 1-based labels).",
    "Cross-entropy needs class indices 0..C-1; out-of-range labels crash on a GPU (device-side "
    "assert) or shift every class by one.",
    "map the labels to 0..num_labels-1 (subtract 1 from 1-based labels) or set num_labels correctly",
)
_declare(
    "problem-type-mismatch", "error", "check-logits",
    "The loss the model will pick is not single-label cross-entropy although the task is.",
    "transformers picks the loss from config.problem_type, num_labels and the labels' dtype: "
    "num_labels=1 gives MSE regression, float labels give multi-label BCE. Training then optimises "
    "the wrong objective without an error.",
    "use integer class labels (int64), num_labels equal to the number of classes, and "
    "problem_type 'single_label_classification' (or unset)",
)
_declare(
    "label-permutation", "error", "check-logits",
    "Predictions depend strongly on the gold label, but through another mapping: logit i behaves "
    "like label j.",
    "The model learned the task but its label map (or the data's label order) is permuted, so "
    "accuracy looks like chance or worse while the model is fine.",
    "fix id2label/label2id in config.json or the dataset's label order so logit i means label i "
    "(the evidence gives the mapping)",
)
_declare(
    "constant-predictions", "error", "check-logits",
    "One class is predicted for (nearly) every example although the gold labels are not that skewed.",
    "A collapsed classifier: often an untrained or saturated head, a too-high learning rate, a "
    "majority class that dominated training, or collapsed features.",
    "run 'labeldiag smoke-train' to see whether the model can fit a batch at all, and "
    "'labeldiag grad-flow' to see where the gradient goes",
)
_declare(
    "input-independent-logits", "error", "check-logits",
    "Logits barely change from one input to the next, and blanking the input's content barely "
    "changes them either.",
    "The model is not reading its input: a detached encoder, features that collapsed, or a head "
    "driven by its bias alone.",
    "check that the head receives the encoder's output (not a constant), then run "
    "'labeldiag grad-flow' to find disconnected parts",
)
_declare(
    "random-predictions", "error", "check-logits",
    "Predictions are statistically independent of the gold labels (no better than chance).",
    "The model has not learned the task, or it is evaluated on data whose labels mean something else.",
    "check that the right checkpoint and data are used; run 'labeldiag smoke-train' to see "
    "whether the model can learn at all",
)
_declare(
    "uniform-logits", "warning", "check-logits",
    "Predictive distributions are close to uniform.",
    "An untrained or uninformative head: every class gets about 1/C probability.",
    "make sure the trained head was loaded and training actually ran (loss should fall well below ln C)",
)
_declare(
    "underconfident-predictions", "info", "check-logits",
    "Predictions are accurate, but their probabilities are close to uniform.",
    "An under-trained head ranks the right class first with tiny margins: accuracy is fine, but the "
    "probabilities mean little (thresholds, calibration and confidence filters will misbehave).",
    "train longer (or with a higher head learning rate), or calibrate with temperature scaling before "
    "using probabilities",
)
_declare(
    "logit-saturation", "warning", "check-logits",
    "Logits so large that the softmax is one-hot.",
    "Softmax of huge logits (e.g. unscaled dot products of 768-dim vectors) gives probability 0/1: "
    "the loss on a wrong answer is enormous and gradients vanish or explode.",
    "scale the scores (divide dot products by sqrt(hidden size), or use a temperature), or "
    "normalise features",
)
_declare(
    "representation-collapse", "warning", "check-logits",
    "The pooled/[CLS] features of different inputs are nearly identical.",
    "When every input maps to (nearly) the same vector, no head can tell classes apart; typical of "
    "collapsed contrastive training (SimCSE-style) or a saturated pooler.",
    "check the contrastive loss (temperature, masking of self-similarity, positives), lower the "
    "learning rate, or use the encoder's mean-pooled output",
)
_declare(
    "nondeterministic-eval", "warning", "check-logits",
    "Two eval-mode forward passes of the same batch disagree.",
    "Dropout left on in eval, batch-dependent layers, or randomness in forward make every "
    "evaluation different.",
    "call model.eval(); make forward free of random sampling at evaluation time",
)
_declare(
    "tokenizer-model-mismatch", "error", "check-logits",
    "Token ids at or beyond the embedding table, or a vocabulary that disagrees with the model.",
    "Out-of-range ids crash (IndexError / device-side assert); a different tokenizer gives "
    "meaningless embeddings.",
    "use the tokenizer saved with the model (--tokenizer), or resize_token_embeddings after adding tokens",
)
_declare(
    "unk-heavy", "warning", "check-logits",
    "A large share of tokens are the unknown token.",
    "The model cannot see words the tokenizer maps to [UNK]; often the wrong tokenizer or a "
    "cased/uncased mismatch.",
    "use the model's own tokenizer, or one whose vocabulary covers the data",
)
_declare(
    "truncation-heavy", "warning", "check-logits",
    "A large share of examples are cut at the maximum length, losing most of their tokens.",
    "The model never sees the end of long inputs; when the label depends on it, accuracy suffers.",
    "raise --max-length (up to the model's limit), or split long documents into chunks",
)
_declare(
    "single-class-batch", "warning", "all",
    "The examples read hold only one class.",
    "Unshuffled data (all positives first) gives batches of one class: the model learns to predict "
    "the batch's class, and any check on such a slice says nothing.",
    "shuffle the data (or read more examples with --max-examples)",
)
_declare(
    "too-few-examples", "info", "all",
    "Too few labelled examples for a statistical verdict.",
    "With few examples a test cannot tell chance from skill; labeldiag says how many it needs "
    "rather than guess.",
    "pass more labelled examples (see the evidence for how many are needed)",
)

# --- grad-flow -----------------------------------------------------------------------------
_declare(
    "nonfinite-loss", "error", "grad-flow",
    "The loss is NaN or infinite.",
    "Nothing can be learned from a non-finite loss; the first module whose output became "
    "non-finite is usually the culprit.",
    "look at the module named in the evidence: log of zero, division by zero, fp16 overflow, or "
    "bad input values",
)
_declare(
    "nonfinite-gradients", "error", "grad-flow",
    "Some gradients are NaN or infinite.",
    "One optimizer step with a non-finite gradient destroys the weights.",
    "find the operation named in the evidence; clip gradients, use fp32 or bf16 instead of fp16, "
    "avoid sqrt/log at 0",
)
_declare(
    "disconnected-parameters", "error", "grad-flow",
    "Trainable parameters that got no gradient at all.",
    "They are not reached by the loss: a detached tensor, an unused module, a loss computed from "
    "numpy values, or a branch the forward skips.",
    "remove .detach()/.item()/numpy conversions between those parameters and the loss, or freeze "
    "them on purpose (requires_grad=False)",
)
_declare(
    "zero-gradients", "warning", "grad-flow",
    "Trainable parameters whose gradient is exactly zero.",
    "They are connected to the loss but receive no signal: dead ReLUs, a zero-multiplied path, "
    "masked positions.",
    "see dead-units and the per-layer table; check masks and multiplications by zero",
)
_declare(
    "frozen-parameters", "info", "grad-flow",
    "Parameters with requires_grad=False.",
    "Frozen on purpose is fine; frozen by accident means that part never learns. When nothing at "
    "all is trainable this is an error.",
    "set requires_grad=True on what should learn, and pass those parameters to the optimizer",
)
_declare(
    "vanishing-gradients", "warning", "grad-flow",
    "Early layers get orders of magnitude less gradient than late ones.",
    "The early layers barely learn; common with saturated activations, very deep stacks or a "
    "post-norm setup without warm-up.",
    "use a learning-rate warm-up, check for saturated activations, or fine-tune with a lower "
    "learning rate for the head only first",
)
_declare(
    "exploding-gradients", "error", "grad-flow",
    "The gradient norm is huge.",
    "One step with a huge gradient throws the weights far away; the loss diverges.",
    "scale logits (temperature, 1/sqrt(d)), clip gradients (max_norm=1.0), lower the learning rate",
)
_declare(
    "no-grad-to-label-tokens", "error", "grad-flow",
    "The loss sends (almost) no gradient into the label-token positions of the layer the scores "
    "are read from.",
    "A label-token model learns only if its label positions receive gradient; a .detach(), "
    "numpy conversion or wrong index cuts them off while the rest still trains.",
    "remove the detach/numpy conversion on the label-token states, and check the positions "
    "(--label-token-positions) match where the label tokens really are",
)
_declare(
    "loss-term-without-gradient", "warning", "grad-flow",
    "A term of the model's loss (e.g. supcon_loss beside ce_loss) is sizeable but sends (almost) no "
    "gradient into the encoder.",
    "Such a term costs compute and shapes nothing; typically a shape bug (a contrastive loss fed "
    "[batch, dim] where it expects [batch, n_views, dim]) or a detached input.",
    "check the shapes the term's function expects and that its inputs are not detached; compare its "
    "gradient with the main loss's in the evidence",
)
_declare(
    "dead-units", "warning", "grad-flow",
    "ReLU-family units that are never active on the batch.",
    "A dead unit passes no gradient, so it never recovers; a dead pre_classifier cuts the head "
    "off from the encoder.",
    "check the initialisation and bias of the layer before the activation, lower the learning rate",
)
_declare(
    "saturated-activations", "warning", "grad-flow",
    "tanh/sigmoid units stuck at their limits.",
    "A saturated unit has (almost) zero derivative: the gradient through it vanishes (e.g. a "
    "saturated BERT pooler).",
    "scale the pre-activation (layer norm, smaller init), lower the learning rate, or bypass the pooler",
)
_declare(
    "loss-at-init-off", "warning", "grad-flow",
    "The loss is far from ln(num_labels) for a freshly initialized head.",
    "A fresh head should predict about uniformly, so its cross-entropy is near ln C; far above "
    "means saturated logits, far below means the labels leak or the loss is not what you think.",
    "check the logit scale (see logit-saturation) and the loss function",
)

# --- smoke-train ---------------------------------------------------------------------------
_declare(
    "cannot-overfit", "error", "smoke-train",
    "The model could not fit one small batch within the step budget.",
    "A model that cannot overfit 32 examples will not learn from 300,000: something in the model, "
    "loss or optimisation is broken.",
    "follow the hint in the message; '--triage' reruns with the head alone, three learning "
    "rates and fp32 to find which change makes it fit",
)
_declare(
    "loss-diverged", "error", "smoke-train",
    "The loss became NaN/inf or grew far above its start.",
    "The learning rate is too high, the logits are unscaled, or fp16 overflowed.",
    "lower --lr, scale the logits, clip gradients, use bf16/fp32",
)
_declare(
    "parameters-unchanged", "error", "smoke-train",
    "Trainable parameters that did not change after optimizer steps.",
    "They are not in the optimizer, get no gradient, or the learning rate is zero.",
    "pass all trainable parameters to the optimizer and check the gradient path "
    "('labeldiag grad-flow')",
)
_declare(
    "collapse-during-training", "error", "smoke-train",
    "Predictions on the training batch became constant while it holds several classes.",
    "The optimisation found the majority-class shortcut; typical of a too-high learning rate or a "
    "saturated head.",
    "lower --lr, check the class balance, scale the logits",
)
_declare(
    "slow-convergence", "warning", "smoke-train",
    "The batch was fitted, but only late in the step budget.",
    "A healthy classifier overfits 32 examples quickly; needing most of the budget hints at a "
    "too-low learning rate or a hard-to-optimise head.",
    "try a higher --lr or '--triage'",
)
_declare(
    "ranks-diverged", "error", "smoke-train",
    "Data-parallel ranks ended with different parameters.",
    "DistributedDataParallel should keep every replica identical; divergence means unsynchronised "
    "parameters or rank-dependent code.",
    "make sure every trainable parameter is used in forward on every rank (or set "
    "find_unused_parameters) and that randomness is seeded the same",
)


def markdown_table(command: str) -> str:
    """README's table of codes for one command ('all' = reported by every command)."""
    lines = ["| code | severity | what it means | what to do |", "|---|---|---|---|"]
    for info in CATALOGUE.values():
        if info.command == command:
            lines.append(f"| `{info.code}` | {info.severity} | {info.what} | {info.fix} |")
    return "\n".join(lines)
