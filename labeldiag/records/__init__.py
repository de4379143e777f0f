"""Records of measurements: small dataclasses of plain numbers (no torch objects), and the pure
functions that compute the per-shape summaries from numbers.

measure/ fills them, checks/ judges them (every threshold lives in thresholds.py), render/ draws
them. `from labeldiag.records import X` reaches every record.
"""
from labeldiag.records.training import (  # noqa: F401
    ActivationStats, GradFlow, HeadAcrossRanks, HiddenStateGrad, InitialLoss, LabelTokenGrad, LayerGrad,
    LossScaleRecord, LowerRateRerun, NonFinite, ParameterCensus, ShardedForward, TrainingTarget, TrainingTrace,
    UpdateRatios, group_layers,
    ActivationRow, GradFlowSummary, GradientHeatmap, LabelTokenRow, LabelTokenSummary, LayerRow,
    CurvePoint, Preflight, TrainingSummary, TriageRun,
    BatchMakeup, GradFlowPass, LossComponent, RankSpeed, ShardedStart,
)
from labeldiag.records.model import (  # noqa: F401
    Activations, AttentionStats, BaseDistance, BlockStats, HalfPrecisionWeights, HeadValues, LoadAudit, ModelInfo,
    TensorStats,
)
from labeldiag.records.data import (  # noqa: F401
    CasingStats, Examples, PaddingProbe, RoundTrip, TemporaryPad, TokenStats, padding_limit,
)
from labeldiag.records.shapes import (  # noqa: F401
    FIGURE_POINTS, MULTILABEL_THRESHOLD, PROBLEM_TYPE_TASK, TASKS, TASK_PROBLEM_TYPE, LabelScore, MultiLabelGold,
    MultiLabelSummary, PairGold, PairwiseSummary, RegressionGold, RegressionSummary, TaskShape, auroc_table,
    average_ranks, rank_permutation_p, sigmoid, summarize_multilabel, summarize_pairwise, summarize_regression,
)
from labeldiag.records.tagging import (  # noqa: F401
    IGNORED, OUTSIDE, SchemeReport, ShiftScore, TagScore, TokenGold, TokenSummary, align_to_subwords, entity_spans,
    flat_labelled, scheme_breaks, scheme_report, split_tag, summarize_tokens,
)
from labeldiag.records.diagnosis import (  # noqa: F401
    Cause, ChangeMade, DoctorRun, FindingBefore, FixMade, FixOutcome, FlowGlance, StageRun, TrainingGlance,
)
from labeldiag.records.logits import (  # noqa: F401
    ClassScore, ForwardSpeed, LogitStats, LogitsRun, LogitsSummary, Representation, RUN_RECORDS, TokenCounts,
)
from labeldiag.records.callback import HeadStatistics, OptimizerCoverage  # noqa: F401
from labeldiag.records.bigmodel import DeviceMap, LoraSummary, ShardedAgreement, ShardMode  # noqa: F401
