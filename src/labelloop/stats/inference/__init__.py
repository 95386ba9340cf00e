"""Truth inference: estimate each item's true label and each annotator's reliability.

One estimator per module, all with the API and data contract documented in
:mod:`labelloop.stats.inference._base`.
"""

from ._base import EMEstimator, TruthInference
from .dawid_skene import DawidSkene
from .glad import GLAD
from .mace import MACE
from .majority import MajorityVote
from .one_coin import OneCoinDawidSkene
from .wawa import Wawa

__all__ = [
    "GLAD",
    "MACE",
    "DawidSkene",
    "EMEstimator",
    "MajorityVote",
    "OneCoinDawidSkene",
    "TruthInference",
    "Wawa",
]
