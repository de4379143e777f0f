"""Every finding code, declared once: severity, the command that reports it, what / why / fix, and what
the rest of labeldiag needs to know about it (doctor's ranking and moot stages, the next command, fix).

Each declaration binds the code to a constant (`LABEL_PERMUTATION = _declare("label-permutation", ...)`),
as mypy's errorcodes do; every other module uses the constant, never the string (a test checks).
`labeldiag explain CODE` prints an entry; README's code table is tested against this file.
Codes are retired, never reused or renamed (CONTRACT.md).
"""
from __future__ import annotations

from dataclasses import dataclass

from labeldiag.errors import UsageError


COMMANDS = ("check-logits", "grad-flow", "smoke-train")


@dataclass(frozen=True)
class Moot:
    """A later stage of doctor that this code, as an error, makes moot (that stage and every one after it)."""

    stage: str  # "grad-flow" or "smoke-train"
    reason: str  # doctor's note: "smoke-train skipped: REASON"
    precedence: int  # when several codes make the stage moot, the lowest precedence gives the reason


@dataclass(frozen=True)
class CodeInfo:
    code: str
    severity: str
    commands: tuple[str, ...]  # every command that reports it
    what: str
    why: str
    fix: str
    severity_in: tuple[tuple[str, str], ...] = ()  # (command, severity) where it differs from `severity`
    # doctor's ranking: a root cause explains these codes when both are found, and is shown with them as
    # its symptoms; causes rank most fundamental first (what the checkpoint and data are, then how
    # gradient flows, then how the model behaves). None: never a root cause.
    explains: frozenset[str] = frozenset()
    cause_rank: int | None = None
    confidence: float = 0.5  # doctor's confidence in it as the root cause, before counting its symptoms
    # a consequence of the user's own options (their --max-length), not of the model: doctor lists it as a
    # note under the diagnosis, never as a cause
    from_options: bool = False
    # the command that takes it further: "fix", "smoke-train" (with --triage, then grad-flow), "grad-flow",
    # "explain" (fixed in DATA, the tokenizer or the options, which explain tells how) or "doctor"
    next_command: str = "doctor"
    moot: Moot | None = None
    fixable: bool = False  # `labeldiag fix` has a repair for it (repair.FIXERS)
    fix_opt_in: str | None = None  # the option without which fix leaves it alone

    def severity_for(self, command: str | None) -> str:
        return dict(self.severity_in).get(command, self.severity)

    @property
    def command(self) -> str:
        """'every command' or the commands, for `labeldiag explain`."""
        return "every command" if set(COMMANDS) <= set(self.commands) else ", ".join(self.commands)


CATALOGUE: dict[str, CodeInfo] = {}


def _declare(code: str, severity: str, commands: str | tuple[str, ...], what: str, why: str, fix: str,
             severity_in: dict[str, str] | None = None, *, explains: tuple[str, ...] = (),
             cause_rank: int | None = None, confidence: float = 0.5, from_options: bool = False,
             next_command: str | None = None, moot: Moot | None = None, fixable: bool = False,
             fix_opt_in: str | None = None) -> str:
    """Declare a code (once); returns it, for its module constant. fix repairs what it can without being
    asked, so such a code's next command is fix unless another is named."""
    if code in CATALOGUE:
        raise ValueError(f"finding code {code!r} declared twice")
    cmds = COMMANDS if commands == "all" else ((commands,) if isinstance(commands, str) else tuple(commands))
    if next_command is None:
        next_command = "fix" if fixable and fix_opt_in is None else "doctor"
    CATALOGUE[code] = CodeInfo(code, severity, cmds, what, why, fix, tuple(sorted((severity_in or {}).items())),
                               frozenset(explains), cause_rank, confidence, from_options, next_command, moot,
                               fixable, fix_opt_in)
    return code


def lookup(code: str) -> CodeInfo:
    try:
        return CATALOGUE[code]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(code, CATALOGUE, n=1)
        tip = f"; did you mean '{close[0]}'?" if close else "; run 'labeldiag explain --list' for all codes"
        raise UsageError(f"unknown finding code '{code}'{tip}") from None


# --- loading (every command) ------------------------------------------------------------
# doctor: a fresh head starts from scratch: at a fine-tuning lr a short smoke run may not fit the batch
HEAD_UNINITIALIZED = _declare(
    "head-uninitialized", "error", ("check-logits", "grad-flow", "smoke-train", "callback"),
    "Classifier/head weights were missing from the checkpoint (or had another size than --labels / "
    "--num-labels asked for) and were freshly initialized.",
    "A random head gives random predictions; evaluating it measures nothing. At the start of "
    "fine-tuning (grad-flow, smoke-train) a fresh head is normal, so there it is info.",
    "load the checkpoint that was saved after fine-tuning (it must contain the head, e.g. "
    "'classifier.weight'), or check --model-class matches the class that saved it; for a pretrained "
    "encoder, run smoke-train / grad-flow with --labels NAME,NAME,... (or --num-labels N)",
    severity_in={"grad-flow": "info", "smoke-train": "info", "callback": "info"},
    explains=("random-predictions", "uniform-logits", "constant-predictions", "underconfident-predictions",
              "input-independent-logits", "label-permutation", "cannot-overfit", "slow-convergence"),
    cause_rank=30, confidence=0.9,
)
WEIGHTS_REINITIALIZED = _declare(
    "weights-reinitialized", "error", "all",
    "Weights outside the head (encoder, embeddings) were missing from the checkpoint and were "
    "freshly initialized.",
    "The model silently became partly random: usually a prefix mismatch (a custom class calls its "
    "encoder 'encoder' while the checkpoint says 'bert') or the wrong architecture.",
    "make the attribute names of --model-class match the checkpoint's keys (see the evidence), or "
    "load with the class that saved it",
    explains=("random-predictions", "uniform-logits", "constant-predictions", "representation-collapse",
              "input-independent-logits", "underconfident-predictions", "loss-at-init-off"),
    cause_rank=20, confidence=0.9,
)
UNUSED_CHECKPOINT_WEIGHTS = _declare(
    "unused-checkpoint-weights", "warning", "all",
    "The checkpoint holds weights the model did not use.",
    "Often the trained head was saved under another name (an adapter's modules_to_save, a renamed "
    "attribute), so the model runs with a fresh head while the trained one is ignored.",
    "rename the model's attributes to the checkpoint's keys, or load with the class that saved it",
)
PRETRAINING_HEAD_UNUSED = _declare(
    "pretraining-head-unused", "info", "all",
    "The checkpoint holds a pretraining head (masked-LM / next-sentence) that a classifier does not use.",
    "Normal when fine-tuning starts from a pretrained encoder; listed so nothing is hidden.",
    "nothing to do when you start from a pretrained encoder",
)

# --- check-logits --------------------------------------------------------------------------
LABEL_MAP_INCONSISTENT = _declare(
    "label-map-inconsistent", "error", ("check-logits", "callback"),
    "id2label / label2id are not inverse, have duplicates, or disagree with the head's output size.",
    "Reports, pipelines and the Trainer turn logit indices into names through these maps; a broken "
    "map mislabels every prediction even when the model is right.",
    "rewrite id2label and label2id in config.json so that they are inverse and have exactly "
    "num_labels entries, in the order the model was trained",
    explains=("label-permutation", "label-names-generic"),
    cause_rank=60, confidence=0.85,
    fixable=True,
)
LABEL_NAMES_GENERIC = _declare(
    "label-names-generic", "info", ("check-logits", "callback"),
    "The config only has LABEL_0, LABEL_1, ... names.",
    "With generic names, string labels in the data cannot be matched to logits, and reports show "
    "meaningless names.",
    "pass id2label/label2id with the real class names to from_pretrained when you fine-tune",
)
LABEL_SET_MISMATCH = _declare(
    "label-set-mismatch", "error", ("check-logits", "grad-flow", "smoke-train", "callback"),
    "Label names in the data that the model's label2id does not know, or names in the data when the "
    "model has none.",
    "Unknown names cannot be turned into class indices: training on such data fails or silently "
    "uses another mapping.",
    "make the data's label names match config.json's label2id (spelling and case), or fix label2id",
    explains=("random-predictions", "constant-predictions", "cannot-overfit"),
    cause_rank=80, confidence=0.85,
    next_command="explain",
    moot=Moot("smoke-train", "the data's labels do not map onto the model's classes", 4),
)
LABELS_OUT_OF_RANGE = _declare(
    "labels-out-of-range", "error", ("check-logits", "grad-flow", "smoke-train", "callback"),
    "Integer labels outside 0..num_labels-1 (e.g. 1-based labels).",
    "Cross-entropy needs class indices 0..C-1; out-of-range labels crash on a GPU (device-side "
    "assert) or shift every class by one.",
    "map the labels to 0..num_labels-1 (subtract 1 from 1-based labels), or pass --num-labels N to "
    "attach a head with a logit for every class",
    explains=("random-predictions", "cannot-overfit", "constant-predictions"),
    cause_rank=90, confidence=0.85,
    next_command="explain",
    moot=Moot("smoke-train", "labels fall outside the head", 5),
)
PROBLEM_TYPE_MISMATCH = _declare(
    "problem-type-mismatch", "error", ("check-logits", "grad-flow", "smoke-train", "callback"),
    "The loss the model will pick is not single-label cross-entropy although the task is.",
    "transformers picks the loss from config.problem_type, num_labels and the labels' dtype: "
    "num_labels=1 gives MSE regression, float labels give multi-label BCE. Training then optimises "
    "the wrong objective without an error.",
    "use integer class labels (int64), num_labels equal to the number of classes, and "
    "problem_type 'single_label_classification' (or unset)",
    explains=("loss-at-init-off", "cannot-overfit", "uniform-logits", "random-predictions", "constant-predictions"),
    cause_rank=100, confidence=0.85,
    moot=Moot("smoke-train", "the loss the model would train with is the wrong one", 3),
    fixable=True,
)
# doctor: permuted names also permute the training targets: the model must unlearn its mapping to fit them
LABEL_PERMUTATION = _declare(
    "label-permutation", "error", ("check-logits", "smoke-train", "callback"),
    "Predictions depend strongly on the gold label, but through another mapping: logit i behaves "
    "like label j, and that mapping explains the model (accurate, as its confidence says).",
    "The model learned the task but its label map (or the data's label order) is permuted, so "
    "accuracy looks like chance or worse while the model is fine.",
    "fix id2label/label2id in config.json or the dataset's label order so logit i means label i "
    "(the evidence gives the mapping)",
    explains=("cannot-overfit", "slow-convergence", "collapse-during-training"),
    cause_rank=290, confidence=0.9,
    moot=Moot("smoke-train", "the model is right and only its label names are not; training on the permuted "
              "targets would only relearn the mapping", 6),
    fixable=True,
)
CONSTANT_PREDICTIONS = _declare(
    "constant-predictions", "error", ("check-logits", "callback"),
    "One class is predicted for (nearly) every example although the gold labels are not that skewed.",
    "A collapsed classifier: often an untrained or saturated head, a too-high learning rate, a "
    "majority class that dominated training, or collapsed features.",
    "run 'labeldiag smoke-train' to see whether the model can fit a batch at all, and "
    "'labeldiag grad-flow' to see where the gradient goes",
)
INPUT_INDEPENDENT_LOGITS = _declare(
    "input-independent-logits", "error", "check-logits",
    "Logits barely change from one input to the next, and blanking the input's content barely "
    "changes them either.",
    "The model is not reading its input: a detached encoder, features that collapsed, or a head "
    "driven by its bias alone.",
    "check that the head receives the encoder's output (not a constant), then run "
    "'labeldiag grad-flow' to find disconnected parts",
    explains=("constant-predictions", "random-predictions", "uniform-logits"),
    cause_rank=270, confidence=0.75,
)
RANDOM_PREDICTIONS = _declare(
    "random-predictions", "error", ("check-logits", "callback"),
    "Predictions are statistically independent of the gold labels (no better than chance).",
    "The model has not learned the task, or it is evaluated on data whose labels mean something else.",
    "check that the right checkpoint and data are used; run 'labeldiag smoke-train' to see "
    "whether the model can learn at all",
)
UNIFORM_LOGITS = _declare(
    "uniform-logits", "warning", ("check-logits", "callback"),
    "Predictive distributions are close to uniform, and either uninformative or far from the accuracy "
    "(large calibration error).",
    "An untrained or uninformative head gives every class about 1/C probability; a head whose logits "
    "were divided by a large temperature ranks right but its probabilities understate the accuracy, "
    "so anyone thresholding on them is misled.",
    "make sure the trained head was loaded and training actually ran (loss should fall well below ln C); "
    "when accuracy is fine, look for a temperature or scaling folded into the head and remove it, or "
    "recalibrate (temperature scaling)",
)
UNDERCONFIDENT_PREDICTIONS = _declare(
    "underconfident-predictions", "info", ("check-logits", "callback"),
    "Predictions are accurate, but their probabilities are close to uniform (mildly: small calibration error).",
    "An under-trained head ranks the right class first with tiny margins: accuracy is fine, but the "
    "probabilities mean little (thresholds, calibration and confidence filters will misbehave).",
    "train longer (or with a higher head learning rate), or calibrate with temperature scaling before "
    "using probabilities",
)
LOGIT_SATURATION = _declare(
    "logit-saturation", "warning", ("check-logits", "callback"),
    "Logits so large that the softmax is one-hot.",
    "Softmax of huge logits (e.g. unscaled dot products of 768-dim vectors) gives probability 0/1: "
    "the loss on a wrong answer is enormous and gradients vanish or explode.",
    "scale the scores (divide dot products by sqrt(hidden size), or use a temperature), or "
    "normalise features",
    explains=("loss-at-init-off", "exploding-gradients", "zero-gradients", "loss-diverged", "cannot-overfit",
              "collapse-during-training"),
    cause_rank=230, confidence=0.75,
)
REPRESENTATION_COLLAPSE = _declare(
    "representation-collapse", "warning", "check-logits",
    "The pooled/[CLS] features of different inputs are nearly identical.",
    "When every input maps to (nearly) the same vector, no head can tell classes apart; typical of "
    "collapsed contrastive training (SimCSE-style) or a saturated pooler.",
    "check the contrastive loss (temperature, masking of self-similarity, positives), lower the "
    "learning rate, or use the encoder's mean-pooled output",
    explains=("constant-predictions", "input-independent-logits", "random-predictions", "uniform-logits",
              "collapse-during-training"),
    cause_rank=260, confidence=0.75,
)
NONFINITE_LOGITS = _declare(
    "nonfinite-logits", "error", "check-logits",
    "The model's logits are NaN or infinite for some inputs.",
    "NaN/inf weights (a diverged or corrupted checkpoint) or an overflow in the forward make every "
    "prediction meaningless; the other verdicts are skipped for those inputs.",
    "load a checkpoint saved before training diverged, or run labeldiag grad-flow to find the module "
    "whose output turns non-finite",
)
NONDETERMINISTIC_EVAL = _declare(
    "nondeterministic-eval", "warning", "check-logits",
    "Two eval-mode forward passes of the same batch disagree.",
    "Dropout left on in eval, batch-dependent layers, or randomness in forward make every "
    "evaluation different.",
    "call model.eval(); make forward free of random sampling at evaluation time",
)
TOKENIZER_MODEL_MISMATCH = _declare(
    "tokenizer-model-mismatch", "error", "all",
    "Token ids at or beyond the embedding table, or a vocabulary that disagrees with the model.",
    "Out-of-range ids crash (IndexError / device-side assert); a different tokenizer gives "
    "meaningless embeddings.",
    "use the tokenizer saved with the model (--tokenizer), or resize_token_embeddings after adding tokens",
    explains=("unk-heavy", "random-predictions", "uniform-logits", "constant-predictions",
              "input-independent-logits", "cannot-overfit", "foreign-token-ids"),
    cause_rank=10, confidence=0.9,
    next_command="explain",
    moot=Moot("grad-flow", "token ids do not fit the model's embedding table", 1),
)
UNK_HEAVY = _declare(
    "unk-heavy", "warning", "all",
    "A large share of tokens are the unknown token.",
    "The model cannot see words the tokenizer maps to [UNK]; often the wrong tokenizer or a "
    "cased/uncased mismatch.",
    "use the model's own tokenizer, or one whose vocabulary covers the data",
    next_command="explain",
)
TRUNCATION_HEAVY = _declare(
    "truncation-heavy", "warning", "all",
    "A large share of examples are cut at the maximum length, losing most of their tokens.",
    "The model never sees the end of long inputs; when the label depends on it, accuracy suffers.",
    "raise --max-length (up to the model's limit), or split long documents into chunks",
    next_command="explain",
    from_options=True,
)
SINGLE_CLASS_BATCH = _declare(
    "single-class-batch", "warning", ("check-logits", "smoke-train", "callback"),
    "The examples read hold only one class.",
    "Unshuffled data (all positives first) gives batches of one class: the model learns to predict "
    "the batch's class, and any check on such a slice says nothing.",
    "shuffle the data (or read more examples with --max-examples)",
    next_command="explain",
)
TOO_FEW_EXAMPLES = _declare(
    "too-few-examples", "info", ("check-logits", "callback"),
    "Too few labelled examples for one verdict's test (the finding names the verdict and its test).",
    "With few examples a test cannot tell chance from skill; labeldiag says which verdict lacks data "
    "and how many examples its test needs rather than guess.",
    "pass more labelled examples (see the evidence for how many are needed)",
    next_command="explain",
)

# --- grad-flow -----------------------------------------------------------------------------
NONFINITE_LOSS = _declare(
    "nonfinite-loss", "error", "grad-flow",
    "The loss is NaN or infinite.",
    "Nothing can be learned from a non-finite loss; the first module whose output became "
    "non-finite is usually the culprit.",
    "look at the module named in the evidence: log of zero, division by zero, fp16 overflow, or "
    "bad input values",
    explains=("nonfinite-gradients", "loss-diverged", "cannot-overfit", "parameters-unchanged"),
    cause_rank=120, confidence=0.9,
    next_command="grad-flow",
    moot=Moot("smoke-train", "the loss is already NaN/inf", 2),
)
NONFINITE_GRADIENTS = _declare(
    "nonfinite-gradients", "error", "grad-flow",
    "Some gradients are NaN or infinite.",
    "One optimizer step with a non-finite gradient destroys the weights.",
    "find the operation named in the evidence; clip gradients, use fp32 or bf16 instead of fp16, "
    "avoid sqrt/log at 0",
    explains=("loss-diverged", "cannot-overfit", "parameters-unchanged"),
    cause_rank=130, confidence=0.85,
    next_command="grad-flow",
)
DISCONNECTED_PARAMETERS = _declare(
    "disconnected-parameters", "error", ("grad-flow", "smoke-train"),
    "Trainable parameters that got no gradient at all.",
    "They are not reached by the loss: a detached tensor, an unused module, a loss computed from "
    "numpy values, or a branch the forward skips.",
    "remove .detach()/.item()/numpy conversions between those parameters and the loss, or freeze "
    "them on purpose (requires_grad=False)",
    explains=("cannot-overfit", "parameters-unchanged", "zero-gradients", "vanishing-gradients",
              "collapse-during-training", "slow-convergence"),
    cause_rank=140, confidence=0.85,
    next_command="grad-flow",
)
ZERO_GRADIENTS = _declare(
    "zero-gradients", "warning", "grad-flow",
    "Trainable parameters whose gradient is exactly zero.",
    "They are connected to the loss but receive no signal: dead ReLUs, a zero-multiplied path, "
    "masked positions.",
    "see dead-units and the per-layer table; check masks and multiplications by zero",
    next_command="grad-flow",
)
FROZEN_PARAMETERS = _declare(
    "frozen-parameters", "info", ("grad-flow", "smoke-train"),
    "Parameters with requires_grad=False.",
    "Frozen on purpose is fine; frozen by accident means that part never learns. When nothing at "
    "all is trainable, nothing-trainable is reported too.",
    "set requires_grad=True on what should learn, and pass those parameters to the optimizer",
)
NOTHING_TRAINABLE = _declare(
    "nothing-trainable", "error", ("grad-flow", "smoke-train"),
    "No parameter at all has requires_grad=True.",
    "Training cannot change such a model: the optimizer has nothing to update and every step is a "
    "no-op, so the loss stays where it started.",
    "set requires_grad=True on the parameters you mean to train (look for a freeze in __init__, in "
    "from_pretrained, or a leftover model.requires_grad_(False))",
    explains=("frozen-parameters", "cannot-overfit", "parameters-unchanged"),
    cause_rank=110, confidence=0.95,
    next_command="grad-flow",
    moot=Moot("smoke-train", "nothing is trainable", 1),
)
PARAMS_NOT_IN_OPTIMIZER = _declare(
    "params-not-in-optimizer", "error", ("callback",),
    "Trainable parameters that the optimizer does not hold.",
    "A parameter with requires_grad=True gets a gradient but is never updated when it is missing "
    "from the optimizer's param_groups: that part of the model silently stays at its initial "
    "value (typical: an optimizer built from model.classifier.parameters() only, or built before "
    "a new head was attached).",
    "build the optimizer from every trainable parameter, e.g. "
    "[p for p in model.parameters() if p.requires_grad], after the model is complete",
)
VANISHING_GRADIENTS = _declare(
    "vanishing-gradients", "warning", "grad-flow",
    "Early layers get orders of magnitude less gradient than late ones.",
    "The early layers barely learn; common with saturated activations, very deep stacks or a "
    "post-norm setup without warm-up.",
    "use a learning-rate warm-up, check for saturated activations, or fine-tune with a lower "
    "learning rate for the head only first",
    next_command="grad-flow",
)
EXPLODING_GRADIENTS = _declare(
    "exploding-gradients", "error", "grad-flow",
    "The gradient norm is huge.",
    "One step with a huge gradient throws the weights far away; the loss diverges.",
    "scale logits (temperature, 1/sqrt(d)), clip gradients (max_norm=1.0), lower the learning rate",
    explains=("loss-diverged", "cannot-overfit"),
    cause_rank=250, confidence=0.7,
    next_command="grad-flow",
)
NO_GRAD_TO_LABEL_TOKENS = _declare(
    "no-grad-to-label-tokens", "error", "grad-flow",
    "The loss sends (almost) no gradient into the label-token positions of the layer the scores "
    "are read from.",
    "A label-token model learns only if its label positions receive gradient; a .detach(), "
    "numpy conversion or wrong index cuts them off while the rest still trains.",
    "remove the detach/numpy conversion on the label-token states, and check the positions "
    "(--label-token-positions) match where the label tokens really are",
    explains=("random-predictions", "cannot-overfit", "uniform-logits"),
    cause_rank=170, confidence=0.8,
    next_command="grad-flow",
)
LOSS_TERM_WITHOUT_GRADIENT = _declare(
    "loss-term-without-gradient", "warning", "grad-flow",
    "A term of the model's loss (e.g. supcon_loss beside ce_loss) is sizeable but sends (almost) no "
    "gradient into the encoder.",
    "Such a term costs compute and shapes nothing; typically a shape bug (a contrastive loss fed "
    "[batch, dim] where it expects [batch, n_views, dim]) or a detached input.",
    "check the shapes the term's function expects and that its inputs are not detached; compare its "
    "gradient with the main loss's in the evidence",
    cause_rank=280, confidence=0.7,
    next_command="grad-flow",
)
DEAD_UNITS = _declare(
    "dead-units", "warning", "grad-flow",
    "ReLU-family units that are never active on the batch.",
    "A dead unit passes no gradient, so it never recovers; a dead pre_classifier cuts the head "
    "off from the encoder.",
    "check the initialisation and bias of the layer before the activation, lower the learning rate",
    next_command="grad-flow",
)
SATURATED_ACTIVATIONS = _declare(
    "saturated-activations", "warning", "grad-flow",
    "tanh/sigmoid units stuck at their limits.",
    "A saturated unit has (almost) zero derivative: the gradient through it vanishes (e.g. a "
    "saturated BERT pooler).",
    "scale the pre-activation (layer norm, smaller init), lower the learning rate, or bypass the pooler",
    next_command="grad-flow",
)
LOSS_AT_INIT_OFF = _declare(
    "loss-at-init-off", "warning", ("grad-flow", "smoke-train", "callback"),
    "The loss is far from ln(num_labels) for a freshly initialized head.",
    "A fresh head should predict about uniformly, so its cross-entropy is near ln C; far above "
    "means saturated logits, far below means the labels leak or the loss is not what you think.",
    "check the logit scale (see logit-saturation) and the loss function",
    next_command="grad-flow",
)

# --- smoke-train ---------------------------------------------------------------------------
CANNOT_OVERFIT = _declare(
    "cannot-overfit", "error", "smoke-train",
    "The model could not fit one small batch within the step budget.",
    "A model that cannot overfit 32 examples will not learn from 300,000: something in the model, "
    "loss or optimisation is broken.",
    "follow the hint in the message; '--triage' reruns with the head alone, three learning "
    "rates and fp32 to find which change makes it fit",
    next_command="smoke-train",
)
LOSS_DIVERGED = _declare(
    "loss-diverged", "error", "smoke-train",
    "The loss became NaN/inf or grew far above its start.",
    "The learning rate is too high, the logits are unscaled, or fp16 overflowed.",
    "lower --lr, scale the logits, clip gradients, use bf16/fp32",
    next_command="smoke-train",
)
PARAMETERS_UNCHANGED = _declare(
    "parameters-unchanged", "error", "smoke-train",
    "Trainable parameters that did not change after optimizer steps.",
    "They are not in the optimizer, get no gradient, or the learning rate is zero.",
    "pass all trainable parameters to the optimizer and check the gradient path "
    "('labeldiag grad-flow')",
    next_command="smoke-train",
)
COLLAPSE_DURING_TRAINING = _declare(
    "collapse-during-training", "error", "smoke-train",
    "Predictions on the training batch became constant while it holds several classes.",
    "The optimisation found the majority-class shortcut; typical of a too-high learning rate or a "
    "saturated head.",
    "lower --lr, check the class balance, scale the logits",
    next_command="smoke-train",
)
SLOW_CONVERGENCE = _declare(
    "slow-convergence", "warning", "smoke-train",
    "The batch was fitted, but only late in the step budget.",
    "A healthy classifier overfits 32 examples quickly; needing most of the budget hints at a "
    "too-low learning rate or a hard-to-optimise head.",
    "try a higher --lr or '--triage'",
    next_command="smoke-train",
)
RANKS_DIVERGED = _declare(
    "ranks-diverged", "error", "smoke-train",
    "Data-parallel ranks ended with different parameters.",
    "DistributedDataParallel should keep every replica identical; divergence means unsynchronised "
    "parameters or rank-dependent code.",
    "make sure every trainable parameter is used in forward on every rank (or set "
    "find_unused_parameters) and that randomness is seeded the same",
)

# --- padding, precision, label order, tokenizer provenance, learning rate ----------------------
PAD_TOKEN_MISSING = _declare(
    "pad-token-missing", "error", "all",
    "A decoder classifier (it pools the last non-pad token) has no pad_token_id in its config.",
    "Without a pad id the model cannot find the last real token of a padded row: transformers "
    "refuses batches of more than one, and a pipeline that pads anyway reads a pad position. "
    "labeldiag measured with a temporary pad (said in the report, nothing saved).",
    "model.config.pad_token_id = tokenizer.pad_token_id; only when the tokenizer has no pad token, first "
    "tokenizer.pad_token = tokenizer.eos_token (then save both; 'labeldiag fix' writes exactly this)",
    explains=("padding-sensitive-logits", "random-predictions"),
    cause_rank=50, confidence=0.9,
    fixable=True,
)
PADDING_SENSITIVE_LOGITS = _declare(
    "padding-sensitive-logits", "error", "check-logits",
    "The same examples give different logits when batched with padding than alone.",
    "The head reads pad positions: an ignored attention mask, mean pooling over pads, last-position "
    "pooling that ignores padding, missing position ids under left padding, or a tokenizer pad id "
    "that differs from config.pad_token_id. Predictions then depend on what else is in the batch.",
    "pass attention_mask through and pool only over attended tokens (mask-weighted mean, or the "
    "last non-pad token); make config.pad_token_id equal the tokenizer's pad id",
    explains=("random-predictions", "nondeterministic-eval"),
    cause_rank=180, confidence=0.8,
)
LABEL_ORDER_MISMATCH = _declare(
    "label-order-mismatch", "error", "check-logits",
    "The data declares its class names (a ClassLabel feature, parquet/arrow schema metadata or "
    "--labels) in another order than the model's id2label.",
    "Integer labels mean the data's order while logits mean the model's: every class is scored "
    "against another one (the MNLI checkpoint at 34%).",
    "remap the data's labels into the model's order (datasets: dataset.align_labels_with_mapping("
    "model.config.label2id, 'label')), or fix id2label/label2id if the model was trained in the data's order",
    explains=("label-permutation", "random-predictions"),
    cause_rank=70, confidence=0.85,
    next_command="explain",
)
TOKENIZER_CASING_MISMATCH = _declare(
    "tokenizer-casing-mismatch", "warning", "check-logits",
    "The tokenizer lower-cases text but its vocabulary is cased, or keeps case with an uncased vocabulary.",
    "A lower-casing tokenizer never produces the vocabulary's capitalised tokens (and the reverse "
    "splits capitalised words into [UNK] or pieces): the model sees other ids than in training.",
    "load the tokenizer that was saved with the model (its do_lower_case / normalizer), or pass "
    "--tokenizer with the right one",
    next_command="explain",
)
FOREIGN_TOKEN_IDS = _declare(
    "foreign-token-ids", "warning", "check-logits",
    "Pre-tokenized data whose ids were made by another tokenizer: decoding and re-encoding them "
    "gives other ids for many examples, although the ids are in range and not [UNK].",
    "Ids from another vocabulary are valid numbers that mean other words to this model, so it "
    "classifies noise without any error.",
    "re-tokenize the texts with the model's own tokenizer (or pass --tokenizer with the one that "
    "made the ids, if it is the model's)",
    next_command="explain",
)
HALF_PRECISION_WEIGHTS = _declare(
    "half-precision-weights", "warning", ("grad-flow", "smoke-train"),
    "Trainable parameters are stored in fp16/bf16, with no fp32 master copy.",
    "AdamW updates of order lr are below half precision's resolution for most weights, so they "
    "round to zero (bf16) or overflow to inf/NaN (fp16): loss stuck or NaN. labeldiag trains an fp32 "
    "copy, so smoke-train's own result does not show it.",
    "load the model in fp32 (dtype=torch.float32) and train with mixed precision (bf16=True / "
    "fp16=True in TrainingArguments), which keeps fp32 master weights",
    explains=("parameters-unchanged", "loss-diverged", "cannot-overfit", "nonfinite-loss"),
    cause_rank=160, confidence=0.75,
    next_command="grad-flow",
)
LEARNING_RATE_TOO_HIGH = _declare(
    "learning-rate-too-high", "warning", ("grad-flow", "smoke-train", "callback"),
    "The learning rate is far too high: first-step updates far above the healthy size relative to "
    "the weights in most layers, or a rate above the fine-tuning range whose first step is already 10x the "
    "healthy size (grad-flow; the callback at train begin), or training diverges, collapses or makes no "
    "progress at --lr while lr/10 fits (smoke-train).",
    "Updates that large overwrite the pretrained weights in a few steps: loss spikes, the model "
    "predicts one class (RoBERTa at 50%, XLM-R at 0.318).",
    "lower the learning rate about tenfold (fine-tuning encoders: 1e-5 to 5e-5) and use warm-up",
    explains=("loss-diverged", "collapse-during-training", "cannot-overfit", "exploding-gradients"),
    cause_rank=240, confidence=0.75,
    next_command="smoke-train",
)


# --- issue 23: verdicts that point the right way ----------------------------------------------
PREDICTIONS_WEAKLY_INFORMATIVE = _declare(
    "predictions-weakly-informative", "warning", ("check-logits", "callback"),
    "Predictions depend on the gold label, but weakly: accuracy is far below what the model's confidence "
    "claims, or a label mapping beats the names without explaining the model.",
    "The weights are damaged or untrained (a scrambled layer, noise, a re-initialised head), not the label "
    "names: renaming labels would leave most examples wrong.",
    "look at the model, not the label names: compare its weights with the base checkpoint, run 'labeldiag "
    "doctor' (or grad-flow) on it, and retrain or reload the damaged weights",
)


# --- #20 training-run truths (the Trainer callback; head and tokenizer at load) ----------------
LOGGED_LOSS_SCALE_MISMATCH = _declare(
    "logged-loss-scale-mismatch", "warning", "callback",
    "The Trainer's logged training loss is about gradient_accumulation_steps times the cross-entropy "
    "recomputed from the same micro-batches' logits and labels.",
    "transformers 4.46+ passes num_items_in_batch to a model whose forward takes **kwargs and then no longer "
    "divides the loss by the accumulation steps; a sequence classifier ignores num_items_in_batch, so the "
    "logged loss and the gradients are k times too large (transformers #34191, #35207, #38872).",
    "set model.accepts_loss_kwargs = False before building the Trainer (it then divides by the accumulation "
    "steps), or make the model's loss sum and divide by num_items_in_batch",
)
NO_GRAD_UNDER_CHECKPOINTING = _declare(
    "no-grad-under-checkpointing", "error", ("grad-flow", "callback"),
    "Gradient checkpointing is on and trainable parameters get no gradient from a backward pass.",
    "Reentrant checkpointing (use_reentrant=True) recomputes a block only when its input requires grad; "
    "with frozen embeddings (or LoRA on a frozen base) no input does, so every checkpointed layer is "
    "silently left untrained.",
    'pass gradient_checkpointing_kwargs={"use_reentrant": False} (TrainingArguments or '
    "gradient_checkpointing_enable), or call model.enable_input_require_grads() before training",
    explains=("cannot-overfit", "parameters-unchanged", "zero-gradients", "vanishing-gradients", "slow-convergence"),
    cause_rank=150, confidence=0.9,
)
# doctor: values of 1e37 saturate every logit: whatever the predictions look like follows from them
HEAD_WEIGHTS_GARBAGE = _declare(
    "head-weights-garbage", "error", ("check-logits", "grad-flow", "smoke-train", "callback"),
    "The head holds values far outside any initialiser's range (|value| of 1e4 and beyond, or NaN/inf).",
    "Memory left uninitialised (torch.empty, a skipped init after ignore_mismatched_sizes=True) holds "
    "values around 1e37: the logits overflow, the loss is NaN and the Trainer logs 0.0.",
    "initialise the head (model.classifier.reset_parameters(), or model._init_weights on it) or reload "
    "with a transformers version that initialises mismatched weights",
    explains=("logit-saturation", "label-permutation", "constant-predictions", "random-predictions",
              "nonfinite-logits", "nonfinite-loss", "nonfinite-gradients", "loss-diverged", "exploding-gradients",
              "cannot-overfit", "loss-at-init-off", "uniform-logits"),
    cause_rank=40, confidence=0.95,
)
MODEL_MAX_LENGTH_UNSET = _declare(
    "model-max-length-unset", "info", ("check-logits", "grad-flow", "smoke-train"),
    "The tokenizer's model_max_length is transformers' 1e30 'unset' value.",
    "truncation=True without max_length then cuts nothing: long inputs exceed the model's positions "
    "(index errors) or slow every batch.",
    "set tokenizer.model_max_length to the model's max_position_embeddings (or pass max_length when "
    "tokenizing) and save the tokenizer",
)

# --- task shapes: multi-label, regression (issue 19) ---------------------------------------------
MULTILABEL_NO_PREDICTIONS = _declare(
    "multilabel-no-predictions", "error", ("check-logits", "callback"),
    "Many examples get no label above the threshold (sigmoid 0.5) although they have gold labels.",
    "The model looks accurate because negatives dominate, but it predicts nothing: a 0.5 threshold "
    "applied to raw logits, a head trained against the wrong loss, or a bias pushed far negative by "
    "rare labels.",
    "apply the sigmoid before the threshold, train with BCEWithLogitsLoss (problem_type "
    "'multi_label_classification'), and consider pos_weight or a tuned threshold per label",
)
MULTILABEL_PRIOR_COLLAPSE = _declare(
    "multilabel-prior-collapse", "error", ("check-logits", "callback"),
    "The predicted label probabilities do not depend on the input (one label set for every input, or "
    "per-label AUROC near 0.5): the model learned the label frequencies.",
    "BCE is minimised at first by the label priors alone; a model stuck there outputs the same "
    "probabilities for every text (too high a learning rate, a frozen or disconnected encoder, labels "
    "shuffled against the texts).",
    "run grad-flow and smoke-train on a few examples; check that labels are aligned with the texts and "
    "lower the learning rate",
)
LABELS_NEVER_PREDICTED = _declare(
    "labels-never-predicted", "warning", ("check-logits", "callback"),
    "Labels with gold support that the model never predicts above the threshold.",
    "Rare labels get a strongly negative bias under plain BCE; the model never outputs them, which "
    "micro-averaged scores hide.",
    "weight the positives of rare labels (pos_weight in BCEWithLogitsLoss), tune a threshold per label, "
    "or collect more examples of them",
)
MEAN_PREDICTOR = _declare(
    "mean-predictor", "error", ("check-logits", "callback"),
    "A regression head's predictions carry no information about the target: R² <= 0, their spread is "
    "far below the targets', and their ranks do not follow the targets'.",
    "MSE is first lowered by predicting the mean; a head that never leaves it has not learned the "
    "task (frozen encoder, learning rate too low or too high, targets shuffled against the texts).",
    "scale the targets to zero mean and unit variance, check grad-flow and smoke-train, and check that "
    "targets are aligned with the texts",
)
TARGETS_UNSCALED = _declare(
    "targets-unscaled", "warning", ("check-logits", "smoke-train"),
    "Regression targets are far from zero mean and unit scale, so the loss of a head that starts near "
    "0 is far above 1.",
    "A fresh head outputs values near 0; with targets like ratings 1-10 the first MSE is ~30 and the "
    "gradients are dominated by reaching the range rather than by the texts.",
    "standardise the targets (subtract the mean, divide by the std) for training and invert the "
    "transform on predictions",
)
SCORE_COLLAPSE = _declare(
    "score-collapse", "error", ("check-logits", "callback"),
    "A single-score head (reward model, reranker) gives nearly the same score to every input.",
    "A Bradley-Terry or BCE loss stuck at ln 2 leaves every score equal: the model cannot rank anything "
    "(a head reading a constant token, a frozen or disconnected encoder, a collapsed run).",
    "check which token a decoder reward model reads (the last non-pad token: set pad_token_id), then run "
    "grad-flow and smoke-train on a few pairs",
)
PAIRWISE_CHANCE = _declare(
    "pairwise-chance", "error", ("check-logits", "callback"),
    "The chosen text is not scored above the rejected one more often than chance.",
    "A reward model or reranker at chance gives the policy or the search no signal, whatever its loss "
    "curve looked like.",
    "check that chosen and rejected are not swapped and that the prompt reaches both sides; then run "
    "smoke-train on a few pairs to see whether the model can learn the preference at all",
)
# --- issue 21: sharded runs (FSDP2 / DDP under torchrun or accelerate launch) ---------------------
HEAD_DIFFERS_ACROSS_RANKS = _declare(
    "head-differs-across-ranks", "error", ("grad-flow", "smoke-train"),
    "After loading / initialising, the head's weights differ between ranks (a fingerprint of each "
    "rank's head, gathered from every rank).",
    "FSDP shards each rank's own copy: rank r keeps slice r, so the trained head is stitched from heads "
    "no rank initialised; a checkpoint saved from it, or rank 0's evaluation, is not the model trained "
    "(transformers #28244, #43638).",
    "initialise the head once: seed every rank the same before building the model, or load / "
    "initialise on rank 0 and broadcast (FSDP2: build on the meta device, then load the full state dict "
    "with broadcast_from_rank0)",
)
SHARDED_FORWARD_MISMATCH = _declare(
    "sharded-forward-mismatch", "error", ("grad-flow", "smoke-train"),
    "The same batch gives different logits or head gradients on the FSDP2-sharded model than on the "
    "unsharded one, beyond the precision's rounding (tested on a copy of the model's config cut to 2 "
    "layers).",
    "Training under FSDP then optimises another function than the one evaluated and saved: rank-"
    "dependent initialisation, parameters read outside the module that owns them, or in-place changes "
    "to sharded weights.",
    "make initialisation identical on every rank (same seed, or meta-device init then load), read "
    "weights only inside their module's forward, and never modify parameters in place in forward",
)


# --- issue 20: per-class verdicts, the model's insides, the base model --------------------
CLASSES_NEVER_PREDICTED = _declare(
    "classes-never-predicted", "warning", ("check-logits", "callback"),
    "Classes with support in the data that the model (almost) never predicts, while the other classes are "
    "recognised.",
    "A class the head cannot reach (a zeroed or damaged output row, a class dropped from training) costs "
    "its whole support in accuracy while the predictions still look alive.",
    "compare the head's rows for those classes with the others (labeldiag check-logits --base-model BASE "
    "names damaged tensors), and check that the training data held those classes",
)
MINORITY_CLASSES_IGNORED = _declare(
    "minority-classes-ignored", "warning", ("check-logits", "callback"),
    "Per-class recall near zero for minority classes with enough support, while the other classes are "
    "recognised: the majority class swallows them.",
    "Under class imbalance a model can reach a good accuracy by never predicting the small classes; "
    "constant-predictions stays quiet because the gold labels are skewed too.",
    "weight the loss by inverse class frequency (class weights in CrossEntropyLoss), oversample the "
    "minority classes, or train longer with a lower learning rate; report macro-F1, not accuracy",
)
LAYER_WEIGHTS_ANOMALOUS = _declare(
    "layer-weights-anomalous", "warning", "check-logits",
    "A weight tensor is out of line with the same tensor in the model's other layers (its RMS a robust "
    "outlier: a LayerNorm gain multiplied, a projection scaled or swapped), or holds exactly-zero rows or "
    "columns that no trained weight has.",
    "A buggy patch, a bad merge or a broken conversion damages one layer while the predictions still look "
    "alive: accuracy falls without any other verdict.",
    "compare the named tensors with the checkpoint you started from (labeldiag check-logits --base-model "
    "BASE), redo the conversion or merge that produced them, or restore them (labeldiag fix "
    "--restore-from-base)",
    explains=("residual-stream-anomalous", "attention-degenerate", "classes-never-predicted", "random-predictions",
              "constant-predictions", "uniform-logits", "representation-collapse", "input-independent-logits",
              "logit-saturation"),
    cause_rank=200, confidence=0.8,
)
RESIDUAL_STREAM_ANOMALOUS = _declare(
    "residual-stream-anomalous", "warning", "check-logits",
    "A block of the transformer zeroes or blows up the residual stream: the norm of what it outputs, or how "
    "much it changes its input, is a robust outlier against the other blocks.",
    "Every later layer reads the stream this block wrote: a block that scales it by 10 or wipes it "
    "out degrades every prediction.",
    "inspect the named block's weights (LayerNorm gain, output projections); compare with the base model "
    "(--base-model) to find the damaged tensor",
    explains=("random-predictions", "constant-predictions", "uniform-logits", "representation-collapse",
              "input-independent-logits", "classes-never-predicted", "logit-saturation"),
    cause_rank=220, confidence=0.7,
)
ATTENTION_DEGENERATE = _declare(
    "attention-degenerate", "warning", "check-logits",
    "Every head of one attention layer attends uniformly (query or key projection zeroed), one-hot "
    "(scores scaled up), or mostly to padding, unlike the other layers.",
    "An attention layer that looks at nothing in particular, or at one token, or at pads, passes no "
    "useful context on: the model degrades from inside.",
    "inspect the named layer's query / key weights and the attention mask the model builds; compare "
    "with the base model (--base-model)",
    explains=("random-predictions", "constant-predictions", "uniform-logits", "representation-collapse",
              "input-independent-logits", "classes-never-predicted"),
    cause_rank=210, confidence=0.7,
)
# doctor: a damaged tensor explains the degraded predictions and the layer verdicts it causes (issue 20)
WEIGHTS_FAR_FROM_BASE = _declare(
    "weights-far-from-base", "error", "check-logits",
    "Tensors moved from the base model by orders of magnitude more than the rest of the fine-tune "
    "(zeroed, scaled, swapped or re-initialised).",
    "Fine-tuning moves every tensor a little; a tensor that moved a hundred times more was overwritten "
    "by something other than training.",
    "restore the named tensors from the base model (labeldiag fix --restore-from-base) and re-check, or "
    "redo the step (merge, conversion, patch) that wrote them",
    explains=("layer-weights-anomalous", "residual-stream-anomalous", "attention-degenerate",
              "classes-never-predicted", "random-predictions", "constant-predictions", "uniform-logits",
              "representation-collapse", "input-independent-logits", "logit-saturation"),
    cause_rank=190, confidence=0.9,
    fixable=True, fix_opt_in="--restore-from-base",
)

# --- issue 22: token classifiers (NER, tagging) ------------------------------------------------------
NO_TOKEN_LABELS = _declare(
    "no-token-labels", "error", ("check-logits", "smoke-train"),
    "Every token label is -100, or none survives the alignment of word tags to sub-words and truncation.",
    "Cross-entropy over no labelled token is empty (NaN or 0): the model learns nothing, and every metric "
    "is computed on nothing.",
    "align the word tags with the tokenizer's word_ids (first sub-word gets the tag, the rest -100) and check "
    "that the tag column is the one read (--label-field)",
)
LABEL_ALIGNMENT_OFF = _declare(
    "label-alignment-off", "error", ("check-logits", "callback"),
    "The gold tags fit the model's predictions far better shifted by one sub-word or one word than as given.",
    "Labels aligned on words but fed as sub-words (or the reverse, or the [CLS] offset forgotten) sit one "
    "position off their tokens: the model is trained or scored against its neighbours' tags.",
    "rebuild the labels with the tokenizer's word_ids (tokenize_and_align_labels of the HF token-"
    "classification guide): -100 on special tokens, each word's tag on its first sub-word",
)
BIO_LABELS_MALFORMED = _declare(
    "bio-labels-malformed", "warning", ("check-logits", "callback"),
    "id2label breaks the BIO / IOB2 scheme (an I-X without B-X, tag names outside the scheme, no O), or the "
    "predicted tag sequences break it far more often than the gold ones.",
    "Entity spans are read from B- / I- prefixes: a tag the scheme does not know is never an entity, and "
    "an I-X after O starts a broken span, so entity-level scores and the spans you extract are wrong.",
    "write id2label with the dataset's own tag names in head order (O, B-X, I-X for every type X); if the "
    "predictions break the scheme, decode with a BIO-constrained decoder or train longer",
)
ENTITIES_TRUNCATED = _declare(
    "entities-truncated", "warning", "check-logits",
    "A share of the gold entities lies (partly) beyond --max-length tokens.",
    "Truncation drops those entities from training and evaluation: long documents lose their late "
    "entities silently and recall on them is never measured.",
    "raise max_length, or split long texts into overlapping windows (return_overflowing_tokens=True "
    "with a stride) and merge the predictions",
)


TABLE_TITLES = {
    "check-logits": "check-logits (loading, data, label mapping and collapse):",
    "grad-flow": "grad-flow (loading, data and gradients):",
    "smoke-train": "smoke-train (loading, data and training):",
    "callback": "LabelDiagCallback (inside a transformers Trainer run):",
}


def readme_tables() -> str:
    """README's code tables, one per command, every code a command reports in its table."""
    return "\n\n".join(f"{title}\n\n{markdown_table(command)}" for command, title in TABLE_TITLES.items())


def markdown_table(command: str) -> str:
    """README's table of every code one command reports, with its severity there."""
    lines = ["| code | severity | what it means | what to do |", "|---|---|---|---|"]
    for info in CATALOGUE.values():
        if command in info.commands:
            lines.append(f"| `{info.code}` | {info.severity_for(command)} | {info.what} | {info.fix} |")
    return "\n".join(lines)
