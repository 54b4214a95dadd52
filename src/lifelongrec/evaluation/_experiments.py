"""Online experiments: an always-valid sequential test, and team-draft interleaving.

**The test** is the mixture sequential probability ratio test (mSPRT) of Johari, Pekelis
and Walsh ("Always valid inference: continuous monitoring of A/B tests", Operations
Research 2022), in its normal-approximation form for a difference of two means: with
``theta_hat`` the observed difference (challenger minus champion), ``V`` its variance
under the null (pooled), and a normal mixture ``N(0, tau**2)`` over the true difference,

    Lambda = sqrt(V / (V + tau**2)) * exp(tau**2 * theta_hat**2 / (2 * V * (V + tau**2)))

is a likelihood ratio that, under "no difference", is a martingale: the probability that
it *ever* exceeds ``1 / alpha`` is at most ``alpha`` (Ville's inequality). The always-valid
p-value is the running minimum of ``1 / Lambda``; it may be looked at after every
impression without inflating false positives, and the experiment may stop as soon as it
is below ``alpha``. The matching always-valid confidence interval is ``theta_hat +-
sqrt(V * (V + tau**2) / tau**2 * (log((V + tau**2) / V) + 2 * log(1 / alpha)))``.
``tau`` is the scale of the differences one expects (default 0.01, one CTR point); any
value keeps the guarantee, a good one gives power sooner.

The same test decides **interleaving**: each interleaved answer with a click credits the
ranker whose items were clicked more (a tie credits neither); the outcomes
``+1`` (challenger) / ``-1`` (champion) of the answers with a preference are tested
for a mean of zero.

**Team-draft interleaving** (Radlinski, Kurup and Joachims, CIKM 2008) merges two
rankings into one list: in every round a coin decides which ranker picks first, and each
ranker adds its best item not yet in the list; every item remembers its team. An item
both rankers propose in the same round is added once and belongs to neither ("neutral",
the default), so only the items they disagree on are credited.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lifelongrec._errors import ParameterError
from lifelongrec._params import check_number

__all__ = [
    "MSPRT_TAU",
    "SequentialVerdict",
    "interleaving_credit",
    "msprt",
    "msprt_mean",
    "team_draft",
]

#: The mixture's scale: the size of the difference one expects (one CTR point).
MSPRT_TAU = 0.01


@dataclass(frozen=True)
class SequentialVerdict:
    """One look at an experiment: the observed difference, its always-valid p-value and
    confidence interval, and whether the null (no difference) is rejected at ``alpha``."""

    effect: float
    likelihood_ratio: float
    p_value: float
    ci_low: float
    ci_high: float
    reject: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def msprt(
    mean_a: float,
    n_a: int,
    mean_b: float,
    n_b: int,
    *,
    variance: float | None = None,
    tau: float = MSPRT_TAU,
    alpha: float = 0.05,
    previous_p: float = 1.0,
) -> SequentialVerdict:
    """The mSPRT of ``mean_b - mean_a`` after ``n_a`` and ``n_b`` observations (see the
    module docstring).

    ``variance`` is the variance of one observation under the null; ``None``: that of a
    0/1 outcome at the pooled mean (CTR, conversion). ``previous_p``: the p-value of the
    last look (the p-value is their running minimum). With no observation in an arm
    the verdict is "nothing yet" (p-value ``previous_p``).

    >>> v = msprt(0.05, 20_000, 0.06, 20_000)
    >>> round(v.effect, 3), v.reject, v.p_value < 0.01
    (0.01, True, True)
    >>> msprt(0.05, 500, 0.05, 500).reject
    False
    """
    for name, n in (("n_a", n_a), ("n_b", n_b)):
        if not (isinstance(n, (int, np.integer)) and n >= 0):
            raise ParameterError(name, n, "an integer >= 0 (observations so far)")
    effect = float(mean_b) - float(mean_a)
    if n_a == 0 or n_b == 0:
        return _mixture(effect, 0.0, tau, alpha, previous_p)
    if variance is None:
        pooled = (mean_a * n_a + mean_b * n_b) / (n_a + n_b)
        variance = pooled * (1.0 - pooled)
    return _mixture(effect, float(variance) * (1.0 / n_a + 1.0 / n_b), tau, alpha, previous_p)


def msprt_mean(
    mean: float,
    n: int,
    variance: float,
    *,
    tau: float = MSPRT_TAU,
    alpha: float = 0.05,
    previous_p: float = 1.0,
) -> SequentialVerdict:
    """The one-sample mSPRT of "the mean is 0" after ``n`` observations of ``variance``
    (under the null): e.g. interleaving outcomes in ``{-1, 0, +1}``, whose variance
    under the null is the share of answers with a preference.

    >>> msprt_mean(0.1, 4_000, 0.3).reject
    True
    """
    if not (isinstance(n, (int, np.integer)) and n >= 0):
        raise ParameterError("n", n, "an integer >= 0 (observations so far)")
    V = float(variance) / n if n > 0 else 0.0
    return _mixture(float(mean), V, tau, alpha, previous_p)


def _mixture(
    effect: float, V: float, tau: float, alpha: float, previous_p: float
) -> SequentialVerdict:
    """The verdict for an observed ``effect`` of variance ``V`` (0: nothing to tell the
    arms apart by yet: no data, or no variation)."""
    check_number("tau", tau, 0, low_open=True)
    check_number("alpha", alpha, 0, 1, low_open=True, high_open=True)
    if V <= 0:
        return SequentialVerdict(effect, 1.0, float(previous_p), -math.inf, math.inf, False)
    t2 = float(tau) ** 2
    log_lr = 0.5 * math.log(V / (V + t2)) + t2 * effect**2 / (2.0 * V * (V + t2))
    p = min(float(previous_p), math.exp(-log_lr) if log_lr > 0 else 1.0)
    half = math.sqrt(V * (V + t2) / t2 * (math.log((V + t2) / V) + 2.0 * math.log(1.0 / alpha)))
    lr = math.exp(min(log_lr, 700.0))
    return SequentialVerdict(effect, lr, p, effect - half, effect + half, p <= alpha)


def team_draft(
    ranking_a: Sequence[str],
    ranking_b: Sequence[str],
    k: int,
    rng: np.random.Generator,
    *,
    neutral: bool = True,
) -> tuple[list[str], list[str]]:
    """Team-draft interleaving of two rankings into at most ``k`` items; returns the
    items and each one's team: ``"a"``, ``"b"``, or ``"both"`` (see below).

    In every round each ranker proposes its best item not yet in the list, and a coin
    decides whose goes first. With ``neutral`` (the default), an item both propose in
    the same round is added once as ``"both"``: the rankers agree on it, so a click on
    it says nothing about which is better, and :func:`interleaving_credit` credits
    neither (the disagreements alone decide; with rankers that share most of their
    lists this removes most of the clicks' noise). ``neutral=False`` is the original
    design (Radlinski, Kurup and Joachims, 2008): the coin's first pick takes the
    shared item for its team and the other ranker proposes its next.

    >>> items, teams = team_draft(["x", "y", "z"], ["x", "w", "y"], 4, np.random.default_rng(0))
    >>> items[0], teams[0], sorted(items[1:])
    ('x', 'both', ['w', 'y', 'z'])
    >>> sorted(team_draft(["x", "y"], ["x", "y"], 2, np.random.default_rng(0), neutral=False)[1])
    ['a', 'b']
    """
    items: list[str] = []
    teams: list[str] = []
    chosen: set[str] = set()
    pos = {"a": 0, "b": 0}
    lists = {"a": list(ranking_a), "b": list(ranking_b)}

    def proposal(team: str) -> str | None:
        src = lists[team]
        while pos[team] < len(src) and src[pos[team]] in chosen:
            pos[team] += 1
        return src[pos[team]] if pos[team] < len(src) else None

    def add(item: str, team: str) -> None:
        items.append(item)
        teams.append(team)
        chosen.add(item)

    while len(items) < k:
        order = ("a", "b") if rng.random() < 0.5 else ("b", "a")
        first, second = proposal(order[0]), proposal(order[1])
        if first is None and second is None:
            break
        if neutral and first is not None and first == second:
            add(first, "both")
            continue
        for team in order:  # each adds its best item not yet in the list
            item = proposal(team)
            if item is not None and len(items) < k:
                add(item, team)
    return items, teams


def interleaving_credit(teams: Sequence[str], clicked: Sequence[bool]) -> int:
    """The outcome of one interleaved answer: ``+1`` when the items of team ``"b"`` (the
    challenger) got more clicks, ``-1`` when team ``"a"``'s did, ``0`` for a tie (no click
    included); items of both teams (``"both"``) count for neither.

    >>> interleaving_credit(["a", "b", "a"], [False, True, False])
    1
    >>> interleaving_credit(["a", "b", "a", "b"], [True, True, False, False])
    0
    """
    if len(teams) != len(clicked):
        raise ParameterError("clicked", len(clicked), f"one flag per item ({len(teams)})")
    a = sum(1 for t, c in zip(teams, clicked, strict=True) if c and t == "a")
    b = sum(1 for t, c in zip(teams, clicked, strict=True) if c and t == "b")
    return (b > a) - (a > b)
