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
# small (about 50 for 2 classes, 80 for 3) while still catching "no better than chance".
DETECTABLE_EFFECT_W = 0.5
POWER = 0.8
# Never fewer labelled examples than this for any verdict, whatever the power computation says.
MIN_LABELLED = 20
# Cramér's V below which a non-significant result is called "independent" (random-predictions).
RANDOM_MAX_CRAMERS_V = 0.2

# --- label-permutation ------------------------------------------------------------------
# Best-assignment accuracy must beat the identity by this much (absolute) and by 3 standard
# errors; a healthy fine-tuned model's best mapping is the identity (gain 0).
PERMUTATION_MIN_GAIN = 0.10
PERMUTATION_MIN_Z = 3.0

# --- constant-predictions ---------------------------------------------------------------
# Share of examples given the single most frequent predicted class.
CONSTANT_MIN_SHARE = 0.95
# ...while that class holds at most this share of the gold labels (so a genuinely skewed test
# set of 95% one class is not called collapse).
CONSTANT_MAX_GOLD_SHARE = 0.80

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
