"""Uncertainty of a figure and of a comparison between training runs: pure functions on arrays.

Used by the evaluation notebook: Wilson intervals of accuracies on independent images, and intervals
clustered by group (writer, seed) when images share a source. Used by the experiments notebook: mean
and standard deviation over seeds, a paired t interval on per-seed differences, McNemar's exact test
on the same test images (one pair of runs, or pooled over seeds), and Holm's correction over many
comparisons. Used by the quality gates (notebook checks, tests/test_behaviour.py): the noise floor a
rerun should reach.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as _stats


@dataclass(frozen=True)
class Spread:
    """Mean, sample standard deviation (ddof 1; NaN for one value) and count of a figure over seeds."""

    mean: float
    sd: float
    n: int


def spread(values: Iterable[float]) -> Spread:
    """``(n,)`` floats -> `Spread`; raises on an empty sequence."""
    array = np.asarray(list(values), dtype=np.float64)
    if array.size == 0:
        raise ValueError("no values")
    sd = float(array.std(ddof=1)) if array.size > 1 else float("nan")
    return Spread(float(array.mean()), sd, int(array.size))


@dataclass(frozen=True)
class PairedInterval:
    """Mean of per-seed differences (config minus baseline) and its two-sided t interval."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.n > 1 and (self.low > 0 or self.high < 0)


def paired_interval(differences: Iterable[float], confidence: float = 0.95) -> PairedInterval:
    """Student-t interval of the mean of ``(n,)`` paired differences (same seed, two configs).

    With one difference the interval is unbounded (NaN ends): one seed says nothing about noise."""
    array = np.asarray(list(differences), dtype=np.float64)
    if array.size == 0:
        raise ValueError("no differences")
    mean = float(array.mean())
    if array.size < 2:
        return PairedInterval(mean, float("nan"), float("nan"), 1)
    half = float(_stats.t.ppf(0.5 + confidence / 2, array.size - 1) * array.std(ddof=1) / np.sqrt(array.size))
    return PairedInterval(mean, mean - half, mean + half, int(array.size))


@dataclass(frozen=True)
class McNemar:
    """Discordant pairs on the same images: ``only_a`` misread by A alone, ``only_b`` by B alone,
    and the exact two-sided p-value of "A and B err equally often" (binomial on the discordant pairs)."""

    only_a: int
    only_b: int
    p_value: float


def mcnemar(wrong_a: Iterable[int], wrong_b: Iterable[int]) -> McNemar:
    """McNemar's exact test from the indices of the images each of two models misread."""
    set_a, set_b = {int(i) for i in wrong_a}, {int(i) for i in wrong_b}
    only_a, only_b = len(set_a - set_b), len(set_b - set_a)
    discordant = only_a + only_b
    if discordant == 0:
        return McNemar(0, 0, 1.0)
    p_value = min(1.0, 2.0 * float(_stats.binom.cdf(min(only_a, only_b), discordant, 0.5)))
    return McNemar(only_a, only_b, p_value)


def pooled_mcnemar(pairs: Iterable[McNemar]) -> McNemar:
    """McNemar's exact test over several seeds at once: the discordant images of each seed's pair of runs
    summed (a stratified test of "A and B err equally often" on every seed's images), not one seed's."""
    pairs = list(pairs)
    if not pairs:
        raise ValueError("no McNemar pairs to pool")
    only_a, only_b = sum(pair.only_a for pair in pairs), sum(pair.only_b for pair in pairs)
    discordant = only_a + only_b
    if discordant == 0:
        return McNemar(0, 0, 1.0)
    p_value = min(1.0, 2.0 * float(_stats.binom.cdf(min(only_a, only_b), discordant, 0.5)))
    return McNemar(only_a, only_b, p_value)


def holm(p_values: Iterable[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values, ``(m,)`` -> ``(m,)`` in the input's order.

    Compare each adjusted value with the family's level (0.05): the chance of calling any of the ``m``
    comparisons a difference when none is stays under that level, whatever their dependence, and it
    is never less powerful than Bonferroni's. NaN p-values (a comparison with no test) stay NaN and do
    not count in ``m``."""
    values = np.asarray(list(p_values), dtype=np.float64)
    adjusted = np.full(values.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(values))
    if tested.size == 0:
        return adjusted
    if np.any((values[tested] < 0) | (values[tested] > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {values[tested].tolist()}")
    order = tested[np.argsort(values[tested], kind="stable")]
    m = order.size
    stepped = np.minimum(1.0, (m - np.arange(m)) * values[order])
    adjusted[order] = np.maximum.accumulate(stepped)
    return adjusted


def paired_t_p_value(differences: Iterable[float]) -> float:
    """Two-sided p-value of Student's t test that the mean of ``(n,)`` paired differences is zero.

    NaN with fewer than two differences, or when every difference is the same (`same_on_every_seed`: no
    spread to test against; say so in words rather than quote a zero-width interval)."""
    array = np.asarray(list(differences), dtype=np.float64)
    if array.size < 2 or same_on_every_seed(array):
        return float("nan")
    return float(_stats.ttest_1samp(array, 0.0).pvalue)


# Differences of accuracies on the same images agree to rounding when they count the same images
# (5 of 2,100 at every seed): closer than this, they are the same number.
SAME_DIFFERENCE = 1e-9


def same_on_every_seed(differences: Iterable[float]) -> bool:
    """True when two or more paired differences are all the same number (to `SAME_DIFFERENCE`): a t
    interval would have no width and a t test no spread to test against."""
    array = np.asarray(list(differences), dtype=np.float64)
    return array.size > 1 and bool(np.all(np.abs(array - array[0]) <= SAME_DIFFERENCE))


def identical_on_every_seed(differences: Iterable[float]) -> bool:
    """True when every paired difference is zero (to `SAME_DIFFERENCE`): the two configurations gave the
    same figure at every seed (often the same model), which a t interval would show as a zero-width interval."""
    array = np.asarray(list(differences), dtype=np.float64)
    return array.size > 0 and bool(np.all(np.abs(array) <= SAME_DIFFERENCE))


@dataclass(frozen=True)
class Interval:
    """A proportion's estimate and the two ends of its confidence interval, all in [0, 1]."""

    estimate: float
    low: float
    high: float

    @property
    def half_widths(self) -> tuple[float, float]:
        """``(estimate - low, high - estimate)``: the asymmetric error bar matplotlib's ``yerr`` takes."""
        return self.estimate - self.low, self.high - self.estimate


def _wilson(estimate: float, count: float, z: float) -> tuple[float, float]:
    """Wilson score interval of a proportion ``estimate`` observed on ``count`` (possibly effective) trials."""
    denominator = 1.0 + z * z / count
    centre = (estimate + z * z / (2.0 * count)) / denominator
    half = z * np.sqrt(estimate * (1.0 - estimate) / count + z * z / (4.0 * count * count)) / denominator
    # At 0 and 1 one end is exactly the estimate; rounding would leave it a hair inside.
    low = 0.0 if estimate == 0.0 else max(0.0, float(centre - half))
    high = 1.0 if estimate == 1.0 else min(1.0, float(centre + half))
    return low, high


def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval of ``successes`` right out of ``total`` independent trials.

    Unlike the normal (Wald) interval it stays inside [0, 1] and keeps a width when every trial is
    right (300 of 300 is not 100 % for certain), which is where a good model's accuracies lie."""
    if total < 1:
        raise ValueError(f"total must be at least 1, got {total}")
    if not 0 <= successes <= total:
        raise ValueError(f"successes must lie in [0, total={total}], got {successes}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    z = float(_stats.norm.ppf(0.5 + confidence / 2))
    estimate = successes / total
    low, high = _wilson(estimate, float(total), z)
    return Interval(float(estimate), low, high)


def clustered_accuracy_interval(correct: Any, groups: Any, confidence: float = 0.95) -> Interval:
    """Interval of an accuracy whose items come in groups that are not independent (a writer's digits,
    one seed's images): ``(n,)`` bools and ``(n,)`` group labels -> `Interval`.

    Wilson's interval with the effective sample size ``n / deff`` and Student's t on ``G - 1`` degrees
    of freedom in place of the normal quantile (Korn and Graubard's interval for clustered samples).
    ``deff``, the design effect, is the cluster-robust variance of the accuracy (groups as the unit)
    over the binomial one, taken as at least 1 so that groups never narrow the interval below Wilson's
    on the same items. Needs at least two groups."""
    correct = np.asarray(correct, dtype=bool).ravel()
    groups = np.asarray(groups).ravel()
    if correct.size != groups.size:
        raise ValueError(f"correct has {correct.size} items but groups has {groups.size}")
    if correct.size == 0:
        raise ValueError("no items")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    _, group_index = np.unique(groups, return_inverse=True)
    group_count = int(group_index.max()) + 1
    if group_count < 2:
        raise ValueError("a clustered interval needs at least two groups")
    n = correct.size
    estimate = float(correct.mean())
    right_per_group = np.bincount(group_index, weights=correct.astype(np.float64), minlength=group_count)
    items_per_group = np.bincount(group_index, minlength=group_count).astype(np.float64)
    residuals = right_per_group - estimate * items_per_group
    robust_variance = group_count / (group_count - 1) * float(np.sum(residuals**2)) / n**2
    binomial_variance = estimate * (1.0 - estimate) / n
    design_effect = max(1.0, robust_variance / binomial_variance) if binomial_variance > 0 else 1.0
    t = float(_stats.t.ppf(0.5 + confidence / 2, group_count - 1))
    low, high = _wilson(estimate, n / design_effect, t)
    return Interval(estimate, low, high)


def clustered_mean_interval(values: Any, groups: Any, confidence: float = 0.95) -> Interval:
    """Interval of the mean of ``(n,)`` values that come in groups (a writer's digits): the
    cluster-robust standard error with Student's t on ``G - 1`` degrees of freedom. For paired
    differences of two models' right/wrong on the same digits (values in -1, 0, 1). A group-free
    spread of zero (every value equal) gives a zero-width interval only when the values truly agree
    everywhere; needs at least two groups."""
    values = np.asarray(values, dtype=np.float64).ravel()
    groups = np.asarray(groups).ravel()
    if values.size != groups.size or values.size == 0:
        raise ValueError(f"need as many values as groups, got {values.size} and {groups.size}")
    _, group_index = np.unique(groups, return_inverse=True)
    group_count = int(group_index.max()) + 1
    if group_count < 2:
        raise ValueError("a clustered interval needs at least two groups")
    mean = float(values.mean())
    residuals = np.bincount(group_index, weights=values - mean, minlength=group_count)
    standard_error = float(np.sqrt(group_count / (group_count - 1) * np.sum(residuals**2))) / values.size
    half = float(_stats.t.ppf(0.5 + confidence / 2, group_count - 1)) * standard_error
    return Interval(mean, mean - half, mean + half)


# How many noise widths below the seed study's mean a rerun of the same configuration may fall
# before a gate calls it broken.
NOISE_WIDTHS = 3.0


def noise_floor(mean: float, sd: float, count: int, widths: float = NOISE_WIDTHS) -> float:
    """The lowest accuracy a rerun of a configuration should reach on ``count`` images, given the
    seed study's ``mean`` and ``sd`` of that figure: ``mean - widths * max(sd, se)``, with ``se`` the
    binomial standard error of an accuracy of ``mean`` on ``count`` images.

    The binomial error is a lower bound on the width because an sd estimated from a few seeds can
    come out far smaller than the spread of the next run (two seeds agreeing to an image say little),
    and because another model (other CPU, feedback rows mixed in) answers other images. A NaN ``sd``
    (one seed, or no study) leaves the binomial error alone."""
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    if not 0.0 <= mean <= 1.0:
        raise ValueError(f"mean must be an accuracy in [0, 1], got {mean}")
    se = float(np.sqrt(mean * (1.0 - mean) / count))
    width = se if not np.isfinite(sd) else max(float(sd), se)
    return mean - widths * width


def study_noise_floor(figure: Mapping[str, Any], count: int, widths: float = NOISE_WIDTHS) -> float:
    """`noise_floor` of one figure over seeds, ``{"mean", "sd", "n"}`` as `doodle.study.study_results.SeedStudy.figure`
    reads it from the study's results CSV (and experiments.json reports it); ``sd`` None or NaN with one seed."""
    sd = figure.get("sd")
    return noise_floor(float(figure["mean"]), float("nan") if sd is None else float(sd), count, widths)
