"""A learner per team: isolation of the teams' learners, frozen and scripted opponents, opponent pools,
head-to-head evaluation, and one-line errors for bad team configs."""

from __future__ import annotations

import io
import json

import pytest
import torch

from marlkit import make_env
from marlkit.algorithms import algorithm
from marlkit.algorithms.teams import Teams, TeamsConfig
from marlkit.analysis.games import crossplay, evaluate_against
from marlkit.core.checkpoint import load_checkpoint
from marlkit.core.errors import MarlkitError
from marlkit.learner import EnvInfo
from marlkit.training.config import RunConfig, build_config
from marlkit.training.experiment import Experiment
from marlkit.training.rollout import RolloutCollector

ADVERSARY = "mpe/simple_adversary_v3"
SMALL = {"hidden": [16, 16]}
OFF = {**SMALL, "rollout_steps": 10, "warmup_frames": 0, "batch_size": 32, "updates_per_frame": 0.25}
ON = {**SMALL, "rollout_steps": 20}


def teams_config(**teams: dict) -> TeamsConfig:
    return TeamsConfig.from_overrides({f"{t}.{k}": v for t, table in teams.items() for k, v in table.items()})


def env_info(name: str = ADVERSARY, **kwargs) -> EnvInfo:
    return EnvInfo.of(make_env(name, 1, "cpu", 0, **kwargs))


def params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    now = dict(module.named_parameters())
    return {k for k, v in before.items() if not torch.equal(now[k], v)}


def test_each_team_moves_only_through_its_own_learner():
    # MADDPG adversary (10-step collections) beside MAPPO good agents (20 steps): one 20-step
    # collection is two MADDPG updates and one MAPPO update, each on its own groups only.
    cfg = teams_config(adversary={"play": "maddpg", **OFF}, agent={"play": "mappo", **ON})
    info = env_info(continuous_actions=True)
    torch.manual_seed(0)  # networks draw their initial weights from the global generator
    whole = Teams(cfg, info, seed=3)
    torch.manual_seed(0)
    alone = Teams(cfg, info, seed=3)
    assert whole.steps_per_collection == 20
    env = make_env(ADVERSARY, 4, "cpu", 0, continuous_actions=True)
    collector = RolloutCollector(env, whole.act, 20, reuse_buffer=False)
    collector.reset(0)
    batch = collector.collect()[0]
    start = {n: params(learner) for n, learner in whole.learners.items()}
    torch.manual_seed(1)
    whole.update(batch)
    assert changed(start["adversary"], whole.learners["adversary"]) and changed(start["agent"], whole.learners["agent"])
    # The adversary's learner alone, on its own groups in two 10-step slices, lands on the same weights;
    # the other team's learner, never called, keeps its initial weights.
    seen = []
    original = alone.learners["adversary"].update

    def spy(part):
        seen.append(sorted(k for k in part.keys() if k not in ("state", "done", "next")))
        return original(part)

    alone.learners["adversary"].update = spy  # type: ignore[method-assign]
    own = batch.exclude("agent", ("next", "agent"))
    torch.manual_seed(1)
    for s in (0, 10):
        alone.learners["adversary"].update(own[:, s : s + 10])
    assert seen == [["adversary"], ["adversary"]]
    for k, v in whole.learners["adversary"].named_parameters():
        assert torch.equal(v, dict(alone.learners["adversary"].named_parameters())[k]), k
    assert not changed(start["agent"], alone.learners["agent"])


def test_on_policy_teams_need_the_full_collection():
    cfg = teams_config(adversary={"play": "mappo", **ON}, agent={"play": "ppo", **SMALL, "rollout_steps": 10})
    with pytest.raises(MarlkitError, match="team 'agent' learns from fresh actions only and collects 10 steps"):
        Teams(cfg, env_info(), seed=0)


def short_run(tmp_path, name: str, algo: str, overrides: dict, env: str = ADVERSARY) -> Experiment:
    base = {
        "experiment.frames": 800,
        "experiment.num_envs": 4,
        "experiment.eval_every": 400,
        "experiment.eval_episodes": 2,
        "experiment.progress": False,
        "experiment.tensorboard": False,
    }
    exp = Experiment(build_config(algo, env, {**base, **overrides}), tmp_path / name)
    exp.run()
    return exp


@pytest.fixture(scope="module")
def ddpg_run(tmp_path_factory) -> Experiment:
    """One finished DDPG run on simple_adversary: an opponent and a cross-play entrant."""
    return short_run(tmp_path_factory.mktemp("ddpg"), "source", "ddpg", {f"algo.{k}": v for k, v in OFF.items()})


def test_frozen_team_is_bit_identical_after_training(tmp_path, ddpg_run):
    source = ddpg_run
    frozen_weights = load_checkpoint(source.out / "checkpoints" / "final.pt")["learner"]
    run = short_run(
        tmp_path,
        "teams",
        "teams",
        {
            "algo.adversary.play": "frozen",
            "algo.adversary.opponent": str(source.out),
            "algo.agent.play": "ippo",
            **{f"algo.agent.{k}": v for k, v in ON.items()},
        },
    )
    final = load_checkpoint(tmp_path / "teams" / "checkpoints" / "final.pt")["learner"]
    prefix = "players.adversary.learner."
    frozen = {k[len(prefix) :]: v for k, v in final.items() if k.startswith(prefix)}
    assert frozen.keys() == frozen_weights.keys()
    for k, v in frozen.items():
        assert torch.equal(v, frozen_weights[k]), k
    trained = {k for k in final if k.startswith("players.agent.")}
    assert trained and run.rows[-1]["eval_return_adversary"] == run.rows[-1]["eval_return_adversary"]


def always_stay(td, groups):
    """A scripted policy by import path: every agent of its groups takes action 0."""
    for g, spec in groups.items():
        td[g]["action"] = torch.zeros(*td.batch_size, spec.n_agents, dtype=torch.long)


def test_scripted_opponents_random_and_by_import_path():
    random_cfg = teams_config(adversary={"play": "scripted", "opponent": "random"}, agent={"play": "iql", **SMALL})
    scripted_cfg = teams_config(
        adversary={"play": "scripted", "opponent": "tests.test_teams:always_stay"}, agent={"play": "iql", **SMALL}
    )
    env = make_env(ADVERSARY, 500, "cpu", 0)
    td = env.reset(0)
    first = Teams(random_cfg, EnvInfo.of(env), seed=5).act(td.clone())["adversary", "action"]
    again = Teams(random_cfg, EnvInfo.of(env), seed=5).act(td.clone())["adversary", "action"]
    assert torch.equal(first, again), "seeded"
    counts = torch.bincount(first.flatten(), minlength=5)
    assert counts.sum() == 500 and (counts > 70).all(), counts  # uniform over 5 actions: ~100 each
    stay = Teams(scripted_cfg, EnvInfo.of(env), seed=5).act(td.clone())
    assert (stay["adversary", "action"] == 0).all() and stay["agent", "action"].shape == (500, 2)


def selfplay_teams(latest: float = 0.0, seed: int = 0) -> Teams:
    cfg = teams_config(
        red={"play": "ppo", **ON, "snapshot_every": 40, "pool_size": 3},
        blue={"play": "pool", "opponent": "red", "latest": latest},
    )
    return Teams(cfg, env_info("envs/duel"), seed=seed)


def play_updates(teams: Teams, n: int) -> list[int]:
    env = make_env("envs/duel", 2, "cpu", 0)
    collector = RolloutCollector(env, teams.act, teams.steps_per_collection)
    collector.reset(0)
    drawn = []
    for _ in range(n):
        teams.update(collector.collect()[0])
        drawn.append(teams.playing["blue"])
    return drawn


def test_pool_snapshots_sample_and_round_trip_a_checkpoint():
    teams = selfplay_teams()
    drawn = play_updates(teams, 6)  # 40 frames per update: a snapshot after every update
    assert [f for f, *_ in teams.pool("red")] == [160, 200, 240], "the newest pool_size snapshots"
    assert all(0 <= d < 3 for d in drawn)
    # Blue plays the drawn snapshot's weights, which are red's weights at that frame.
    snapshot = teams.pool("red")[teams.playing["blue"]][1]
    for k, v in teams.players["blue"].learner.state_dict().items():
        assert torch.equal(v, snapshot[k]), k
    # Round trip through a checkpoint file (weights_only): pools, the playing snapshot and the draws continue.
    buffer = io.BytesIO()
    torch.save({"training": teams.training_state(), "learner": teams.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    copy = selfplay_teams(seed=0)
    copy.load_training_state(state["training"])
    copy.load_state_dict(state["learner"])
    assert [f for f, *_ in copy.pool("red")] == [160, 200, 240] and copy.playing == teams.playing
    for (_, a, _), (_, b, _) in zip(copy.pool("red"), teams.pool("red"), strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert play_updates(copy, 4) == play_updates(teams, 4)


def test_pool_sampling_follows_latest():
    newest = selfplay_teams(latest=1.0)
    assert play_updates(newest, 2) == [1, 2], "the newest snapshot, as the pool grows"
    uniform = selfplay_teams(latest=0.0)
    play_updates(uniform, 2)  # a pool of 3 snapshots
    draws = []
    for _ in range(90):
        uniform._draw_opponents()
        draws.append(uniform.playing["blue"])
    counts = torch.bincount(torch.tensor(draws), minlength=3)
    assert (counts > 15).all(), counts  # ~30 each


def test_eval_against_and_crossplay(tmp_path, ddpg_run):
    a = ddpg_run
    b = short_run(tmp_path, "b", "maddpg", {f"algo.{k}": v for k, v in OFF.items()})
    result = evaluate_against(a.out, b.out, episodes=4)
    assert set(result["sides"]) == {"adversary", "agent"}
    cross = crossplay([a.out, b.out], episodes=4)
    # The diagonal is each run against itself: the same game as its own evaluation.
    own = evaluate_against(a.out, a.out, episodes=4)["sides"]["adversary"]["return_adversary"]
    assert cross["matrix"]["adversary"][0][0] == pytest.approx(own)
    assert cross["matrix"]["adversary"][0][1] == pytest.approx(result["sides"]["adversary"]["return_adversary"])


def test_teams_config_round_trips_config_json():
    config = build_config(
        "teams",
        ADVERSARY,
        {
            "algo.adversary.play": "maddpg",
            "algo.adversary.batch_size": 64,
            "algo.agent.play": "scripted",
            "algo.agent.opponent": "random",
        },
    )
    again = RunConfig.from_json(json.loads(json.dumps(config.to_json())))
    assert again == config and again.algo.team("adversary").algo.batch_size == 64


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"adversary.play": "maddpg", "good.play": "ddpg", "good.groups": ["agent", "adversary"]},
            "group 'adversary' is in two teams, 'adversary' and 'good'; give it to one",
        ),
        (
            {"adversary.play": "maddpg", "agent.play": "ddpg", "agent.groups": ["agent", "adversary"]},
            "team 'agent' is named like a group but holds \\['agent', 'adversary'\\]",
        ),
        ({"adversary.play": "maddpg"}, "group 'agent' of mpe/simple_adversary_v3 is in no team"),
        ({"adversary.play": "maddpg", "good.play": "ddpg", "good.groups": ["agnt"]}, "Did you mean 'agent'"),
        ({"adversary.play": "qmix", "agent.play": "ddpg"}, "team 'adversary' \\(qmix on adversary\\): "),
        (
            {"adversary.play": "maddpg", "agent.play": "pool", "agent.opponent": "adversary"},
            "which is not a learning team with snapshot_every > 0",
        ),
        (
            {
                "adversary.play": "maddpg",
                "adversary.snapshot_every": 10,
                "agent.play": "pool",
                "agent.opponent": "adversary",
            },
            "group 'adversary' of team 'adversary' has 1 agents, observation \\(8,\\)",
        ),
        ({"adversary.play": "maddpg", "agent.play": "frozen"}, "needs algo.agent.opponent"),
        (
            {"adversary.play": "maddpg", "adversary.bach_size": 3, "agent.play": "ddpg"},
            "Did you mean 'algo.adversary.batch_size'",
        ),
    ],
)
def test_bad_team_configs_fail_in_one_line(overrides, message):
    with pytest.raises(MarlkitError, match=message) as err:
        config = build_config("teams", ADVERSARY, {f"algo.{k}": v for k, v in overrides.items()})
        algorithm("teams").build(config.algo, env_info(continuous_actions=True), 0)
    assert "\n" not in str(err.value)


def test_opponent_checkpoint_must_match_the_env(ddpg_run):
    source = ddpg_run
    config = build_config(
        "teams",
        "mpe/simple_tag_v3",
        {"algo.adversary.play": "frozen", "algo.adversary.opponent": str(source.out), "algo.agent.play": "ddpg"},
    )
    with pytest.raises(
        MarlkitError,
        match=r"group 'adversary' of checkpoint .* has 1 agents, observation \(8,\).*"
        r"this env's 'adversary' has 3 agents, observation \(16,\)",
    ):
        algorithm("teams").build(config.algo, env_info("mpe/simple_tag_v3"), 0)
    config = build_config(
        "teams", "envs/duel", {"algo.red.play": "frozen", "algo.red.opponent": str(source.out), "algo.blue.play": "ppo"}
    )
    with pytest.raises(MarlkitError, match="has no group 'red' \\(its groups: adversary, agent\\)"):
        algorithm("teams").build(config.algo, env_info("envs/duel"), 0)


def test_cli_team_flags_train_and_eval_against(tmp_path, capsys):
    from marlkit.cli import main

    run = tmp_path / "duel"
    args = ["train", "envs/duel", "--team", "red=ppo", "--team", "blue=scripted:random", "--frames", "400",
            "--out", str(run), "experiment.num_envs=4", "experiment.eval_episodes=4", "algo.red.rollout_steps=20",
            "algo.red.hidden=[8]", "experiment.progress=false", "experiment.tensorboard=false"]  # fmt: skip
    assert main(args) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["algo_name"] == "teams" and config["algo"]["blue"]["opponent"] == "random"
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"eval_return_red", "eval_win_red", "eval_win_blue", "eval_draw", "red/actor_loss"} <= set(header)
    capsys.readouterr()
    assert main(["eval", str(run), "--against", str(run), "--episodes", "4"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    for side in ("red", "blue"):
        numbers = result["sides"][side]
        assert numbers["win_red"] + numbers["win_blue"] + numbers["draw"] == pytest.approx(1.0)
    assert main(["train", "envs/duel", "--team", "red"]) == 2
    assert "--team takes TEAM=ALGO" in capsys.readouterr().err


# ------------------------------------------------ opponents act with their trained policy (defect 1)
def explore_and_greedy(teams: Teams, env_name: str, group: str, copies: int = 256, **env_kwargs):
    """A team's actions on fresh observations when collecting (explore) and when evaluating (greedy)."""
    td = make_env(env_name, copies, "cpu", 0, **env_kwargs).reset(0)
    torch.manual_seed(0)
    explore = teams.act(td.clone())[group, "action"]
    greedy = teams.act(td.clone(), deterministic=True)[group, "action"]
    return explore, greedy


OPPONENT_SOURCES = {
    # IQL on envs/duel: epsilon 1.0 during the 100-frame warm-up, then 0 (no decay).
    "iql": ("envs/duel", "red", {"algo.warmup_frames": 100, "algo.eps_decay_frames": 0, "algo.eps_final": 0.0}),
    # DDPG: random actions during the 400-frame warm-up, no exploration noise after it.
    "ddpg": ("mpe/simple_adversary_v3", "adversary", {"algo.warmup_frames": 400, "algo.noise_std": 0.0}),
}


@pytest.mark.parametrize("algo", sorted(OPPONENT_SOURCES))
def test_frozen_off_policy_opponent_acts_with_its_trained_policy(tmp_path, algo):
    """A frozen opponent from an off-policy or value-based run keeps the exploration state it had reached
    (past warm-up, epsilon / noise at their final 0 here), so it plays its greedy policy while the other
    team trains; it used to act uniformly at random (its schedule's frame count restarted at 0)."""
    env_name, group, extra = OPPONENT_SOURCES[algo]
    kwargs = {"continuous_actions": True} if algo == "ddpg" else {}
    small = {"algo.hidden": [16, 16], "algo.rollout_steps": 10, "algo.batch_size": 32}
    source = short_run(tmp_path, "source", algo, {**small, **extra, **{f"env.{k}": v for k, v in kwargs.items()}},
                       env=env_name)  # fmt: skip
    other = next(g for g in env_info(env_name, **kwargs).groups if g != group)
    cfg = teams_config(**{group: {"play": "frozen", "opponent": str(source.out)}, other: {"play": "ppo", **ON}})
    teams = Teams(cfg, env_info(env_name, **kwargs), seed=0)
    assert teams.players[group].learner.schedule.frames == 800
    explore, greedy = explore_and_greedy(teams, env_name, group, **kwargs)
    assert torch.equal(explore, greedy)


def test_pool_of_an_off_policy_team_plays_the_snapshots_exploration():
    """A pool player mirrors a value-based team at the exploration level of the snapshot it plays: the
    first snapshot (frame 0, in warm-up) acts at random, later ones (epsilon 0) greedily."""
    red = {"rollout_steps": 10, "batch_size": 16, "warmup_frames": 40, "eps_decay_frames": 0, "eps_final": 0.0}
    cfg = teams_config(
        red={"play": "iql", **SMALL, **red, "snapshot_every": 20},
        blue={"play": "pool", "opponent": "red", "latest": 1.0},
    )
    teams = Teams(cfg, env_info("envs/duel"), seed=0)
    explore, greedy = explore_and_greedy(teams, "envs/duel", "blue")
    assert (explore != greedy).float().mean() > 0.5, "the frame-0 snapshot is in its warm-up: uniform"
    play_updates(teams, 3)  # 3 x 20 frames: the newest snapshot is past red's warm-up
    assert teams.pool("red")[-1][2]["frames"] == 60 and teams.playing["blue"] == len(teams.pool("red")) - 1
    explore, greedy = explore_and_greedy(teams, "envs/duel", "blue")
    assert torch.equal(explore, greedy)


def test_greedy_opponents_act_deterministically(ddpg_run):
    """``acting=greedy``: a frozen DDPG opponent (Gumbel-softmax on discrete actions) plays its argmax."""
    agent = {"play": "ppo", **ON}
    frozen = {"play": "frozen", "opponent": str(ddpg_run.out)}
    sampling = Teams(teams_config(adversary=frozen, agent=agent), env_info(), 0)
    explore, greedy = explore_and_greedy(sampling, ADVERSARY, "adversary")
    assert not torch.equal(explore, greedy), "explore samples DDPG's Gumbel-softmax"
    cfg = teams_config(adversary={"play": "frozen", "opponent": str(ddpg_run.out), "acting": "greedy"}, agent=agent)
    explore, greedy = explore_and_greedy(Teams(cfg, env_info(), 0), ADVERSARY, "adversary")
    assert torch.equal(explore, greedy)
    with pytest.raises(MarlkitError, match=r"algo\.agent\.acting applies to frozen and pool teams only"):
        teams_config(adversary={"play": "ddpg"}, agent={**agent, "acting": "greedy"})


def test_frozen_opponents_exploration_state_resumes_exactly(tmp_path):
    """An OU-noise state that moves while a frozen opponent acts is in the teams checkpoint."""
    source = short_run(tmp_path, "source", "ddpg", {"algo.hidden": [8], "algo.exploration": "ou",
                       "algo.warmup_frames": 0, "env.continuous_actions": True})  # fmt: skip
    cfg = teams_config(adversary={"play": "frozen", "opponent": str(source.out)}, agent={"play": "ppo", **ON})
    info = env_info(continuous_actions=True)
    teams = Teams(cfg, info, 0)
    td = make_env(ADVERSARY, 8, "cpu", 0, continuous_actions=True).reset(0)
    for _ in range(3):
        teams.act(td.clone())
    assert teams.players["adversary"].learner._ou, "OU states are kept per group"
    buffer = io.BytesIO()
    torch.save(teams.training_state(), buffer)
    buffer.seek(0)
    copy = Teams(cfg, info, 0)
    copy.load_training_state(torch.load(buffer, weights_only=True))
    torch.manual_seed(7)
    a = teams.act(td.clone())["adversary", "action"]
    torch.manual_seed(7)
    b = copy.act(td.clone())["adversary", "action"]
    assert torch.equal(a, b)  # the same code on the same shapes in one process: bit-identical


def test_a_teams_run_as_frozen_opponent_acts_as_its_teams_did(tmp_path):
    """A whole teams run loaded as an opponent: its IQL team keeps the exploration state it had reached."""
    red = {"rollout_steps": 10, "batch_size": 16, "warmup_frames": 100, "eps_decay_frames": 0, "eps_final": 0.0}
    source = short_run(
        tmp_path, "source", "teams",
        {**{f"algo.red.{k}": v for k, v in {"play": "iql", **SMALL, **red}.items()},
         "algo.blue.play": "scripted", "algo.blue.opponent": "random"},
        env="envs/duel",
    )  # fmt: skip
    cfg = teams_config(red={"play": "frozen", "opponent": str(source.out)}, blue={"play": "ppo", **ON})
    teams = Teams(cfg, env_info("envs/duel"), seed=0)
    assert teams.players["red"].learner.learners["red"].schedule.frames == 800
    explore, greedy = explore_and_greedy(teams, "envs/duel", "red")
    assert torch.equal(explore, greedy)


def test_critic_sees_all_widens_the_training_state_by_the_other_teams_actions():
    """MADDPG's critics see every agent's action: with critic_sees=all the adversary's learner trains on the
    state followed by the good agents' actions, the played ones at s and their player's greedy ones at s'."""
    cfg = teams_config(
        adversary={"play": "maddpg", **OFF, "critic_sees": "all"}, agent={"play": "ddpg", **OFF, "warmup_frames": 0}
    )
    info = env_info(continuous_actions=True)
    teams = Teams(cfg, info, seed=3)
    agents = info.groups["agent"]
    extra = agents.n_agents * agents.action.dim
    assert teams.learners["adversary"].state_dim == info.state_dim + extra
    assert teams.learners["agent"].state_dim == info.state_dim, "critic_sees=team keeps the state"
    env = make_env(ADVERSARY, 4, "cpu", 0, continuous_actions=True)
    collector = RolloutCollector(env, teams.act, 10, reuse_buffer=False)
    collector.reset(0)
    batch = collector.collect()[0]
    # What the agent's player does greedily on the next observations, before any update (hand-made).
    following = batch["next"].select("agent").reshape(-1).clone()
    greedy = teams.players["agent"].act(following, deterministic=True)["agent", "action"]
    low, high = agents.action.bounds("cpu")
    unit = lambda a: (2 * (a - low) / (high - low) - 1).flatten(-2)
    noise = teams.learners["agent"].acting_state()
    seen = []
    original = teams.learners["adversary"].update
    teams.learners["adversary"].update = lambda part: seen.append(part.clone()) or original(part)  # type: ignore[method-assign]
    teams.update(batch)
    (part,) = seen
    d = info.state_dim
    assert torch.equal(part["state"][..., :d], batch["state"])
    assert torch.allclose(part["state"][..., d:], unit(batch["agent", "action"]), atol=1e-6)
    assert torch.equal(part["next", "state"][..., :d], batch["next", "state"])
    assert torch.allclose(part["next", "state"][..., d:], unit(greedy).view(*batch.shape, extra), atol=1e-6)
    assert "agent" not in part.keys() and ("next", "agent") not in part.keys(True), "still its own groups only"
    after = teams.learners["agent"].acting_state()
    assert after.keys() == noise.keys() and all(
        not isinstance(v, torch.Tensor) or torch.equal(v, after[k]) for k, v in noise.items()
    ), "acting for the widened state leaves the other player's exploration where it was"


def test_critic_sees_all_leaves_a_scripted_opponents_random_stream_alone():
    base = {"adversary": {"play": "scripted", "opponent": "random"}}
    plain = Teams(teams_config(**base, agent={"play": "maddpg", **OFF}), env_info(continuous_actions=False), seed=1)
    wide = Teams(
        teams_config(**base, agent={"play": "maddpg", **OFF, "critic_sees": "all"}),
        env_info(continuous_actions=False),
        seed=1,
    )
    env = make_env(ADVERSARY, 4, "cpu", 0)
    actions = []
    for teams in (plain, wide):
        collector = RolloutCollector(env, teams.act, 10, reuse_buffer=False)
        collector.reset(0)
        torch.manual_seed(0)
        teams.update(collector.collect()[0])
        actions.append(collector.collect()[0]["adversary", "action"])
    assert torch.equal(*actions), "the random opponent plays the same actions after an update with widened states"


def test_a_pool_of_a_team_whose_critic_sees_all_loads(tmp_path):
    red = {"play": "mappo", **ON, "snapshot_every": 40, "critic_sees": "all"}
    config = build_config(
        "teams", "envs/duel", {**{f"algo.red.{k}": v for k, v in red.items()}, "algo.blue.play": "pool",
                               "algo.blue.opponent": "red"},
    )  # fmt: skip
    teams = Teams(config.algo, env_info("envs/duel"), seed=0)
    env = make_env("envs/duel", 2, "cpu", 0)
    collector = RolloutCollector(env, teams.act, teams.steps_per_collection)
    collector.reset(0)
    teams.update(collector.collect()[0])
    teams.update(collector.collect()[0])  # blue now plays a snapshot of red's widened learner
    teams.write_files(tmp_path, config.to_json())
    snapshot = sorted((tmp_path / "pool" / "red").glob("*.pt"))[-1]
    opponent = Teams(teams_config(red={"play": "frozen", "opponent": str(snapshot)}, blue={"play": "ppo", **ON}),
                     env_info("envs/duel"), seed=0)  # fmt: skip
    weights = opponent.players["red"].learner.state_dict()
    assert all(torch.equal(v, teams.learners["red"].state_dict()[k]) for k, v in weights.items())


@pytest.mark.parametrize(
    ("teams", "message"),
    [
        (
            {"adversary": {"play": "mappo", **ON, "network": "gru", "critic_network": "gru", "critic_sees": "all"},
             "agent": {"play": "ppo", **ON}},
            "team 'adversary' \\(mappo\\) reads the global state while acting.*set algo.adversary.critic_sees=team",
        ),
        (
            {"adversary": {"play": "scripted", "opponent": "random", "critic_sees": "all"}, "agent": {"play": "ppo"}},
            "algo.adversary.critic_sees applies to learning teams only; this team plays scripted",
        ),
        (
            {"good": {"play": "mappo", **ON, "groups": ["adversary", "agent"], "critic_sees": "all"}},
            "team 'good' has critic_sees=all but no other team; set it to team",
        ),
    ],
)  # fmt: skip
def test_critic_sees_all_refuses_what_it_cannot_serve_in_one_line(teams, message):
    with pytest.raises(MarlkitError, match=message) as err:
        Teams(teams_config(**teams), env_info(continuous_actions=True), seed=0)
    assert "\n" not in str(err.value)
