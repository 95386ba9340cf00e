"""Statistics for labeling quality: pure numpy/scipy, no database, web or CLI.

Every statistic takes the long-form :class:`Ratings` (one row per item, annotator,
label; missing ratings simply absent) or plain arrays, and returns typed results.
The implementation lives in the modules; this package re-exports their public names:

====================================  ==================================================
:mod:`labelloop.stats.agreement`      percent agreement, Cohen/Fleiss kappa, Scott's pi,
                                      Brennan–Prediger, Gwet's AC1/AC2, Krippendorff's
                                      alpha (all levels, sets, spans), ICC, pairwise and
                                      leave-one-out agreement, with CIs
:mod:`labelloop.stats.inference`      truth inference estimators (majority vote, Wawa,
                                      Dawid–Skene, one-coin, GLAD, MACE)
:mod:`labelloop.stats.label_errors`   confident learning, CROWDLAB consensus quality
:mod:`labelloop.stats.sampling`       stratified / weighted audit samples, sample sizes,
                                      design-weighted error-rate estimates
:mod:`labelloop.stats.distributions`  label skew and drift: chi-square, JSD, PSI,
                                      Benjamini–Hochberg
:mod:`labelloop.stats.intervals`      vectorised bootstrap confidence intervals
:mod:`labelloop.stats.contingency`    Cochran–Mantel–Haenszel test over stratified 2×2
                                      tables (before/after effects per annotator)
====================================  ==================================================

See ``docs/stats/index.md``. Importing this package never imports sqlalchemy,
fastapi or typer (a test checks it).
"""

from __future__ import annotations

from labelloop.stats._data import (
    LEVELS,
    Level,
    Ratings,
)
from labelloop.stats.agreement import (
    ICC_FORMS,
    AgreementResult,
    AnnotatorAgreement,
    CategoryAgreement,
    PairwiseAgreement,
    brennan_prediger,
    cohen_kappa,
    fleiss_kappa,
    gwet_ac,
    intraclass_correlation,
    krippendorff_alpha,
    leave_one_out,
    pairwise_kappa,
    per_category_agreement,
    percent_agreement,
    scott_pi,
    set_alpha,
    span_alpha,
    weight_matrix,
)
from labelloop.stats.contingency import CMHResult, cochran_mantel_haenszel
from labelloop.stats.distributions import (
    Chi2Result,
    Comparison,
    LabelDistribution,
    benjamini_hochberg,
    chi2_homogeneity,
    compare_distributions,
    jensen_shannon_divergence,
    label_distribution,
    population_stability_index,
    segment_skew,
    window_drift,
)
from labelloop.stats.inference import (
    GLAD,
    MACE,
    DawidSkene,
    EMEstimator,
    MajorityVote,
    OneCoinDawidSkene,
    TruthInference,
    Wawa,
)
from labelloop.stats.intervals import (
    BootstrapResult,
    bootstrap_items,
    krippendorff_bootstrap,
    percentile_interval,
)
from labelloop.stats.label_errors import (
    LabelIssues,
    MultiAnnotatorQuality,
    confident_joint,
    confident_thresholds,
    crowdlab,
    find_label_issues,
    label_quality_scores,
)
from labelloop.stats.sampling import (
    Estimate,
    SamplePlan,
    allocate,
    estimate_error_rate,
    estimate_from_plan,
    inclusion_probabilities,
    largest_remainder,
    sample_size_for_proportion,
    stratified_sample,
    weighted_sample,
    wilson_half_width,
    wilson_interval,
)

__all__ = [
    "GLAD",
    "ICC_FORMS",
    "LEVELS",
    "MACE",
    "AgreementResult",
    "AnnotatorAgreement",
    "BootstrapResult",
    "CMHResult",
    "CategoryAgreement",
    "Chi2Result",
    "Comparison",
    "DawidSkene",
    "EMEstimator",
    "Estimate",
    "LabelDistribution",
    "LabelIssues",
    "Level",
    "MajorityVote",
    "MultiAnnotatorQuality",
    "OneCoinDawidSkene",
    "PairwiseAgreement",
    "Ratings",
    "SamplePlan",
    "TruthInference",
    "Wawa",
    "allocate",
    "benjamini_hochberg",
    "bootstrap_items",
    "brennan_prediger",
    "chi2_homogeneity",
    "cochran_mantel_haenszel",
    "cohen_kappa",
    "compare_distributions",
    "confident_joint",
    "confident_thresholds",
    "crowdlab",
    "estimate_error_rate",
    "estimate_from_plan",
    "find_label_issues",
    "fleiss_kappa",
    "gwet_ac",
    "inclusion_probabilities",
    "intraclass_correlation",
    "jensen_shannon_divergence",
    "krippendorff_alpha",
    "krippendorff_bootstrap",
    "label_distribution",
    "label_quality_scores",
    "largest_remainder",
    "leave_one_out",
    "pairwise_kappa",
    "per_category_agreement",
    "percent_agreement",
    "percentile_interval",
    "population_stability_index",
    "sample_size_for_proportion",
    "scott_pi",
    "segment_skew",
    "set_alpha",
    "span_alpha",
    "stratified_sample",
    "weight_matrix",
    "weighted_sample",
    "wilson_half_width",
    "wilson_interval",
    "window_drift",
]
