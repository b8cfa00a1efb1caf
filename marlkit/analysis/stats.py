"""The statistics protocol every comparison in marlkit follows (report, compare, benchmarks).

Per task, for every pair of algorithms, on the runs' final returns:

* **the difference of means with a 95% CI of the difference** (Welch's t interval: it does not assume
  equal variances, and at 3 seeds it is as wide as 3 seeds deserve);
* **a permutation test** of the difference of means (two-sided). It holds its level at any number of
  seeds: exact (every split of the pooled runs) up to ``EXACT_LIMIT`` splits, else ``RESAMPLES``
  random splits from a fixed seed. With 3 seeds per algorithm there are only 20 splits, so no p-value
  falls below 0.1: 3 seeds cannot decide anything, and the protocol says so;
* **Holm's correction** over the pairs of the task (family-wise error 5%); a difference is claimed
  only where the Holm-adjusted p-value is below 0.05;
* where nothing is claimed, **the minimum detectable effect**: the difference the same test would
  find with 80% power at this number of seeds and the observed spread (noncentral t), and the seeds
  per algorithm that the observed difference would need.

Runs that share seeds are analysed as independent samples: an algorithm's network and exploration
draw other numbers from the same seed, so seed-matched runs are not paired measurements of one unit,
and an exact paired (sign-flip) test cannot reach p < 0.05 below 6 seeds. Where seed-matched runs do
correlate (same evaluation episodes), the unpaired test is conservative, never anti-conservative.

Across tasks, rliable's aggregates (Agarwal et al. 2021) on normalized scores with stratified
bootstrap CIs (runs resampled within each task): IQM, optimality gap, probability of improvement
P(X > Y), and performance profiles. The rliable package is not a dependency: it pulls pandas,
statsmodels, arch and seaborn, 165 MB (docs/statistics.md); these functions restate its
definitions and are checked against hand computations in tests/test_stats.py.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

ALPHA = 0.05
POWER = 0.8
EXACT_LIMIT = 20_000
RESAMPLES = 4_999
BOOTSTRAP_SAMPLES = 2_000
CURVE_BOOTSTRAP_SAMPLES = 10_000


# ------------------------------------------------------------------ one algorithm
def bootstrap_ci(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap CI of the mean over resampled runs: the report's learning-curve bands, and
    the per-algorithm CIs whose overlap the report used before this protocol (no test of a difference)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), float(x.mean())
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, len(x), size=(CURVE_BOOTSTRAP_SAMPLES, len(x)))]
    low, high = np.percentile(samples.mean(1), [2.5, 97.5])
    return float(low), float(high)


def t_ci(values: np.ndarray) -> tuple[float, float]:
    """95% Student-t CI of the mean (a point for one run or no spread): honest at 3 seeds, where the
    percentile bootstrap of the mean is about [min, max]."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0:
        return float(x.mean()), float(x.mean())
    low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    return float(low), float(high)


# ------------------------------------------------------------------ one pair of algorithms
@lru_cache(maxsize=64)
def _splits(n_a: int, n_b: int) -> np.ndarray:
    """``[S, n_a + n_b]`` 0/1 rows: which pooled runs go to the first group, every split (exact) or
    ``RESAMPLES`` random ones plus the observed one (from a fixed seed)."""
    n = n_a + n_b
    if math.comb(n, n_a) <= EXACT_LIMIT:
        rows = np.zeros((math.comb(n, n_a), n))
        for i, chosen in enumerate(itertools.combinations(range(n), n_a)):
            rows[i, list(chosen)] = 1.0
        return rows
    rng = np.random.default_rng(0)
    rows = np.zeros((RESAMPLES + 1, n))
    rows[0, :n_a] = 1.0  # the observed split counts as one of the resamples
    for i in range(1, RESAMPLES + 1):
        rows[i, rng.permutation(n)[:n_a]] = 1.0
    return rows


def permutation_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided permutation p-value of ``mean(a) - mean(b)`` (exact where the splits are few)."""
    pooled = np.concatenate([a, b]).astype(float)
    splits = _splits(len(a), len(b))
    sum_a = splits @ pooled
    diffs = sum_a / len(a) - (pooled.sum() - sum_a) / len(b)
    observed = a.mean() - b.mean()
    tol = 1e-9 * max(1.0, float(np.abs(pooled).max()))  # ties of equal splits computed in another order
    return float(np.mean(np.abs(diffs) >= abs(observed) - tol))


def smallest_p(n_a: int, n_b: int) -> float:
    """The smallest p-value :func:`permutation_p` can give at these sizes, whatever the data: an extreme
    split and (equal sizes) its mirror image, out of every split or the random ones plus the observed."""
    splits = math.comb(n_a + n_b, n_a)
    if splits > EXACT_LIMIT:
        return 1 / (RESAMPLES + 1)
    return (2 if n_a == n_b else 1) / splits


def welch_ci(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """CI of ``mean(a) - mean(b)`` by Welch's t (unequal variances); a point where both spreads are 0."""
    diff = float(a.mean() - b.mean())
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return diff, diff
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(level)
    return float(ci.low), float(ci.high)


def power(effect: float, sd: float, n_a: int, n_b: int, alpha: float) -> float:
    """Power of a two-sided two-sample t-test of level ``alpha`` to detect ``effect`` (noncentral t)."""
    if sd <= 0:
        return 1.0 if effect != 0 else alpha
    df = n_a + n_b - 2
    ncp = abs(effect) / (sd * math.sqrt(1 / n_a + 1 / n_b))
    crit = stats.t.ppf(1 - alpha / 2, df)
    value = float(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp))
    return 1.0 if math.isnan(value) else value  # NaN only far in the tail, where the power is 1


def detectable(sd: float, n_a: int, n_b: int, alpha: float, target: float = POWER) -> float:
    """The smallest difference detected with power ``target`` at these sizes and spread (the t-test's
    power, which the permutation test approaches); infinite where the permutation test cannot reach
    ``alpha`` at these sizes at all (3 seeds per algorithm)."""
    if smallest_p(n_a, n_b) >= alpha:
        return math.inf
    if sd <= 0:
        return 0.0
    high = sd
    while power(high, sd, n_a, n_b, alpha) < target:  # noncentral t tails are NaN far out: bracket first
        high *= 2
    return float(optimize.brentq(lambda d: power(d, sd, n_a, n_b, alpha) - target, 1e-9 * sd, high))


def seeds_needed(effect: float, sd: float, alpha: float, most: int = 200) -> int | None:
    """Seeds per algorithm for power ``POWER`` against ``effect``; None past ``most``."""
    if effect == 0:
        return None
    fewest = next(n for n in range(2, most + 1) if smallest_p(n, n) < alpha)  # the permutation test's floor
    if sd <= 0:
        return fewest
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(POWER)
    n = max(fewest, math.ceil(2 * (z * sd / effect) ** 2))  # the normal approximation, then the t-test's own
    while n > fewest and power(effect, sd, n - 1, n - 1, alpha) >= POWER:
        n -= 1
    while n <= most and power(effect, sd, n, n, alpha) < POWER:
        n += 1
    return n if n <= most else None


def pooled_sd(a: np.ndarray, b: np.ndarray) -> float:
    df = len(a) + len(b) - 2
    return math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / df) if df > 0 else 0.0


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Pair:
    """``a - b`` on one task: the difference of mean final returns and what the protocol says of it."""

    a: str
    b: str
    n_a: int
    n_b: int
    diff: float
    ci: tuple[float, float]
    p: float
    p_holm: float
    sd: float
    """The pooled standard deviation of the two algorithms' final returns."""
    level: float
    """Holm's first-step level (5% over the number of pairs): what power is computed at."""

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA

    @property
    def winner(self) -> str | None:
        return (self.a if self.diff > 0 else self.b) if self.significant else None

    @property
    def loser(self) -> str | None:
        return (self.b if self.diff > 0 else self.a) if self.significant else None

    def detectable(self) -> float:
        """The difference this test finds with 80% power at these seeds and this spread."""
        return detectable(self.sd, self.n_a, self.n_b, self.level)

    def seeds_needed(self) -> int | None:
        """Seeds per algorithm to detect the observed difference with 80% power (None: more than 200)."""
        return seeds_needed(self.diff, self.sd, self.level)

    def text(self) -> str:
        return (
            f"{self.a} − {self.b} = {self.diff:+.4g} [{self.ci[0]:+.4g}, {self.ci[1]:+.4g}], "
            f"p = {self.p_holm:.2g} (Holm)"
        )


def compare_task(finals: Mapping[str, Sequence[float] | np.ndarray]) -> list[Pair]:
    """Every pair of algorithms on one task (best mean first in each pair), Holm-corrected together.
    Algorithms with fewer than 2 runs are left out (no spread, no test)."""
    x = {k: np.asarray(v, dtype=float) for k, v in finals.items() if len(v) >= 2}
    order = sorted(x, key=lambda k: -float(x[k].mean()))
    pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1 :]]
    if not pairs:
        return []
    raw = [permutation_p(x[a], x[b]) for a, b in pairs]
    level = ALPHA / len(pairs)
    return [
        Pair(a, b, len(x[a]), len(x[b]), float(x[a].mean() - x[b].mean()), welch_ci(x[a], x[b]), p, p_adj,
             pooled_sd(x[a], x[b]), level)
        for (a, b), p, p_adj in zip(pairs, raw, holm(raw), strict=True)
    ]  # fmt: skip


def claims(finals: Mapping[str, Sequence[float] | np.ndarray]) -> list[tuple[str, str]]:
    """The protocol's decisions on one task: ``(better, worse)`` for every pair it calls different."""
    return [(p.winner, p.loser) for p in compare_task(finals) if p.winner is not None and p.loser is not None]


def verdict(finals: Mapping[str, Sequence[float] | np.ndarray]) -> str:
    """The task's sentence: the differences the protocol claims, or why nothing is claimed."""
    if len(finals) < 2:
        return "One algorithm: nothing to compare."
    single = [a for a, v in finals.items() if len(v) < 2]
    if single:
        return (
            f"Nothing claimed: {', '.join(single)} ran with one seed; a test of a difference needs at least two "
            "seeds per algorithm."
        )
    pairs = compare_task(finals)
    seeds = sorted({len(v) for v in finals.values()})
    at = f"{seeds[0]} seeds" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]} seeds"
    found = [p for p in pairs if p.significant]
    rest = [p for p in pairs if not p.significant]
    family = f"permutation test, Holm over {len(pairs)} pair{'s' if len(pairs) > 1 else ''}"
    if found:
        claimed = "; ".join(f"{p.winner} > {p.loser}: {p.text()}" for p in found)
        tail = ""
        if rest:
            tail = f" Not separated at {at}: " + "; ".join(f"{p.text()} ({_detectable(p)})" for p in rest) + "."
        return f"Different at {at} ({family}, 5%): {claimed}.{tail}"
    largest = max(pairs, key=lambda p: abs(p.diff))
    n = largest.seeds_needed()
    needed = (
        f"about {n} seeds per algorithm would be needed to detect {abs(largest.diff):.3g}"
        if n is not None
        else f"more than 200 seeds per algorithm would be needed to detect {abs(largest.diff):.3g}"
    )
    return f"Inconclusive at {at}: {largest.text()}; {_detectable(largest)}; {needed} ({family})."


def _detectable(pair: Pair) -> str:
    mde = pair.detectable()
    if math.isinf(mde):
        floor = smallest_p(pair.n_a, pair.n_b)
        return (
            f"at {pair.n_a} and {pair.n_b} seeds no permutation p-value falls below {floor:.2g}, "
            "so no difference could be detected"
        )
    return f"a difference smaller than about {mde:.3g} could not be detected"


# ------------------------------------------------------------------------- across tasks (rliable)
def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% (``scipy.stats.trim_mean(x, 0.25)``)."""
    return float(stats.trim_mean(np.asarray(values, dtype=float), 0.25))


def optimality_gap(values: np.ndarray, gamma: float = 1.0) -> float:
    """rliable's optimality gap: the mean shortfall below ``gamma`` (scores above it count as ``gamma``)."""
    return float(np.mean(gamma - np.minimum(np.asarray(values, dtype=float), gamma)))


def improvement(x: Sequence[np.ndarray], y: Sequence[np.ndarray]) -> float:
    """Probability of improvement P(X > Y): per task, the chance that a run of X beats a run of Y (ties
    count half; Mann-Whitney's U over n m), averaged over tasks."""
    per_task = []
    for a, b in zip(x, y, strict=True):
        wins = (a[:, None] > b[None, :]).mean() + 0.5 * (a[:, None] == b[None, :]).mean()
        per_task.append(wins)
    return float(np.mean(per_task))


def stratified_bootstrap(
    samples: Sequence[Sequence[np.ndarray]], statistic: Callable[..., float], seed: int = 0
) -> tuple[float, float]:
    """95% percentile CI of ``statistic(*samples)`` over resamples of the runs within each task.

    ``samples[k][t]`` is algorithm ``k``'s normalized scores on task ``t``; one resample draws, for
    every algorithm and task, as many runs with replacement."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(BOOTSTRAP_SAMPLES):
        drawn = [[s[rng.integers(0, len(s), size=len(s))] for s in algo] for algo in samples]
        values.append(statistic(*drawn))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def performance_profile(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Fraction of runs whose normalized score exceeds each threshold."""
    return (np.asarray(values, dtype=float)[None, :] > thresholds[:, None]).mean(1)


__all__ = [
    "ALPHA",
    "Pair",
    "bootstrap_ci",
    "claims",
    "compare_task",
    "detectable",
    "holm",
    "improvement",
    "iqm",
    "optimality_gap",
    "performance_profile",
    "permutation_p",
    "power",
    "seeds_needed",
    "stratified_bootstrap",
    "t_ci",
    "verdict",
    "welch_ci",
]
