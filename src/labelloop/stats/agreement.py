"""Inter-annotator agreement: one typed entry point for every coefficient.

Every function takes a :class:`~labelloop.stats._data.Ratings` (long form, missing
ratings simply absent) and returns frozen dataclasses; coefficients come as an
:class:`AgreementResult` carrying value, CI, SE (when analytic), ``n_items``,
``n_annotators`` and ``n_pairable``. Formulas and references are in each function's
docstring and in ``docs/stats/agreement.md``.

==========================  =====================================================
``percent_agreement``       raw pairwise agreement (weighted optional)
``cohen_kappa``             two annotators, weighted on category values, SE + CI
``pairwise_kappa``          annotator × annotator kappa matrix with overlap counts
``fleiss_kappa``            any number of raters per item (Gwet's generalisation)
``scott_pi``                pooled-marginal chance (pairable items)
``brennan_prediger``        uniform chance
``gwet_ac``                 Gwet's AC1 / AC2
``krippendorff_alpha``      nominal / ordinal / interval / ratio, missing data,
                            Krippendorff or item bootstrap
``set_alpha``               multi-label sets, MASI or Jaccard distance
``span_alpha``              token-level alpha for text spans
``intraclass_correlation``  ICC(1,1), (2,1), (3,1) and k versions
``per_category_agreement``  Fleiss' per-category kappa + specific agreement
``leave_one_out``           each annotator against the rest
==========================  =====================================================
"""

from __future__ import annotations

from labelloop.stats._agree_common import AgreementResult, weight_matrix
from labelloop.stats._alpha import krippendorff_alpha, set_alpha, span_alpha
from labelloop.stats._chance import (
    CategoryAgreement,
    brennan_prediger,
    fleiss_kappa,
    gwet_ac,
    per_category_agreement,
    percent_agreement,
    scott_pi,
)
from labelloop.stats._icc import ICC_FORMS, intraclass_correlation
from labelloop.stats._kappa import (
    AnnotatorAgreement,
    PairwiseAgreement,
    cohen_kappa,
    leave_one_out,
    pairwise_kappa,
)

__all__ = [
    "ICC_FORMS",
    "AgreementResult",
    "AnnotatorAgreement",
    "CategoryAgreement",
    "PairwiseAgreement",
    "brennan_prediger",
    "cohen_kappa",
    "fleiss_kappa",
    "gwet_ac",
    "intraclass_correlation",
    "krippendorff_alpha",
    "leave_one_out",
    "pairwise_kappa",
    "per_category_agreement",
    "percent_agreement",
    "scott_pi",
    "set_alpha",
    "span_alpha",
    "weight_matrix",
]
