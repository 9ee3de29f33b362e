"""doodle.study.stats: spread over seeds, paired t intervals and McNemar's exact test."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from doodle.study import stats


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
    assert stats.noise_floor(0.97, 0.001, 300) < stats.noise_floor(
        0.97, 0.001, 3000
    )  # fewer images, lower floor


@pytest.mark.parametrize(("mean", "count"), [(0.99, 0), (1.2, 100), (-0.1, 100)])
def test_noise_floor_refuses_what_is_not_an_accuracy_on_images(mean, count):
    with pytest.raises(ValueError):
        stats.noise_floor(mean, 0.001, count)


def test_study_noise_floor_reads_the_experiments_stage_figures():
    assert stats.study_noise_floor({"mean": 0.99, "sd": 0.004, "n": 5}, 5000) == pytest.approx(
        0.99 - 3 * 0.004
    )
    one_seed = stats.study_noise_floor({"mean": 0.99, "sd": None, "n": 1}, 5000)
    assert one_seed == pytest.approx(stats.noise_floor(0.99, float("nan"), 5000))


def test_wilson_interval_matches_the_textbook_figures():
    # Agresti and Coull's example pair: 0 of 10 and 10 of 10 at 95 %.
    none = stats.wilson_interval(0, 10)
    assert (none.estimate, none.low) == (0.0, 0.0)
    assert none.high == pytest.approx(0.2775, abs=1e-4)
    every = stats.wilson_interval(10, 10)
    assert every.high == 1.0 and every.low == pytest.approx(1 - 0.2775, abs=1e-4)
    # Agrees with statsmodels' proportion_confint(method="wilson") for 81 of 263 (0.2553, 0.3662).
    interval = stats.wilson_interval(81, 263)
    assert (interval.low, interval.high) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert interval.estimate == pytest.approx(81 / 263)


def test_wilson_interval_narrows_with_more_trials_and_widens_with_confidence():
    assert stats.wilson_interval(297, 300).low < stats.wilson_interval(2970, 3000).low
    narrow, wide = stats.wilson_interval(297, 300, 0.9), stats.wilson_interval(297, 300, 0.99)
    assert wide.low < narrow.low < narrow.high < wide.high
    low_bar, high_bar = narrow.half_widths
    assert low_bar > 0 and high_bar > 0


@pytest.mark.parametrize(
    ("successes", "total", "confidence"), [(1, 0, 0.95), (5, 4, 0.95), (-1, 4, 0.95), (2, 4, 1.0)]
)
def test_wilson_interval_refuses_what_is_not_a_proportion(successes, total, confidence):
    with pytest.raises(ValueError):
        stats.wilson_interval(successes, total, confidence)


def test_clustered_interval_is_wilsons_when_groups_do_not_differ():
    # Every group right on the same share: no design effect, and with many groups t is close to z.
    correct = np.tile([True] * 9 + [False], 400)
    groups = np.repeat(np.arange(400), 10)
    clustered = stats.clustered_accuracy_interval(correct, groups)
    wilson = stats.wilson_interval(3600, 4000)
    assert clustered.estimate == pytest.approx(0.9)
    assert (clustered.low, clustered.high) == pytest.approx((wilson.low, wilson.high), abs=2e-4)


def test_clustered_interval_widens_when_mistakes_crowd_into_a_few_groups():
    # The same 90 % overall, once spread evenly and once as 4 writers wrong on everything.
    even = np.tile([True] * 9 + [False], 40)
    crowded = np.concatenate([np.zeros(40, dtype=bool), np.ones(360, dtype=bool)])
    groups = np.repeat(np.arange(40), 10)
    spread_out = stats.clustered_accuracy_interval(even, groups)
    clumped = stats.clustered_accuracy_interval(crowded, groups)
    assert spread_out.estimate == clumped.estimate == pytest.approx(0.9)
    assert clumped.high - clumped.low > 2 * (spread_out.high - spread_out.low)
    assert 0.0 <= clumped.low < clumped.estimate < clumped.high <= 1.0


def test_clustered_interval_keeps_a_width_when_every_item_is_right_and_needs_two_groups():
    everything = stats.clustered_accuracy_interval(np.ones(30, dtype=bool), np.repeat([0, 1, 2], 10))
    assert everything.estimate == everything.high == 1.0 and everything.low < 0.95
    with pytest.raises(ValueError, match="two groups"):
        stats.clustered_accuracy_interval(np.ones(5, dtype=bool), np.zeros(5))
    with pytest.raises(ValueError, match="groups has"):
        stats.clustered_accuracy_interval(np.ones(5, dtype=bool), np.arange(4))


def test_holm_adjusts_in_step_down_order_and_keeps_the_input_order():
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    # Sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> raised to 0.06 (monotone).
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert np.all(adjusted >= np.array([0.01, 0.04, 0.03, 0.005]))


def test_holm_leaves_untested_comparisons_out_of_the_family():
    adjusted = stats.holm([0.02, float("nan"), 0.5])
    assert (
        adjusted[0] == pytest.approx(0.04) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.5)
    )
    with pytest.raises(ValueError):
        stats.holm([1.5])


def test_paired_t_p_value_and_identical_seeds():
    differences = [0.1, 0.3, 0.2, 0.25, 0.15]
    assert stats.paired_t_p_value(differences) == pytest.approx(
        scipy_stats.ttest_1samp(differences, 0.0).pvalue
    )
    assert math.isnan(stats.paired_t_p_value([0.0, 0.0, 0.0]))
    assert stats.identical_on_every_seed([0.0, 0.0, 0.0])
    assert not stats.identical_on_every_seed([0.0, 0.001, 0.0])
    # 5 of 2,100 images at every seed, computed from different accuracies: the same up to rounding.
    same = [0.9947619047619047 - 0.9971428571428571, 0.9933333333333333 - 0.9957142857142857, -5 / 2100]
    assert stats.same_on_every_seed(same) and math.isnan(stats.paired_t_p_value(same))
    assert not stats.same_on_every_seed([-5 / 2100]) and not stats.same_on_every_seed([0.1, 0.2])


def test_pooled_mcnemar_sums_every_seeds_discordant_images():
    seeds = [stats.mcnemar([1, 2, 3], [3]), stats.mcnemar([4, 5], [6]), stats.mcnemar([7], [7])]
    pooled = stats.pooled_mcnemar(seeds)
    assert (pooled.only_a, pooled.only_b) == (4, 1)
    assert pooled.p_value == pytest.approx(scipy_stats.binomtest(1, 5, 0.5).pvalue)
    assert stats.pooled_mcnemar([stats.mcnemar([1], [1])]) == stats.McNemar(0, 0, 1.0)
    with pytest.raises(ValueError):
        stats.pooled_mcnemar([])
