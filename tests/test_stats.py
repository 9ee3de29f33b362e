"""doodle.stats: spread over seeds, paired t intervals and McNemar's exact test."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from doodle import stats


def test_spread_is_mean_and_sample_sd():
    result = stats.spread([0.99, 0.991, 0.992])
    assert result.n == 3
    assert result.mean == pytest.approx(0.991)
    assert result.sd == pytest.approx(0.001)


def test_spread_of_one_value_has_no_sd_and_of_none_is_an_error():
    assert math.isnan(stats.spread([0.5]).sd)
    with pytest.raises(ValueError, match="no values"):
        stats.spread([])


def test_paired_interval_agrees_with_scipys_t_test():
    rng = np.random.default_rng(3)
    differences = rng.normal(0.2, 0.3, size=5)
    interval = stats.paired_interval(differences, 0.95)
    low, high = scipy_stats.ttest_1samp(differences, 0.0).confidence_interval(0.95)
    assert (interval.low, interval.high) == pytest.approx((low, high))
    assert interval.mean == pytest.approx(differences.mean())
    assert interval.n == 5


def test_an_interval_excludes_zero_only_when_it_lies_on_one_side():
    assert stats.paired_interval([0.30, 0.32, 0.31]).excludes_zero
    assert stats.paired_interval([-0.30, -0.32, -0.31]).excludes_zero
    assert not stats.paired_interval([0.3, -0.2, 0.1]).excludes_zero


def test_one_seed_gives_no_interval():
    interval = stats.paired_interval([0.4])
    assert interval.n == 1 and math.isnan(interval.low) and math.isnan(interval.high)
    assert not interval.excludes_zero


def test_mcnemar_counts_discordant_images_and_gives_the_exact_p_value():
    result = stats.mcnemar([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 50], [50, 60])
    assert (result.only_a, result.only_b) == (10, 1)
    # Two-sided exact binomial test of 1 success in 11 at p = 0.5.
    assert result.p_value == pytest.approx(scipy_stats.binomtest(1, 11, 0.5).pvalue)
    assert result.p_value < 0.05


def test_mcnemar_of_identical_mistakes_is_no_evidence():
    assert stats.mcnemar([3, 4], [4, 3]) == stats.McNemar(0, 0, 1.0)
    assert stats.mcnemar([1, 2], [3, 4]).p_value == pytest.approx(1.0)


def test_noise_floor_takes_the_wider_of_the_seed_sd_and_the_binomial_error():
    se = np.sqrt(0.99 * 0.01 / 5000)
    assert stats.noise_floor(0.99, 0.0001, 5000) == pytest.approx(0.99 - 3 * se)  # a tiny sd from few seeds
    assert stats.noise_floor(0.99, 0.004, 5000) == pytest.approx(0.99 - 3 * 0.004)  # a real seed spread
    assert stats.noise_floor(0.99, float("nan"), 5000, widths=2.0) == pytest.approx(0.99 - 2 * se)
    assert stats.noise_floor(0.97, 0.001, 300) < stats.noise_floor(0.97, 0.001, 3000)  # fewer images, lower floor


@pytest.mark.parametrize(("mean", "count"), [(0.99, 0), (1.2, 100), (-0.1, 100)])
def test_noise_floor_refuses_what_is_not_an_accuracy_on_images(mean, count):
    with pytest.raises(ValueError):
        stats.noise_floor(mean, 0.001, count)


def test_study_noise_floor_reads_the_experiments_stage_figures():
    assert stats.study_noise_floor({"mean": 0.99, "sd": 0.004, "n": 5}, 5000) == pytest.approx(0.99 - 3 * 0.004)
    one_seed = stats.study_noise_floor({"mean": 0.99, "sd": None, "n": 1}, 5000)
    assert one_seed == pytest.approx(stats.noise_floor(0.99, float("nan"), 5000))
