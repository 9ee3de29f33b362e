"""Uncertainty of a comparison between training runs: pure functions on arrays of figures.

Used by the experiments notebook: mean and standard deviation over seeds, a paired t interval on
per-seed differences, and McNemar's exact test on the same test images for one pair of runs; and by
the quality gates (notebook checks, tests/test_behaviour.py): the noise floor a rerun should reach.
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
    """`noise_floor` of one figure over seeds, ``{"mean", "sd", "n"}`` as `doodle.study_results.SeedStudy.figure`
    reads it from the study's results CSV (and experiments.json reports it); ``sd`` None or NaN with one seed."""
    sd = figure.get("sd")
    return noise_floor(float(figure["mean"]), float("nan") if sd is None else float(sd), count, widths)
