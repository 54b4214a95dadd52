"""Online experiments' statistics: the mSPRT against a numerical integral, its
false-positive rate under continuous peeking and its power, the always-valid interval;
team-draft interleaving's invariants and fairness; errors."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from lifelongrec._errors import ParameterError
from lifelongrec.evaluation._experiments import interleaving_credit, msprt, team_draft


@pytest.mark.parametrize("effect, n", [(0.002, 5_000), (0.01, 20_000), (-0.004, 60_000)])
def test_the_likelihood_ratio_is_the_normal_mixture_integral(effect, n):
    a, b, tau = 0.05, 0.05 + effect, 0.01
    v = msprt(a, n, b, n, tau=tau)
    pooled = (a + b) / 2
    V = pooled * (1 - pooled) * 2 / n

    def integrand(theta):
        return stats.norm.pdf(effect, theta, math.sqrt(V)) * stats.norm.pdf(theta, 0, tau)

    num, _ = integrate.quad(integrand, -0.2, 0.2, points=[0.0, effect], limit=200)
    want = num / stats.norm.pdf(effect, 0, math.sqrt(V))
    assert v.likelihood_ratio == pytest.approx(want, rel=1e-6)
    assert v.p_value == pytest.approx(min(1.0, 1 / want), rel=1e-6)


def _peeking_trials(rate_a, rate_b, n_trials, looks, step, seed):
    """Clicks of both arms at each look (cumulative), for many trials at once."""
    rng = np.random.default_rng(seed)
    a = rng.binomial(step, rate_a, size=(n_trials, looks)).cumsum(axis=1)
    b = rng.binomial(step, rate_b, size=(n_trials, looks)).cumsum(axis=1)
    return a, b


def _rejected(a, b, step):
    n_trials, looks = a.shape
    out = np.zeros(n_trials, dtype=bool)
    for i in range(n_trials):
        p = 1.0
        for j in range(looks):
            n = step * (j + 1)
            v = msprt(a[i, j] / n, n, b[i, j] / n, n, previous_p=p)
            p = v.p_value
            if v.reject:
                out[i] = True
                break
    return out


def test_peeking_after_every_batch_keeps_false_positives_under_alpha():
    # A/A: 1,000 experiments at CTR 5 %, a look after every 200 impressions per arm, up
    # to 20,000: a fixed-horizon z-test looked at this often would reject far more
    a, b = _peeking_trials(0.05, 0.05, 1_000, 100, 200, seed=1)
    rate = _rejected(a, b, 200).mean()
    assert rate <= 0.05
    # the same looks with a plain z-test at each look do inflate it (why mSPRT)
    n = 200 * np.arange(1, 101)
    pa, pb = a / n, b / n
    pooled = (pa + pb) / 2
    z = (pb - pa) / np.sqrt(pooled * (1 - pooled) * 2 / n + 1e-12)
    naive = (np.abs(z) > 1.96).any(axis=1).mean()
    assert naive > 0.15


def test_a_real_difference_is_found_and_its_sign_is_right():
    a, b = _peeking_trials(0.05, 0.06, 200, 100, 200, seed=2)
    found = _rejected(a, b, 200)
    assert found.mean() >= 0.9
    last = msprt(a[0, -1] / 20_000, 20_000, b[0, -1] / 20_000, 20_000)
    assert last.effect > 0 and last.ci_low > 0 and last.ci_high > last.effect


def test_the_interval_always_covers_the_truth_in_most_experiments():
    a, b = _peeking_trials(0.05, 0.055, 300, 50, 400, seed=3)
    covered = 0
    for i in range(300):
        ok = True
        for j in range(50):
            n = 400 * (j + 1)
            v = msprt(a[i, j] / n, n, b[i, j] / n, n)
            ok &= v.ci_low <= 0.005 <= v.ci_high
        covered += ok
    assert covered / 300 >= 0.95


def test_the_p_value_never_rises_and_nothing_is_decided_without_data():
    v1 = msprt(0.05, 1_000, 0.07, 1_000)
    v2 = msprt(0.05, 2_000, 0.05, 2_000, previous_p=v1.p_value)
    assert v2.p_value == v1.p_value < 1
    empty = msprt(0.0, 0, 0.1, 10)
    assert not empty.reject and empty.p_value == 1.0
    flat = msprt(0.0, 100, 0.0, 100)  # no click anywhere: no variance
    assert not flat.reject and flat.likelihood_ratio == 1.0
    given = msprt(1.0, 400, 1.3, 400, variance=4.0)  # a continuous metric
    assert given.effect == pytest.approx(0.3)


@pytest.mark.parametrize(
    "kw, name",
    [({"tau": 0}, "tau"), ({"alpha": 1.0}, "alpha"), ({"n_a": -1}, "n_a"), ({"n_b": 2.5}, "n_b")],
)
def test_bad_test_arguments_are_refused(kw, name):
    args = {"mean_a": 0.1, "n_a": 10, "mean_b": 0.1, "n_b": 10, **kw}
    with pytest.raises(ParameterError, match=name):
        msprt(args.pop("mean_a"), args.pop("n_a"), args.pop("mean_b"), args.pop("n_b"), **args)


@pytest.mark.parametrize("neutral", [True, False])
def test_team_draft_keeps_each_rankers_order_and_the_teams_balanced(neutral):
    rng = np.random.default_rng(0)
    pool = [f"i{j}" for j in range(30)]
    for _ in range(200):
        a = list(rng.permutation(pool)[:12])
        b = list(rng.permutation(pool)[:12])
        if rng.random() < 0.5:  # lists that share their first items too
            b = a[:3] + [i for i in b if i not in a[:3]][:9]
        k = int(rng.integers(1, 16))
        items, teams = team_draft(a, b, k, rng, neutral=neutral)
        assert len(items) == len(set(items)) == min(k, len(set(a) | set(b)))
        assert set(teams) <= ({"a", "b", "both"} if neutral else {"a", "b"})
        picks = [t for t in teams if t != "both"]
        for prefix in range(1, len(picks) + 1):
            na = picks[:prefix].count("a")
            assert abs(na - (prefix - na)) <= 1 or min(na, prefix - na) == 0
        for team, ranking in (("a", a), ("b", b)):
            mine = [i for i, t in zip(items, teams, strict=True) if t in (team, "both")]
            assert mine == [i for i in ranking if i in mine]  # in the ranker's order
            # each pick was the ranker's best item not already taken
            for i in mine:
                before = ranking[: ranking.index(i)]
                assert all(j in items[: items.index(i)] for j in before)
        for i, t in zip(items, teams, strict=True):
            if t == "both":  # both rankers' best item not yet in the list
                taken = items[: items.index(i)]
                assert [j for j in a if j not in taken][0] == i
                assert [j for j in b if j not in taken][0] == i


def test_identical_rankers_tie_on_average():
    rng = np.random.default_rng(1)
    ranking = [f"i{j}" for j in range(10)]
    outcomes = []
    for _ in range(4_000):
        items, teams = team_draft(ranking, ranking, 10, rng, neutral=False)
        clicked = [bool(rng.random() < 0.3 / (r + 1)) for r in range(len(items))]
        outcomes.append(interleaving_credit(teams, clicked))
    assert abs(np.mean(outcomes)) < 0.03
    # with neutral items identical rankers agree on every item: no credit at all
    items, teams = team_draft(ranking, ranking, 10, rng)
    assert teams == ["both"] * 10
    assert interleaving_credit(teams, [True] * 10) == 0


def test_neutral_items_keep_equal_rankers_even_and_sharpen_a_real_difference():
    """Two rankers of equal quality that share their first items: clicks that depend
    only on the position credit neither on average; a ranker whose own items are
    clicked more wins more often once the shared items no longer dilute the credit."""
    rng = np.random.default_rng(2)
    pool = [f"i{j}" for j in range(40)]
    for neutral in (True, False):
        even, good = [], []
        for _ in range(6_000):
            shared = list(rng.permutation(pool)[:6])
            rest = [i for i in pool if i not in shared]
            a = shared + list(rng.permutation(rest)[:4])
            b = shared + [i for i in rng.permutation(rest) if i not in a][:4]
            items, teams = team_draft(a, b, 10, rng, neutral=neutral)
            look = rng.random(10) < 1.0 / np.arange(1, 11)
            clicked = list(look & (rng.random(10) < 0.3))
            even.append(interleaving_credit(teams, clicked))
            # b's own four items are liked twice as much as the rest
            liked = [0.6 if (i in b[6:]) else 0.3 for i in items]
            clicked = list(look & (rng.random(10) < np.array(liked)))
            good.append(interleaving_credit(teams, clicked))
        se = np.std(even) / np.sqrt(len(even))
        assert abs(np.mean(even)) < 3 * se + 1e-9
        assert np.mean(good) > 0
        z = np.mean(good) / (np.std(good) / np.sqrt(len(good)))
        if neutral:
            z_neutral = z
        else:
            assert z_neutral > 1.3 * z  # the disagreements alone: a sharper signal


def test_credit_needs_one_flag_per_item():
    with pytest.raises(ParameterError, match="clicked"):
        interleaving_credit(["a", "b"], [True])
