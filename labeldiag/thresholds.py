"""Every threshold a check uses, in one place, each with the reason for its value.

Calibrated on tiny random/trained models (tests/) and on MiniLM-L6 fine-tuned for a minute on
BBC News and on tweets (examples/realmodels.py, tests/test_real_models.py): a healthy real
classifier gets no error and no warning with these values.
"""

# --- statistics -------------------------------------------------------------------------
# Significance level of every test of independence. 1% rather than 5%: one command runs several
# tests, and a false alarm on a healthy model costs the user more than a late warning.
ALPHA = 0.01
# Effect size (Cohen's w) a verdict must be able to detect with POWER: a classifier worth the
# name has w well above 0.5 (Cramér's V ~ 0.35 for 3 classes), so w=0.5 keeps the required N
# small (47 for 2 classes, 67 for 3, 105 for 5) while still catching "no better than chance".
DETECTABLE_EFFECT_W = 0.5
POWER = 0.8
# Never fewer labelled examples than this for the independence verdicts (label-permutation,
# random-predictions), whatever the power computation says. Their table counts only the classes that
# occur: the gold classes present x the classes predicted (a 27-class head scored on 3 classes, 10 of
# them predicted, needs 109, not the 500 of a 27 x 27 table).
MIN_LABELLED = 20
# Cramér's V below which a non-significant result is called "independent" (random-predictions).
# Bias-corrected V (Bergsma 2013): the plain V of a wide sparse table (3 gold x 27 predicted classes,
# 300 examples) is ~0.29 under independence and would never fall below this.
RANDOM_MAX_CRAMERS_V = 0.2

# --- label-permutation / predictions-weakly-informative (checks/mapping.py) -----------------
# label-permutation needs a best mapping (maximum-agreement assignment of logits to labels) that
# (1) beats the identity by this much accuracy (absolute) and by an exact one-sided McNemar test at
#     ALPHA on the examples the two disagree on; a healthy fine-tuned model's best mapping is the
#     identity (gain 0);
PERMUTATION_MIN_GAIN = 0.10
# (2) explains the model: Cohen's kappa of the mapped predictions against the gold labels (chance from
#     both marginals, so skewed labels do not hide a swapped binary model) at least this, and
# (3) matches the model's own confidence (mean max probability): at most OVERCONFIDENCE below it (fine-tuned
#     heads are calibrated or over-confident) and at most UNDERCONFIDENCE above it (a random head's logits
#     are small: it is far less confident than the mapping is right; label smoothing costs a trained head
#     ~0.03-0.05).
# Calibrated with examples/damaged_models.py on the BBC MiniLM (5 classes, 300 held-out examples):
# rows reordered 94.7% mapped at confidence 0.96 (kappa 0.93); reordered + residual noise 0.3x:
# 93.3% at 0.95. Damaged models: residual noise 2x 30.7% (kappa 0.10); a Xavier-initialised head
# (3 seeds) 64-77% mapped at confidence 0.32-0.37 (0.27-0.45 above it). On the tiny test BERT
# (tests/test_permutation_rule.py), whose features separate 3 classes so cleanly that a random head
# can be 96% right under a mapping, Xavier heads are 0.11-0.44 above their confidence.
# Healthy models: BBC 94.7% at 0.96; tweets 67.3% at 0.67 (the hardest healthy case the kappa floor must
# let through when permuted); tiny BERT 98% at 0.98. A reduced real binary tweet model with its names
# swapped and 70% of its labels one class (tests/test_real_situations.py): 75% mapped at 0.74, kappa
# 0.29 (0.17 over the majority share, which is why the kappa is Cohen's).
PERMUTATION_MIN_KAPPA = 0.25
PERMUTATION_MAX_OVERCONFIDENCE = 0.15
PERMUTATION_MAX_UNDERCONFIDENCE = 0.08
# predictions-weakly-informative: a significant dependence on the gold label where a mapping beats the
# identity without explaining the model, or where accuracy falls this far below the mean max probability
# (the model claims far more than it delivers). Healthy fine-tunes are within ~0.05 (BBC 0.01, tweets 0.00).
WEAK_MIN_CONFIDENCE_GAP = 0.3
# fix: the corrected copy's re-check may fall short of the accuracy a label-permutation's mapping promised
# by at most this much. Renaming labels leaves every prediction as it was, so the accuracies agree exactly on
# the same data and device; the margin only absorbs kernel nondeterminism on a GPU (a few ties flipping).
FIX_MAX_ACCURACY_SHORTFALL = 0.01

# --- constant-predictions ---------------------------------------------------------------
# Share of examples given the single most frequent predicted class.
CONSTANT_MIN_SHARE = 0.95
# ...while that class holds at most this share of the gold labels (so a genuinely skewed test
# set of 95% one class is not called collapse).
CONSTANT_MAX_GOLD_SHARE = 0.80
# Then an exact one-sided McNemar test at ALPHA decides (is the class predicted more often than it is
# gold, on the same examples?): 0.5^7 < 0.01, so 7 examples predicted into that class while belonging
# to another suffice, e.g. 11 examples of 3 balanced classes all predicted one class. No power
# analysis: when 64 of 64 inputs get one class while the gold labels hold three, p ~ 1e-13.

# --- input-independent-logits -----------------------------------------------------------
# Spread of logits across inputs relative to their scale: std over examples / (mean |logit| +
# eps). Healthy trained models: > 0.3. A model reading nothing: ~0 (float noise).
INPUT_INDEPENDENT_MAX_SPREAD = 0.01
# With the content blanked (pad/mask tokens), the predicted class stays the same for at least
# this share of examples and logits move by at most INPUT_INDEPENDENT_MAX_SPREAD of their scale.
INPUT_INDEPENDENT_MIN_AGREEMENT = 0.98
# Number of examples used for the blanked-input baseline and for the second eval pass: enough
# for a stable verdict, small enough to cost ~5% of the main pass on 2,048 examples.
SUBSET_FOR_EXTRA_PASSES = 64

# --- uniform-logits ---------------------------------------------------------------------
# Mean predictive entropy / ln C. A fresh head on a pretrained encoder: ~0.99; fine-tuned
# MiniLM on tweets (a hard, noisy task): ~0.5; on BBC: ~0.1.
UNIFORM_MIN_ENTROPY_RATIO = 0.9
# ...and when those near-uniform predictions are nonetheless accurate, the expected calibration error
# (15 bins) decides between info and warning. Near-uniform probabilities are ~1/C, so ECE ~ accuracy -
# 1/C: a head whose logits were divided by 20 (accuracy 0.98 over 5 classes, mean max probability 0.23)
# has ECE ~0.75, a weights-x0.002 head on the 3-class test BERT ~0.6; a barely-trained head (accuracy
# 0.55 over 3 classes at max probability 0.4) ~0.15. At 0.25 the probabilities understate the accuracy
# by a quarter: anyone thresholding on them is misled (warning); below it the head is merely timid (info).
UNIFORM_MIN_ECE = 0.25

# --- logit-saturation -------------------------------------------------------------------
# Median gap between the top two logits. exp(-30) ~ 1e-13: the softmax is one-hot to float
# precision. Confident fine-tuned heads have gaps of 5-12, unscaled 768-dim dot products
# hundreds.
SATURATION_MIN_MEDIAN_GAP = 30.0
# ...or the cross-entropy on the gold labels is this many times ln C (one-hot and wrong).
SATURATION_MIN_LOSS_RATIO = 5.0

# --- representation-collapse ------------------------------------------------------------
# Fine-tuned [CLS]/pooler features are strongly anisotropic (mean pairwise cosine 0.6-0.95 on
# MiniLM), so the cosine alone is not enough: collapse also needs the features' spread around
# their mean to be tiny relative to the mean's norm.
COLLAPSE_MIN_MEAN_COSINE = 0.995
COLLAPSE_MAX_RELATIVE_SPREAD = 0.05
# Features of at most this many examples (in data order) enter the statistics: the pairwise cosine
# needs an n x n Gram matrix, and 1,024 rows estimate a mean cosine to about 1e-3.
FEATURE_SAMPLE = 1024

# --- nondeterministic-eval --------------------------------------------------------------
# Max |difference| of two eval passes relative to the logits' scale. fp32 kernels reorder sums
# (1e-6 relative); bf16/fp16 are looser.
NONDETERMINISTIC_MAX_REL_DIFF = {"fp32": 1e-4, "bf16": 5e-2, "fp16": 1e-2}

# --- tokenizer --------------------------------------------------------------------------
# Share of non-special tokens that are [UNK]. Tweets with emoji under MiniLM's uncased vocab:
# under 1%. A cased/uncased or foreign-vocab mismatch: tens of percent.
UNK_MAX_SHARE = 0.05
# truncation-heavy: at least this share of examples are cut, and the truncated examples keep on
# median less than TRUNCATION_MAX_KEPT of their tokens. Reported only when --max-length is
# below what the model accepts (otherwise the user has nothing to raise).
TRUNCATION_MIN_SHARE = 0.5
TRUNCATION_MAX_KEPT = 0.5

# --- single-class-batch -----------------------------------------------------------------
# Warn only when at least this many labelled examples were read and all share one class.
SINGLE_CLASS_MIN_EXAMPLES = 8

# --- smoke-train ------------------------------------------------------------------------
# Rows read from DATA to draw the stratified batch from: 20x --max-examples finds every class
# of a shuffled file with 100 classes, while tokenizing 640 rows (the default) costs well under
# a second.
SMOKE_POOL_FACTOR = 20
# Pre-flight on a trained head (issue 23): check-logits' label-permutation judge on up to this many
# labelled rows of that pool before training. The independence test needs 67 examples for 3 classes and
# 105 for 5, 231 for 12 (required_examples): 256 covers up to 12 classes in one forward pass.
SMOKE_LABEL_CHECK_EXAMPLES = 256
# loss-diverged: the loss exceeds this multiple of max(initial loss, ln C). Healthy runs only go
# down from their start (Adam's first steps may wobble by tens of percent); a too-high learning
# rate jumps to tens or hundreds at once. Anchoring on ln C as well keeps a trained model's tiny
# start loss (0.01) from turning a harmless bump into a verdict.
SMOKE_DIVERGED_FACTOR = 3.0
# slow-convergence: fitted, but only after this share of --steps. A healthy fresh head on a
# pretrained encoder overfits 32 examples in 10-40 AdamW steps at 1e-4 (MiniLM, tiny BERT), so
# the default budget of 100 leaves a 2.5x margin; fitting in the last quarter means that margin
# is gone.
SMOKE_SLOW_FIT_SHARE = 0.75
# collapse-during-training: predictions on the batch are one class for the last this many
# measured steps (or all steps when fewer ran). One step can pass through a single class on the
# way to a fit; five in a row at the end is where the run settled.
SMOKE_COLLAPSE_LAST_STEPS = 5
# |logit| above which softmax is one-hot to float precision (exp(-30) ~ 1e-13): with saturated
# logits a wrong example's gradient is ~0 or huge, the hint cannot-overfit gives.
SMOKE_SATURATED_LOGIT = 30.0
# cannot-overfit hint "the loss barely moved": final loss above this share of the initial loss.
SMOKE_STUCK_LOSS_SHARE = 0.9
# "fitted" for a loss with a floor above 0 (CE + 0.2 x SupCon stays near 0.2 x 4.3 at 100% accuracy):
# batch accuracy 100% on each of the last SMOKE_PLATEAU_STEPS steps while the total loss of the last
# step is within SMOKE_PLATEAU_MAX_DROP (relative) of the lowest loss of the steps before that window:
# it has stopped falling. Five steps at 1% tell a floor from a loss still halving every few steps.
SMOKE_PLATEAU_STEPS = 5
SMOKE_PLATEAU_MAX_DROP = 0.01
# ranks-diverged: max |parameter difference| between data-parallel ranks, relative to the
# largest |parameter|. DDP all-reduces gradients so replicas match bit for bit; 1e-6 leaves
# room for a nondeterministic reduction order without hiding real divergence.
SMOKE_RANKS_MAX_REL_DIFF = 1e-6
# give-up rule (doctor's smoke stage, issue 18; measure.training.cannot_reach_target): stop a run that cannot
# be fitted in the steps left. A fit needs 100% batch accuracy, so both the loss and the accuracy must be out of
# reach: only after SMOKE_GIVE_UP_MIN_STEPS steps, when SMOKE_GIVE_UP_SPEEDUP x the steepest fall of log(loss)
# over SMOKE_GIVE_UP_WINDOW steps seen so far still misses --target-loss and SMOKE_GIVE_UP_SPEEDUP x the
# accuracy's average rise (first and last window's means) still misses 100%, both kept up to the end.
# Validated (benchmarks/bench_doctor_callback.py --validate-give-up): applied after the fact to every prefix
# of full 100-step smoke-train curves it never fires in a run that fits. Tiny headless BERT (tests' trained
# model without its head): lr 1e-9 / 1e-6 / 1e-5 / 3e-5 / 1e-4 never fit and are stopped at steps 20 / 20 / 20
# / 29 / 93; 2e-4 ... 3e-3 fit at steps 50-67 and are never stopped. BBC MiniLM without its head (64 tokens):
# 3e-5 fits at step 69 (plateau criterion) and 1e-4 at step 80, never stopped. Dropout makes the batch
# accuracy noisy (16 examples: +-6 points a step), which is why its rise is averaged, not its steepest window.
SMOKE_GIVE_UP_MIN_STEPS = 20
SMOKE_GIVE_UP_WINDOW = 5
SMOKE_GIVE_UP_SPEEDUP = 3.0
# doctor's settled fit (measure.training.fit_settled): 100% batch accuracy for this many steps in a row with the
# loss still falling. From there a fit follows (the loss reaches --target-loss or stops falling at 100%, the
# plateau criterion); BBC MiniLM with a fresh head: 100% from step 4, under 0.05 only at step 80 (64 tokens).
SMOKE_SETTLED_FIT_STEPS = 10
# doctor's smoke stage trains on inputs cut to this many tokens (unless --max-length is shorter): fitting
# 16 examples tests the model, not the length of its inputs, and a step costs about linearly in length.
DOCTOR_SMOKE_MAX_LENGTH = 64
# doctor's lower-rate rerun (learning-rate-too-high) gets this share of --steps, with the give-up rule.
DOCTOR_RERUN_STEP_SHARE = 0.5

# --- grad-flow --------------------------------------------------------------------------
# vanishing-gradients: gradient norm of the earliest encoder block / the latest. Post-norm residual
# stacks pass gradient almost undamped: the trained test BERT gives 1.6, and tiny BERTs at init
# (seeds 1-3, tests/test_grad_flow.py) stay well clear. "Orders of magnitude" starts at 1e-2.
VANISHING_MAX_RATIO = 1e-2
# exploding-gradients: total L2 gradient norm over all trainable parameters (mean loss over the
# batch). The trained test BERT gives 2.4; tiny BERTs at init and a fresh head on the trained
# encoder stay far below (tests); fine-tuning recipes clip at 1.0. A fresh head whose logits are
# multiplied by 1000 goes far above.
EXPLODING_MIN_TOTAL_NORM = 1e3
# no-grad-to-label-tokens: mean gradient norm at label-token positions of the last layer / the
# largest per-position norm of that layer (mean over examples). A label-token model reads its
# scores there, so the share is of order 0.1-1; a detached read gives exactly 0. 1e-3 leaves room
# for float noise reaching those positions through attention.
LABEL_TOKEN_MIN_SHARE = 1e-3
# dead-units: share of a ReLU-family module's units that are <= 0 on every row of the batch. A
# fresh random layer on strongly anisotropic pretrained [CLS] features leaves up to about half
# its units inactive on one batch by chance, so warn only when three quarters are dead.
DEAD_UNITS_MIN_SHARE = 0.75
# saturated-activations: a tanh unit is at its limit when |y| > 0.99 (derivative < 0.02), a
# sigmoid when y < 0.01 or > 0.99 (derivative < 0.01); a unit is saturated when that holds on
# 90% of rows, and a module when half its units are. The trained test BERT's pooler stays below
# the bar (tests); a pooler with its bias pushed to 20 saturates 100% of units.
SATURATED_TANH_ABS = 0.99
SATURATED_SIGMOID_MARGIN = 0.01
SATURATED_MIN_ROW_SHARE = 0.9
SATURATED_MIN_UNIT_SHARE = 0.5
# loss-at-init-off (grad-flow and smoke-train, fresh head only): a fresh head's logits are
# ~N(0, 0.02*sqrt(H)), so its loss is ln C within a few percent (0.9-1.2 ln C seen on tiny and real
# models); double means confidently wrong saturated logits, half means labels leaking into the
# input or a loss that is not cross-entropy over the labels. One band for both commands.
LOSS_AT_INIT_MAX_RATIO = 2.0
LOSS_AT_INIT_MIN_RATIO = 0.5
# The layer x position heat map (--plot with label tokens) covers at most this many positions.
GRAD_HEATMAP_MAX_POSITIONS = 128

# --- grad-flow: loss terms -------------------------------------------------------------
# A returned *_loss term of at least this value whose gradient into the encoder is below this
# share of the strongest term's. The SEEDS CE + SupCon bug gives 1e-4 (1.5e-5 vs 0.18); healthy
# auxiliary terms are within one or two orders of magnitude of CE (0.1-10x).
LOSS_TERM_MIN_VALUE = 0.1
LOSS_TERM_MAX_GRAD_SHARE = 1e-3

# --- padding, precision, label order, tokenizer provenance, learning rate ----------------------
# padding-sensitive-logits: examples run alone (one unpadded batch per distinct length) and batched
# with padding. A head that reads pads changes nearly all of them, so a dozen suffice.
PADDING_SAMPLE = 12
# max |delta logit| / mean |logit| allowed per precision. A mask-respecting model differs only by
# kernel rounding (fp32 below 1e-5 on CPU, TF32 on GPU ~1e-3; half precision ~1e-2); MiniLM
# mean-pooled over pads moves by tens of percent (calibration in the issue-11 note).
PADDING_MAX_REL_DELTA = {"fp32": 1e-2, "bf16": 1e-1, "fp16": 5e-2}
# ... and the padded delta must be this many times what two identical unpadded passes differ by:
# dropout left on in eval (nondeterministic-eval) moves logits as much as padding would.
PADDING_MIN_OVER_REPEAT = 10.0
# tokenizer-casing-mismatch: share of the data's capitalised words whose ids differ only through
# case handling (lower-casing tokenizer, cased vocabulary holding the word) or, with an uncased
# vocabulary, share of capitalised words a case-keeping tokenizer turns into other ids. A
# consistent tokenizer gives 0; a few percent are proper nouns that are genuinely out of vocabulary.
CASING_MIN_SHARE = 0.2
CASING_MIN_WORDS = 20  # fewer capitalised words than this prove nothing either way
# A vocabulary is uncased when at most this share of its alphabetic entries hold a capital
# (bert-base-uncased / MiniLM: 0; cased vocabularies: tens of percent).
UNCASED_VOCAB_MAX_SHARE = 0.01
# foreign-token-ids: share of pre-tokenized examples whose ids change on decode -> re-encode
# with the model's tokenizer. The model's own tokenizer round-trips nearly every example (a few
# break on normalisation: accents, odd whitespace); another vocabulary breaks nearly all.
FOREIGN_IDS_MIN_SHARE = 0.5
FOREIGN_IDS_SAMPLE = 64
# half-precision-weights: share of trainable half-precision elements whose AdamW first step (a
# move of lr per element) rounds away (|w| * half the type's epsilon > lr) or overflows.
# At lr 2e-5, bf16 loses every weight above 2.5e-3 (nearly all of a transformer); warn from 10%.
HALF_PRECISION_MIN_LOST_SHARE = 0.1
# learning-rate-too-high (grad-flow): the first AdamW step moves a layer by update/weight ratio;
# ~1e-3 is the healthy order (Karpathy's rule of thumb). Calibrated on the trained test BERT and
# MiniLM: 2e-5 gives ~1e-4 ... 1e-3, 1e-3 gives 1e-2 ... 5e-2, 1e-1 gives 1 ... 5. Above 0.1 per
# step a layer is rewritten within ten steps; warn when most layers are there.
LR_MAX_UPDATE_RATIO = 1e-1
LR_MIN_LAYER_SHARE = 0.5
# learning-rate-too-high (smoke-train): when training goes wrong at --lr, one rerun at
# --lr / LR_RERUN_FACTOR (the "RoBERTa at 50%" threads were fixed by a tenfold lower rate).
LR_RERUN_FACTOR = 10.0
# A run that ends no lower than it started is rerun only above smoke-train's default rate (1e-4):
# at usual rates that is a model that cannot learn (other codes), and a rerun would double the cost.
LR_STUCK_MIN_LR = 1e-4

# grad-flow's table marks a layer whose first-AdamW-step update/weight ratio is outside this band:
# ~1e-3 is the usual healthy order for fine-tuning; 10x above moves weights too fast, 100x below
# barely moves them.
UPDATE_RATIO_MARK_LOW = 1e-5
UPDATE_RATIO_MARK_HIGH = 1e-2

# --- issue 20: per-class verdicts, weights and activations, base model ------------------
# classes-never-predicted / minority-classes-ignored. A class enters a test with this support:
# 0 hits of 7 under a null recall of 0.5 gives p = 0.5^7 < ALPHA.
CLASS_MIN_SUPPORT = 7
# Null hypothesis of the recall test: a class the model has learned is recalled at least this often.
# The healthy tweets MiniLM (3 noisy sentiments) recalls its weakest class at ~0.5, BBC's at > 0.9.
CLASS_NULL_RECALL = 0.5
# "near zero": a failed class's recall, and its predictions as a share of its support (never predicted).
CLASS_MAX_RECALL = 0.1
CLASS_MAX_PREDICTED_RATIO = 0.1
# "the others are fine": support-weighted recall of the classes that did not fail.
CLASS_OTHERS_MIN_RECALL = 0.5
# A minority class holds at most this share of the largest class's support.
MINORITY_MAX_SUPPORT_RATIO = 0.5
# --- #20 training-run truths ------------------------------------------------------------------
# logged-loss-scale-mismatch: the logged loss over the cross-entropy recomputed from the same
# micro-batches' logits is exactly 1 when the Trainer scales correctly (same logits, same labels) and
# exactly k when it forgets to divide by the accumulation steps; allow 25% for label smoothing-free
# custom losses (class weights) and the epoch's last short accumulation, which keeps 1 and 2 apart.
LOSS_SCALE_TOLERANCE = 0.25
# below this recomputed loss the batch is fitted and the ratio is noise over tiny numbers
LOSS_SCALE_MIN_LOSS = 1e-3
# head-weights-garbage: the healthy MiniLM fine-tunes' heads (BBC, tweets) stay below 0.13 in
# |value|, and no tensor of theirs exceeds 8; torch.empty leaves 1e37-scale values. 1e4 is five
# orders above a healthy head and far below garbage.
HEAD_GARBAGE_MIN_ABS = 1e4
# model-max-length-unset: transformers' VERY_LARGE_INTEGER is int(1e30); a real limit is < 1e6.
MODEL_MAX_LENGTH_SENTINEL = 1e29
# learning-rate-too-high (callback, grad-flow): a rate above the usual fine-tuning range (1e-5..1e-4
# for full fine-tuning; head-only and LoRA runs go up to 1e-3) whose first AdamW step moves the
# median layer by more than UPDATE_RATIO_MARK_HIGH (10x the healthy ~1e-3) of its weight norm.
LR_FINE_TUNE_MAX = 1e-3
# --- task shapes: multi-label, regression (issue 19) ------------------------------------
# A label is testable (AUROC, label matching) with at least this many positives and negatives:
# below 5 the Mann-Whitney normal approximation is poor.
MULTILABEL_MIN_SUPPORT = 5
# multilabel-no-predictions: the share of examples with gold labels that get no label at the
# threshold. A healthy multi-label model leaves a few such examples (tiny trained models: < 10 %);
# the verdict needs a one-sided binomial test against this share at ALPHA and an observed share of
# at least MULTILABEL_EMPTY_SHARE, so it only fires when most labelled examples get nothing.
MULTILABEL_EMPTY_NULL_SHARE = 0.25
MULTILABEL_EMPTY_SHARE = 0.5
# multilabel-prior-collapse: one label set for every input when no label's probability varies
# across inputs by more than this (std; a trained head: 0.2-0.45, a zeroed head: 0).
MULTILABEL_COLLAPSE_PROB_STD = 0.01
# ... or, with labels, no logit's AUROC for any gold label differs from 0.5 (two-sided Mann-Whitney,
# Bonferroni over the K x K cells at ALPHA) and none is farther from 0.5 than this.
MULTILABEL_COLLAPSE_AUROC_GAP = 0.1
# labels-never-predicted: a label with at least this many gold positives that is never predicted.
# If the model predicted it for even 1 in 3 of its positives, 0 predictions among 12 would have
# probability (2/3)^12 = 0.008 < ALPHA.
MULTILABEL_NEVER_MIN_SUPPORT = 12
# label-permutation on a multi-label head (checks/mapping.py): the best matching of labels to logits by
# per-label AUROC must raise the moved logits' mean AUROC by at least this over the identity, and each
# moved logit must rank its matched label with at least MIN_AUROC (and Mann-Whitney p < ALPHA / moved).
# Real multi-label MiniLM (examples/real_shapes.py multilabel, BBC, 300 held out; per-label AUROC 0.915-0.962):
# healthy, the matching is the identity; rows swapped / 3-cycled / reversed: gain 0.52-0.53, moved logits
# at AUROC 0.915-0.962 (p < 1e-29), and fix renames them back to the healthy metrics. Damaged heads must
# not pass: 4 Xavier heads reach at most AUROC 0.70 for another label (hence 0.8), residual noise 2x keeps
# the identity. Tiny trained heads with two rows swapped: gain ~0.5, mapped AUROC > 0.95.
MULTILABEL_PERMUTATION_MIN_GAIN = 0.2
MULTILABEL_PERMUTATION_MIN_AUROC = 0.8
# --- regression
# mean-predictor: R^2 <= 0, prediction std below this share of the targets' std, and no rank
# information (Spearman permutation test p >= ALPHA). Tiny trained regressors: ratio 0.6-1.0.
REGRESSION_MEAN_STD_RATIO = 0.1
REGRESSION_PERMUTATIONS = 2000
# targets-unscaled: root mean square of the targets (the MSE of a head that starts near 0) above
# this: 10x the loss of standardised targets, so the head spends its first steps reaching the range.
REGRESSION_TARGET_RMS_MAX = 3.2
# smoke-train on a regression batch: an example counts as fitted when its squared error is below
# this share of the targets' variance (|error| < 0.5 std), so "every example right" plus the
# MSE / variance under --target-loss mirrors the single-label rule (100 % accuracy, loss under target).
# Calibrated on the real tweet-sentiment regressor (examples/real_shapes.py regression, defaults): at
# 0.3 std it was still 81 % "right" after 100 steps (MSE / variance 0.056, a false cannot-overfit);
# at 0.5 std it fits at step 45 (MSE / variance 0.038). A mean predictor sits at MSE / variance 1.
SMOKE_REGRESSION_EXAMPLE_TOLERANCE = 0.25
# --- pairwise scorers (reward models, rerankers)
# score-collapse: the std of the scores over every scored text below this (logit units): the
# Bradley-Terry preference of any pair is then within sigmoid(0.02) = 0.505 of a coin flip.
# Trained tiny reward models: std ~1-3.
SCORE_COLLAPSE_MAX_STD = 0.01
# pairwise-chance: at least this many pairs (a model preferring the chosen text 75 % of the time
# is told from chance at ALPHA with power ~0.9 at 40 pairs), and a one-sided binomial test
# (chosen > rejected more often than 1/2) that fails at ALPHA.
PAIRWISE_MIN_PAIRS = 40
# --- issue 21: sharded runs (FSDP2 / DDP under torchrun or accelerate launch) -------------------
# Seconds a rank waits inside one collective before the run stops on every rank
# (init_process_group's timeout; LABELDIAG_DIST_TIMEOUT overrides it). NCCL's own default is
# 10 minutes; a smoke-train step of a 70B model stays far below it.
DIST_TIMEOUT_SECONDS = 600.0
# Bytes per parameter of a full training copy: fp32 weights, gradients and AdamW's two moments.
SHARD_TRAINING_BYTES_PER_PARAMETER = 16
# With a launcher and no --shard: DDP (a full copy per rank, no gather per layer) while a copy's
# training state takes at most this share of one rank's memory, leaving the rest for activations;
# FSDP2 above it.
SHARD_DDP_MAX_SHARE = 0.5
# sharded-forward-mismatch: max |sharded - unsharded| / max |unsharded| of the logits and of the
# head gradients, per compute precision. Measured on healthy tiny Llama and BERT (2 and 4 gloo
# ranks, fp32): logits equal to 0 and head gradients to <= 1e-7 (the reduce-scatter's summation
# order); fp32 allows 1e-4, the half precisions their unit roundoff times ~10 layers' accumulation.
SHARDED_FORWARD_TOLERANCE = {"fp32": 1e-4, "bf16": 5e-2, "fp16": 1e-2}
# Examples of the batch the 2-layer copy is run on, the same on every rank.
SHARDED_FORWARD_EXAMPLES = 8
# --lora: without the flag, smoke-train trains a LoRA adapter (and the head) instead of every weight above
# this many parameters. A full training copy takes SHARD_TRAINING_BYTES_PER_PARAMETER (16 B) per parameter,
# so 1e9 parameters need ~16 GB before activations: more than a smoke test should ask of one GPU, while a
# LoRA copy keeps only the frozen weights (4 B) and the adapters' small state. MiniLM (22M) and BERT-base
# (110M) stay full fine-tunes; Llama-3.2-1B (1.24B) and larger classifiers get LoRA.
LORA_DEFAULT_ABOVE_PARAMETERS = 1_000_000_000
# The rank picked then (peft's documented starting point; alpha = 2 x rank, dropout 0 so steps are deterministic).
LORA_DEFAULT_RANK = 8
# smoke-train's learning rate under LoRA when --lr is not given: adapters need about 10x the full
# fine-tuning rate (peft's and the QLoRA paper's recipes: 1e-4..2e-4 for LoRA against 1e-5..2e-5). Measured
# with --lora 8 on the healthy real MiniLMs (32 examples): at the full fine-tuning default 1e-4, tweets is
# not fitted in 100 steps (loss 0.49, a false cannot-overfit); at 1e-3 it fits at step 38 (see the report).
LORA_DEFAULT_LR = 1e-3
# layer-weights-anomalous: a tensor against the same tensor in the other blocks (at least this many).
# Robust z of log RMS (median and MAD of the others, MAD at least WEIGHT_LOG_MAD_FLOOR) and the ratio to
# their median, per kind. Healthy MiniLM-L6 fine-tunes (BBC, tweets; examples/fault_injection.py): LayerNorm
# gains within 1.2x of their siblings, projection matrices within 1.5x, biases within 3x.
WEIGHT_MIN_SIBLINGS = 4
WEIGHT_LOG_MAD_FLOOR = 0.1
WEIGHT_MAX_Z = 5.0
WEIGHT_MIN_RATIO = {"norm-gain": 1.5, "norm-bias": 5.0, "matrix": 2.0, "bias": 5.0, "other": 2.0}
# Exactly-zero rows or columns in a 2-D weight (more than any sibling has): trained weights have none.
WEIGHT_MIN_ZERO_ROWS = 2
# Tensors whose siblings' RMS and own RMS are both below this are not scale-tested: a key bias (which
# softmax ignores, so training leaves it at its zero init) varies by noise.
WEIGHT_NEAR_ZERO_RMS = 1e-3
# residual-stream-anomalous: per block (the first left out), log of the median token update |out - in| against the
# other blocks (robust z, MAD floor), on the first ACTIVATION_SAMPLE examples of the forward.
STREAM_LOG_MAD_FLOOR = 0.1
# Blocks judged (after the first): a damaged block disturbs the next one's update too, so the median of
# five still stands on three sound blocks.
STREAM_MIN_BLOCKS = 5
STREAM_MAX_Z = 5.0
STREAM_MIN_RATIO = 2.0
ACTIVATION_SAMPLE = 64
# attention-degenerate: every head of a layer with normalised entropy (entropy / ln real keys) above this
# is uniform; with a mean largest weight above this, one-hot; and attention mass on padding above this.
# Healthy MiniLM fine-tunes: some single heads are one-hot (largest weight 1.0), but in every layer some
# head keeps its largest weight under 0.3 and its entropy under 0.9; a query scaled 100x gives 0.94.
ATTENTION_UNIFORM_MIN_ENTROPY = 0.98
ATTENTION_ONE_HOT_MIN_WEIGHT = 0.9
ATTENTION_MAX_PAD_MASS = 0.2
# weights-far-from-base: a tensor's |W - W_base| / |W_base| against its siblings' median (or all tensors'
# median outside the stack), the median floored at BASE_CHANGE_FLOOR so an untouched (frozen) group does not
# make any move look huge. Healthy MiniLM fine-tunes move each tensor by 0.1-8% and within 10x of siblings.
BASE_MIN_CHANGE = 0.3
BASE_MIN_RATIO = 10.0
BASE_CHANGE_FLOOR = 0.01
# ...and the other layers' median (mean entropy, mean largest weight, pad mass) at least this far below the
# bar: a tiny barely-trained model attends near-uniformly in several layers, which is not a fault of one.
ATTENTION_SIBLING_MARGIN = 0.1

# --- token classification (issue 22) --------------------------------------------------------------
# constant-predictions per token: NER data is mostly O (CoNLL-2003 ~83% of tokens, the rule-tagged BBC
# sentences of examples/token_models.py ~80%), so the sequence-level cap of 0.80 would let an all-O head
# pass; up to this gold share the exact McNemar test (entity tokens predicted O vs O tokens predicted as
# entities) still tells an all-O head (b = every entity token, c = 0) from a healthy one.
TOKEN_CONSTANT_MAX_GOLD_SHARE = 0.95
# label-alignment-off: of the gold tags right in exactly one of the two places (in place, one position
# away), at least this share is right only shifted, and the exact McNemar test is below ALPHA / 4 (four
# shifts tried). Measured on the discordant tags because O-next-to-O agreement dominates both accuracies:
# the real MiniLM tagger (examples/token_models.py, 90% O) reads 0.98 in place and 0.78-0.83 shifted
# (share right only shifted 0.04-0.06); its word tags written without word_ids alignment read 0.78 in
# place and 0.89 shifted, only 11 points apart, but 0.78 of the discordant tags are right only shifted.
ALIGNMENT_MIN_DISCORDANT_SHARE = 2 / 3
# Gold tags compared before a shift is judged (fewer: no verdict).
TOKEN_MIN_LABELS = 20
# bio-labels-malformed from predictions: I-X tags that continue no X entity, predicted at this share of the
# scheme positions or more, at least BIO_BREAK_RATIO times as often as in the gold, McNemar p < ALPHA.
# The real MiniLM tagger breaks it at 0.55% of positions (47 of 8,619), the tiny test tagger at 0.2%; a
# head trained on too little data (150 sentences) at 2.4%, the tiny tagger with B-PER / I-PER swapped 7.9%.
BIO_MIN_BREAK_SHARE = 0.02
BIO_BREAK_RATIO = 3.0
# entities-truncated: a share of the gold entities lying (partly) beyond --max-length, and at least this many.
ENTITIES_CUT_MIN_SHARE = 0.02
ENTITIES_CUT_MIN = 3
