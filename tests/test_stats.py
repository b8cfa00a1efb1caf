"""The statistics protocol (marlkit.analysis.stats): its decisions checked by simulation, its pieces by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from marlkit.analysis import stats

ALGOS = ("a", "b", "c")
SIMULATIONS = 500


@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_no_more_false_claims_than_5_percent_under_the_null(seeds):
    """Three identical algorithms (iid normal final returns): the share of tasks with any claim stays at
    most 5%, plus twice the simulation's own standard error (sqrt(0.05 * 0.95 / 500) = 0.0097)."""
    rng = np.random.default_rng(seeds)
    false = sum(bool(stats.claims({a: rng.normal(0.0, 1.0, seeds) for a in ALGOS})) for _ in range(SIMULATIONS))
    assert false / SIMULATIONS <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / SIMULATIONS), false


def test_a_real_difference_is_found_at_10_seeds():
    """One algorithm 1.5 standard deviations above the two others: at 10 seeds the report calls it better
    than at least one of them in at least 80% of the simulations, and never calls it worse."""
    rng = np.random.default_rng(0)
    found, reversed_claims = 0, 0
    for _ in range(SIMULATIONS):
        made = stats.claims({a: rng.normal(1.5 if a == "a" else 0.0, 1.0, 10) for a in ALGOS})
        found += any(w == "a" for w, _ in made)
        reversed_claims += any(loser == "a" for _, loser in made)
    assert found / SIMULATIONS >= 0.8, found
    assert reversed_claims == 0


def test_three_seeds_never_decide():
    """With 3 runs each there are 20 splits of the pooled runs: no p-value below 0.1, whatever the data."""
    a, b = np.array([10.0, 11, 12]), np.array([0.0, 1, 2])
    assert stats.permutation_p(a, b) == pytest.approx(0.1) and stats.smallest_p(3, 3) == pytest.approx(0.1)
    sentence = stats.verdict({"a": a, "b": b})
    assert sentence.startswith("Inconclusive at 3 seeds") and "so no difference could be detected" in sentence
    assert "about 4 seeds per algorithm would be needed" in sentence  # 4 + 4 runs: 70 splits, p down to 0.029


def test_permutation_p_is_exact_for_small_samples():
    # a = [0, 3], b = [1, 2]: the 6 splits give |differences| 0, 0, 2, 2, 2, 2 around the observed 0.
    assert stats.permutation_p(np.array([0.0, 3.0]), np.array([1.0, 2.0])) == 1.0
    # a = [3, 4], b = [0, 1]: |diff| = 3 is reached by that split and its mirror only: 2 / 6.
    assert stats.permutation_p(np.array([3.0, 4.0]), np.array([0.0, 1.0])) == pytest.approx(2 / 6)


def test_holm_by_hand():
    # Sorted p: 0.01 (x3 = 0.03), 0.02 (x2 = 0.04), 0.04 (x1 = 0.04); monotone, in the input order.
    assert stats.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert stats.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_welch_ci_and_power_match_scipy_and_simulation():
    a, b = np.array([1.0, 2.0, 4.0, 3.5]), np.array([0.0, 0.5, 1.0])
    low, high = stats.welch_ci(a, b)
    result = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert (low, high) == pytest.approx(tuple(result.confidence_interval(0.95)))
    # The power of a t-test against 1 SD at 10 per group and 5%: 0.562 (noncentral t), by simulation too.
    assert stats.power(1.0, 1.0, 10, 10, 0.05) == pytest.approx(0.562, abs=0.002)
    rng = np.random.default_rng(0)
    hits = np.mean(
        [scipy_stats.ttest_ind(rng.normal(1, 1, 10), rng.normal(0, 1, 10)).pvalue < 0.05 for _ in range(4000)]
    )
    assert hits == pytest.approx(0.562, abs=0.025)  # 3.1 standard errors of 4000 draws
    # The detectable difference is where the power reaches 80%; the seeds needed, the first n that does.
    mde = stats.detectable(1.0, 10, 10, 0.05)
    assert stats.power(mde, 1.0, 10, 10, 0.05) == pytest.approx(0.8, abs=1e-6)
    n = stats.seeds_needed(1.0, 1.0, 0.05)
    assert n == 17 and stats.power(1.0, 1.0, 16, 16, 0.05) < 0.8 <= stats.power(1.0, 1.0, 17, 17, 0.05)


def test_verdict_sentences():
    inconclusive = stats.verdict({"itrpo": [-72.4, -49.9, -67.3], "hatrpo": [-72.8, -95.8, -87.5]})
    assert inconclusive.startswith("Inconclusive at 3 seeds: itrpo − hatrpo = +")
    assert "no difference could be detected" in inconclusive and "seeds per algorithm would be needed" in inconclusive
    rng = np.random.default_rng(1)
    clear = stats.verdict({"good": rng.normal(5, 1, 6), "bad": rng.normal(0, 1, 6), "worse": rng.normal(-5, 1, 6)})
    assert clear.startswith("Different at 6 seeds") and "good > bad" in clear and "bad > worse" in clear
    assert "one seed" in stats.verdict({"a": [1.0], "b": [2.0, 3.0]})


# ----------------------------------------------------------------------- aggregates (rliable's definitions)
def test_iqm_optimality_gap_and_profiles_by_hand():
    assert stats.iqm(np.arange(1, 9)) == pytest.approx(4.5)  # the middle 50%: 3, 4, 5, 6
    # Shortfalls below 1: 0.5, 0, 0 (1.2 counts as 1), 1 -> mean 0.375.
    assert stats.optimality_gap(np.array([0.5, 1.0, 1.2, 0.0])) == pytest.approx(0.375)
    profile = stats.performance_profile(np.array([0.1, 0.5, 0.9, 1.3]), np.array([0.0, 0.5, 1.0]))
    assert profile.tolist() == [1.0, 0.5, 0.25]


def test_probability_of_improvement_by_hand_and_its_ci():
    # Task 1: x beats y in 3 of 4 pairs; task 2: one tie of one pair (0.5). Mean over tasks: 0.625.
    x = [np.array([2.0, 3.0]), np.array([1.0])]
    y = [np.array([1.0, 2.5]), np.array([1.0])]
    assert stats.improvement(x, y) == pytest.approx(0.625)
    low, high = stats.stratified_bootstrap([x, y], stats.improvement)
    assert 0.0 <= low <= 0.625 <= high <= 1.0
    assert stats.stratified_bootstrap([x, y], stats.improvement) == (low, high), "seeded"


# ----------------------------------------------------------------------------- marl-eval export
def test_marl_eval_export_of_a_real_compare_run(tmp_path, capsys):
    """``marlkit report --export marl-eval`` on a compare sweep: environment -> task -> algorithm -> run_k
    -> step_k (step_count and one value per evaluation episode) plus absolute_metrics (10x the episodes),
    the layout marl-eval documents; each step's mean is the run's eval_return_mean at that frame."""
    import csv
    import json

    from marlkit.analysis.sweep import compare
    from marlkit.cli import main

    small = {"env.n_agents": 2, "env.max_steps": 25, "experiment.num_envs": 4, "experiment.eval_every": 200,
             "experiment.eval_episodes": 3, "experiment.tensorboard": False, "algo.rollout_steps": 25,
             "algo.hidden": [16, 16]}  # fmt: skip
    out = tmp_path / "sweep"
    result = compare(["itrpo", "matrpo"], ["vmas/navigation"], [0, 1], out, frames=400, overrides=small, jobs=1,
                     progress=False)  # fmt: skip
    assert not result["failed"]
    assert main(["report", str(out), "--export", "marl-eval", "--crossplay-episodes", "0"]) == 0
    assert "marl-eval:" in capsys.readouterr().out
    data = json.loads((out / "marl_eval.json").read_text())
    assert list(data) == ["vmas"] and list(data["vmas"]) == ["navigation"]
    algos = data["vmas"]["navigation"]
    assert sorted(algos) == ["itrpo", "matrpo"]
    for algo, runs in algos.items():
        assert sorted(runs) == ["run_0", "run_1"]
        for seed, run in enumerate(sorted(runs)):
            entry = runs[run]
            steps = sorted((k for k in entry if k.startswith("step_")), key=lambda k: int(k.split("_")[1]))
            assert steps == ["step_0", "step_1", "step_2"] and set(entry) == {*steps, "absolute_metrics"}
            with open(out / "vmas-navigation" / algo / f"seed{seed}" / "metrics.csv") as f:
                rows = list(csv.DictReader(f))
            evals = {int(r["frames"]): float(r["eval_return_mean"]) for r in rows if r["eval_return_mean"]}
            for step in steps:
                values = entry[step]
                assert isinstance(values["step_count"], int) and values["step_count"] in evals
                assert len(values["episode_return"]) == 3 and len(values["episode_return_team"]) == 3
                # float32 episode returns averaged here in float64, there in float32: float32 tolerance.
                expected = evals[values["step_count"]]
                assert np.mean(values["episode_return"]) == pytest.approx(expected, rel=1e-5, abs=1e-6)
            assert [entry[s]["step_count"] for s in steps] == [0, 200, 400]
            assert len(entry["absolute_metrics"]["episode_return"]) == 30
