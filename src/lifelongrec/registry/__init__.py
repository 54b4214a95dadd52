"""The model registry: versions on disk, lineage and metrics; promotion gate; rollback.

:class:`ModelRegistry` keeps every model version in a folder (written atomically, with
SHA-256 sums to detect corruption), a champion pointer, the history of promotions and
rollbacks, and each version's parent, data window and figures. :class:`PromotionGate`
decides whether a challenger may replace the champion, on the freshest held-out slice
with the prequential protocol's per-event figures. :class:`ChampionChallenger` runs an
update strategy so that every update is a registered challenger and only a gated one
goes live; :func:`judge_challenger` is its one promotion path, for challengers made
elsewhere too. :func:`tune` searches hyperparameters with Optuna (optional dependency:
``pip install lifelongrec[tune]``) on validation events only: the freshest recent events,
or the events before each user's last (:func:`validation_score`); :func:`run_tune` is
``lifelongrec tune``.
"""

from lifelongrec.registry._continuous import ChampionChallenger, judge_challenger, split_freshest
from lifelongrec.registry._errors import CorruptVersionError, RegistryError, RegistryWarning
from lifelongrec.registry._gate import GATE_METRICS, GateDecision, PromotionGate
from lifelongrec.registry._registry import ModelRegistry, VersionInfo, version_id
from lifelongrec.registry._tune import (
    DEFAULT_SPACES,
    PROTOCOLS,
    parse_space,
    run_tune,
    tune,
    validation_score,
)

__all__ = [
    "DEFAULT_SPACES",
    "GATE_METRICS",
    "ChampionChallenger",
    "CorruptVersionError",
    "GateDecision",
    "ModelRegistry",
    "PROTOCOLS",
    "PromotionGate",
    "RegistryError",
    "RegistryWarning",
    "VersionInfo",
    "judge_challenger",
    "parse_space",
    "run_tune",
    "split_freshest",
    "tune",
    "validation_score",
    "version_id",
]
