"""Off-policy maths and invariants: soft targets, the tanh-Gaussian density, termination vs truncation,
MADDPG's decentralized actors / centralized critics, Polyak averaging and joint replay rows."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

from marlkit.adapters import make_env
from marlkit.algorithms import algorithm
from marlkit.algorithms.offpolicy import OffPolicy, polyak_, td_target
from marlkit.blocks.replay import ReplayBuffer
from marlkit.core.options import with_overrides
from marlkit.core.specs import Box, Discrete, GroupSpec
from marlkit.keys import ACTION, ALIVE, NEXT, OBS, REWARD, STATE, TERMINATED, TRUNCATED
from marlkit.learner import EnvInfo
from marlkit.networks.policies import squashed_log_prob
from marlkit.training.rollout import RolloutCollector


def make_learner(name: str, groups, state_dim: int, **overrides) -> OffPolicy:
    spec = algorithm(name)
    cfg = with_overrides(spec.config(), {**spec.preset, "hidden": (32, 32), "batch_size": 64, **overrides})
    return OffPolicy(cfg, EnvInfo("test", groups, state_dim), seed=0)


def filled(name: str, env_name: str = "vmas/navigation", frames: int = 400, **overrides) -> OffPolicy:
    env = make_env(env_name, 4, "cpu", 0, **({"n_agents": 3, "max_steps": 50} if env_name == "vmas/navigation" else {}))
    learner = make_learner(name, env.groups, env.state_dim, warmup_frames=10**9, **overrides)
    collector = RolloutCollector(env, learner.act, frames // 4)
    batch, _ = collector.collect()
    learner.update(batch)
    return learner


# ------------------------------------------------------------------- targets
def test_soft_target_matches_seed_example():
    # Q = 10, log pi = -0.5, alpha = 0.2: soft value 10 - 0.2 * (-0.5) = 10.1.
    y = td_target(
        torch.tensor(0.0), torch.tensor(False), torch.tensor(10.0), 1.0, torch.tensor(0.2), torch.tensor(-0.5)
    )
    assert y.item() == pytest.approx(10.1)
    y = td_target(
        torch.tensor(1.0), torch.tensor(False), torch.tensor(10.0), 0.9, torch.tensor(0.2), torch.tensor(-0.5)
    )
    assert y.item() == pytest.approx(1.0 + 0.9 * 10.1)
    y = td_target(torch.tensor(1.0), torch.tensor(True), torch.tensor(10.0), 0.9, torch.tensor(0.2), torch.tensor(-0.5))
    assert y.item() == pytest.approx(1.0)


@pytest.mark.parametrize(("per_dim", "direction"), [(-50.0, -1), (50.0, 1)])
def test_temperature_moves_towards_the_entropy_target(per_dim, direction):
    # The policy's entropy (a few nats) is far above a target of -50 per dimension and far below +50:
    # alpha must fall in the first case and rise in the second.
    learner = filled("masac", target_entropy_per_dim=per_dim, alpha_lr=0.1)
    before = {g: a.detach().clone() for g, a in learner.log_alpha.items()}
    learner.gradient_step()
    for g, a in learner.log_alpha.items():
        assert torch.all(torch.sign(a.detach() - before[g]) == direction)


@pytest.mark.parametrize("name", ["masac", "maddpg", "sac"])
def test_targets_use_terminated_never_truncated(name):
    learner = filled(name)
    torch.manual_seed(1)
    batch = learner.sample()
    g = next(iter(learner.groups))
    d = batch.data[g]
    d["terminated"] = torch.zeros_like(d["terminated"])

    def targets() -> torch.Tensor:
        torch.manual_seed(2)  # the same fresh next actions each time
        return learner.targets(batch)[g]

    base = targets()
    # Flags on the stored rows: truncation is not even read; flipping it in the raw rows changes nothing.
    assert "truncated" not in d
    d["terminated"][:, 0] = 1.0
    ended = targets()
    assert torch.equal(ended[:, 0], d["reward"][:, 0])
    assert torch.equal(ended[:, 1:], base[:, 1:])
    assert not torch.equal(base[:, 0], d["reward"][:, 0])


def test_truncated_rows_bootstrap_in_a_real_run():
    # vmas/navigation only truncates (max_steps): every target must include the bootstrap term.
    learner = filled("masac", frames=800)
    learner_env_rows = learner.replay.storage[: len(learner.replay)]
    g = next(iter(learner.groups))
    assert bool(learner_env_rows[g][TRUNCATED].any()) and not bool(learner_env_rows[g][TERMINATED].any())
    batch = learner.sample()
    y = learner.targets(batch)[g]
    assert not torch.allclose(y, batch.data[g]["reward"])


# ------------------------------------------------------- tanh-Gaussian density
@settings(max_examples=15, deadline=None)
@given(
    loc=st.floats(-2, 2),
    log_std=st.floats(-1.5, 0.7),
    low=st.floats(-3, 0),
    width=st.floats(0.5, 4),
)
def test_tanh_gaussian_log_prob_matches_integrated_density(loc, log_std, low, width):
    high = low + width
    scale = width / 2
    # Density of a = low + (tanh(u) + 1) * scale on a fine grid, through squashed_log_prob at u = atanh(.)
    a = torch.linspace(low, high, 200_001, dtype=torch.float64)[1:-1]
    u = torch.atanh((a - low) / scale - 1)
    t = lambda v: torch.tensor([v], dtype=torch.float64)
    density = squashed_log_prob(u.unsqueeze(-1), t(loc), t(log_std), t(math.log(scale))).exp()
    normal = torch.distributions.Normal(torch.tensor(loc, dtype=torch.float64), math.exp(log_std))
    # The mass of any interval of actions equals the Gaussian mass of its pre-image under the squashing,
    # for the whole grid (all but the extreme tails) and for a sub-interval.
    for lo, hi in ((0, len(a) - 1), (len(a) // 3, 2 * len(a) // 3)):
        mass = torch.trapezoid(density[lo : hi + 1], a[lo : hi + 1]).item()
        expected = (normal.cdf(u[hi]) - normal.cdf(u[lo])).item()
        assert mass == pytest.approx(expected, abs=1e-3)
    assert torch.trapezoid(density, a).item() > 0.95


def test_squashed_log_prob_is_finite_for_saturated_samples():
    u = torch.tensor([[30.0], [-30.0]])
    logp = squashed_log_prob(u, torch.zeros(1), torch.zeros(1), torch.zeros(1))
    assert torch.isfinite(logp).all()


# --------------------------------------------------------------------- MADDPG
def maddpg_groups():
    spec = GroupSpec("agent", ("agent_0", "agent_1", "agent_2"), (4,), Box((-1.0,) * 2, (1.0,) * 2))
    return {"agent": spec}


def test_maddpg_actor_sees_only_its_own_observation():
    learner = make_learner("maddpg", maddpg_groups(), state_dim=12, warmup_frames=0)
    obs = torch.randn(5, 3, 4)
    td = TensorDict({"agent": TensorDict({OBS: obs.clone()}, [5, 3])}, [5])
    a = learner.act(td, deterministic=True)["agent"][ACTION].clone()
    obs2 = obs.clone()
    obs2[:, 1:] += torch.randn(5, 2, 4)
    td2 = TensorDict({"agent": TensorDict({OBS: obs2}, [5, 3])}, [5])
    a2 = learner.act(td2, deterministic=True)["agent"][ACTION]
    assert torch.equal(a[:, 0], a2[:, 0])
    assert not torch.allclose(a[:, 1:], a2[:, 1:])


def central_q(learner: OffPolicy, joint: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Q ``[8, 3]`` of the 3-agent test group at a random state and the joint action ``joint [8, 6]``, and the
    critic's input width."""
    generator = torch.Generator().manual_seed(0)
    obs, state = torch.randn(8, 3, 4, generator=generator), torch.randn(8, 12, generator=generator)
    x = learner._critic_in("agent", obs, state, joint.view(8, 3, 2), joint)
    return learner.q_values(learner.critics, "agent", x)[0], x.shape[-1]


@pytest.mark.parametrize("share_critic", [True, False])
def test_maddpg_critic_depends_on_other_agents_actions(share_critic):
    learner = make_learner("maddpg", maddpg_groups(), state_dim=12, share_critic=share_critic)
    joint = torch.rand(8, 6) * 2 - 1
    joint2 = joint.clone()
    joint2[:, 2:4] = torch.rand(8, 2) * 2 - 1  # agent 1's action only
    q, _ = central_q(learner, joint)
    q2, _ = central_q(learner, joint2)
    assert not torch.allclose(q[:, 0], q2[:, 0])  # agent 0's centralized Q sees agent 1's action


@pytest.mark.parametrize("agent_id", [True, False])
def test_shared_critic_without_agent_id_gives_every_agent_one_value(agent_id):
    # BenchMARL's shared central critic (critic_agent_id=false): the same joint input, so the same Q for all
    # agents; with the id (the default) the agents' values differ at the same input.
    learner = make_learner("maddpg", maddpg_groups(), state_dim=12, critic_agent_id=agent_id)
    q, width = central_q(learner, torch.rand(8, 6) * 2 - 1)
    assert width == 12 + 6 + (3 if agent_id else 0)
    assert torch.allclose(q[:, 0], q[:, 1]) != agent_id
    assert torch.allclose(q[:, 0], q[:, 2]) != agent_id


@pytest.mark.parametrize("name", ["maddpg", "masac", "matd3"])
def test_actor_gradient_reaches_only_that_agent(name):
    learner = filled(name)
    batch = learner.sample()
    objectives, _, _ = learner.actor_objectives(batch)
    for agent in range(3):
        params = list(learner.actors["agent"].parameters())
        grads = torch.autograd.grad(objectives["agent"][:, agent].mean(), params, retain_graph=True, allow_unused=True)
        for p, grad in zip(params, grads, strict=True):
            assert grad is not None
            others = [i for i in range(3) if i != agent]
            assert torch.count_nonzero(grad[others]) == 0, f"{name}: agent {agent}'s Q moved another actor"
            assert torch.count_nonzero(grad[agent]) > 0 or p.shape[-1] == 1


def test_polyak_matches_formula():
    torch.manual_seed(0)
    target = [torch.randn(3, 4), torch.randn(5)]
    online = [torch.randn(3, 4), torch.randn(5)]
    expected = [0.05 * o + 0.95 * t for t, o in zip(target, online, strict=True)]
    polyak_(target, online, 0.05)
    for t, e in zip(target, expected, strict=True):
        torch.testing.assert_close(t, e)


def test_maddpg_update_moves_targets_by_tau():
    learner = filled("maddpg", tau=0.1, updates_per_frame=1 / 400)
    before_t = [p.clone() for p in learner.target_critics.parameters()]
    learner.gradient_step()
    for t, o, b in zip(learner.target_critics.parameters(), learner.critics.parameters(), before_t, strict=True):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o)


def test_discrete_maddpg_uses_straight_through_one_hot():
    learner = filled("maddpg", env_name="mpe/simple_spread_v3")
    batch = learner.sample()
    g = next(iter(learner.groups))
    assert isinstance(learner.groups[g].action, Discrete)
    fresh, logits = learner.policy(learner.actors, g, batch.data[g]["obs"], None, "sample")
    assert torch.all(fresh.sum(-1) == 1) and set(fresh.unique().tolist()) <= {0.0, 1.0}
    assert logits is not None and logits.requires_grad
    metrics = learner.gradient_step()
    assert math.isfinite(float(metrics["critic_loss"]))


class ConstantLogits(torch.nn.Module):
    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(*x.shape[:-1], len(self.logits))


@pytest.mark.parametrize("algo", ["isac", "masac"])
def test_discrete_sac_target_and_policy_loss_match_hand_computation(algo):
    # One agent, three actions: pi = [1/6, 2/6, 3/6]; twin critics Q_1(., a) = [1, 2, 3], Q_2(., a) = [1.5, 1, 4]
    # whatever the observation, so min_j Q_j = [1, 1, 3]; alpha = 0.2.
    spec = GroupSpec("agent", ("agent_0",), (2,), Discrete(3))
    learner = make_learner(algo, {"agent": spec}, state_dim=2, alpha=0.2)
    learner.actors["agent"] = ConstantLogits([0.0, math.log(2), math.log(3)])
    per_action = torch.tensor([[1.0, 2.0, 3.0], [1.5, 1.0, 4.0]])

    def q_values(critics, g, x):  # the own one-hot action is the last 3 inputs (local) or the joint action
        own = x[..., -3:] if algo == "isac" else x[..., 2:5]
        return torch.einsum("bna,qa->qbn", own, per_action)

    learner.q_values = q_values  # type: ignore[method-assign]
    pi = torch.tensor([1 / 6, 2 / 6, 3 / 6])
    soft = float((pi * (torch.tensor([1.0, 1.0, 3.0]) - 0.2 * pi.log())).sum())  # 2.0 + 0.2 * H(pi)
    assert soft == pytest.approx(2.0 + 0.2 * 1.0114042647, abs=1e-6)
    rows = 5
    obs = torch.randn(rows, 1, 2)
    data = {
        "agent": {
            "obs": obs,
            "action": torch.nn.functional.one_hot(torch.randint(3, (rows, 1)), 3).float(),
            "mask": None,
            "alive": torch.ones(rows, 1),
            "reward": torch.full((rows, 1), 0.5),
            "terminated": torch.tensor([[0.0], [1.0], [0.0], [0.0], [0.0]]),
            "next_obs": obs + 1,
            "next_mask": None,
        }
    }
    from marlkit.algorithms.offpolicy import ReplayBatch

    state = obs.flatten(1)
    batch = ReplayBatch(data, state, state + 1, data["agent"]["action"].flatten(1), torch.arange(rows), None)
    y = learner.targets(batch)["agent"]
    expected = 0.5 + 0.99 * soft * (1 - data["agent"]["terminated"])
    assert torch.allclose(y, expected, atol=1e-5)
    objectives, logps, _ = learner.actor_objectives(batch)
    assert torch.allclose(objectives["agent"], torch.full((rows, 1), soft), atol=1e-5)  # minus the actor loss
    assert torch.allclose(logps["agent"], torch.full((rows, 1), float((pi * pi.log()).sum())), atol=1e-6)
    assert learner.target_entropy("agent") == pytest.approx(0.98 * math.log(3))


def test_discrete_sac_respects_action_masks():
    env = make_env("helper_envs:MaskedEnv", 4, "cpu", 0)
    learner = make_learner("isac", env.groups, env.state_dim, warmup_frames=0)
    batch, _ = RolloutCollector(env, learner.act, 20).collect()
    taken, seen = batch["player"][ACTION], batch["player"][OBS][..., 0].long() % 3
    assert bool((taken == seen).all()), "an illegal action was taken"
    learner.store(batch)
    replay = learner.sample()
    d = replay.data["player"]
    probs, _ = learner.distribution(learner.actors, "player", d["next_obs"], d["next_mask"])
    legal = torch.nn.functional.one_hot(d["next_obs"][..., 0].long() % 3, 3).bool()
    assert bool((probs[~legal] == 0).all()), "the soft value weighed an illegal next action"
    assert math.isfinite(float(learner.gradient_step()["critic_loss"]))


# ---------------------------------------------------------------------- replay
def stamped_batch(n_envs: int, steps: int, t0: int) -> TensorDict:
    """Every field encodes (env, time, agent), so a mixed-up row is visible."""
    env = torch.arange(n_envs).view(-1, 1, 1).float().expand(n_envs, steps, 2)
    t = (t0 + torch.arange(steps)).view(1, -1, 1).float().expand(n_envs, steps, 2)
    agent = torch.arange(2).view(1, 1, -1).float().expand(n_envs, steps, 2)
    stamp = env * 10_000 + t * 10 + agent
    group = TensorDict(
        {
            OBS: stamp.unsqueeze(-1).expand(n_envs, steps, 2, 3).clone(),
            ACTION: (stamp + 0.5).unsqueeze(-1).clone(),
            REWARD: stamp + 0.25,
            TERMINATED: torch.zeros(n_envs, steps, 2, dtype=torch.bool),
            TRUNCATED: torch.zeros(n_envs, steps, 2, dtype=torch.bool),
            ALIVE: torch.ones(n_envs, steps, 2, dtype=torch.bool),
        },
        [n_envs, steps, 2],
    )
    nxt = TensorDict(
        {
            "g": TensorDict({OBS: (stamp + 10).unsqueeze(-1).expand(n_envs, steps, 2, 3).clone()}, [n_envs, steps, 2]),
            STATE: (env[..., 0] * 10_000 + t[..., 0] * 10 + 10).unsqueeze(-1),
        },
        [n_envs, steps],
    )
    return TensorDict(
        {"g": group, STATE: (env[..., 0] * 10_000 + t[..., 0] * 10).unsqueeze(-1), NEXT: nxt}, [n_envs, steps]
    )


@pytest.mark.parametrize("prioritized", [False, True])
def test_replay_rows_are_consistent_joint_transitions(prioritized):
    buffer = ReplayBuffer(capacity=50, seed=0, prioritized=prioritized)
    for k in range(4):  # 4 x 24 rows into a ring of 50: wraps around
        buffer.extend(stamped_batch(3, 8, t0=8 * k))
    assert len(buffer) == 50
    rows, index, weights = buffer.sample(500)
    g = rows["g"]
    stamp = g[OBS][..., 0]
    assert torch.equal(stamp[:, 1] - stamp[:, 0], torch.ones(500))  # agents 0 and 1 of the same row
    assert torch.equal(g[ACTION][..., 0], stamp + 0.5)
    assert torch.equal(g[REWARD], stamp + 0.25)
    assert torch.equal(rows[NEXT, "g", OBS][..., 0], stamp + 10)
    assert torch.equal(rows[STATE][:, 0], stamp[:, 0])
    assert torch.equal(rows[NEXT, STATE][:, 0], stamp[:, 0] + 10)
    # Exactly the newest 50 rows survive (rows are flattened env-major, as inserted).
    inserted = [e * 10_000 + t * 10 for k in range(4) for e in range(3) for t in range(8 * k, 8 * k + 8)]
    kept = buffer.storage["g"][OBS][:, 0, 0]  # type: ignore[index]
    assert sorted(kept.tolist()) == sorted(inserted[-50:])
    if prioritized:
        assert weights is not None and float(weights.max()) == pytest.approx(1.0)
        buffer.update_priorities(index[:1], torch.tensor([100.0]))
        rows, _, _ = buffer.sample(2_000)
        share = (rows["g"][OBS][:, 0, 0] == stamp[0, 0]).float().mean().item()
        boosted = (100.0 + 1e-6) ** 0.6  # priority^alpha against 49 rows at priority 1
        assert share == pytest.approx(boosted / (boosted + 49), abs=0.04)


def test_replay_state_round_trips():
    buffer = ReplayBuffer(capacity=40, seed=3)
    buffer.extend(stamped_batch(2, 10, 0))
    state = buffer.state_dict()
    copy = ReplayBuffer(capacity=40, seed=99)
    copy.load_state_dict(state)
    a, _, _ = buffer.sample(16)
    b, _, _ = copy.sample(16)
    for key in a.keys(include_nested=True, leaves_only=True):
        assert torch.equal(a.get(key), b.get(key)), key


def test_logits_regularizer_ignores_action_masks():
    # Masked logits are -1e9: regularizing them would swamp the actor loss with 1e18.
    spec = GroupSpec("agent", ("agent_0", "agent_1"), (3,), Discrete(4), has_action_mask=True)
    learner = make_learner("maddpg", {"agent": spec}, state_dim=6)
    obs = torch.randn(16, 2, 3)
    mask = torch.ones(16, 2, 4, dtype=torch.bool)
    mask[..., 0] = False
    action, raw = learner.policy(learner.actors, "agent", obs, mask, "sample")
    assert bool((action[..., 0] == 0).all()), "a masked action is never taken"
    assert raw is not None and float(raw.abs().max()) < 1e3


@pytest.mark.parametrize("algo", ["maddpg", "masac"])
def test_current_others_actions_train_each_actor_on_its_own_critic_only(algo):
    # others_actions=current feeds every agent's fresh action into every critic row. Agent j's actor
    # must get gradient from its own Q_j only: the others' fresh actions enter Q_i as constants.
    from marlkit import make_env
    from marlkit.algorithms import algorithm
    from marlkit.core.options import with_overrides
    from marlkit.training.rollout import RolloutCollector

    env = make_env("vmas/navigation", 8, "cpu", 0, n_agents=2, max_steps=20)
    spec = algorithm(algo)
    cfg = with_overrides(spec.default_config(), {"others_actions": "current", "hidden": [16, 16], "warmup_frames": 0})
    learner = spec.build(cfg, env, 0)
    learner.store(RolloutCollector(env, learner.act, 10).collect()[0])
    objectives, _, _ = learner.actor_objectives(learner.sample())
    group = next(iter(objectives))
    objectives[group][:, 0].sum().backward()  # agent 0's objective alone
    grads = [p.grad for p in learner.actors.parameters() if p.grad is not None]
    assert grads and all(g.shape[0] == 2 for g in grads)  # per-agent parameter rows
    assert sum(float(g[0].abs().sum()) for g in grads) > 0
    assert sum(float(g[1].abs().sum()) for g in grads) == 0, "agent 1's actor learned from agent 0's critic"


def test_targets_draw_only_legal_next_actions():
    # MaskedEnv allows only action t % 3 at step t, and every agent observes t: the next action drawn for
    # a target must be legal under the *next* step's mask (before the fix, about 2 in 3 were illegal).
    env = make_env("helper_envs:MaskedEnv", 4, "cpu", 0)
    learner = make_learner("maddpg", env.groups, env.state_dim, warmup_frames=0)
    learner.store(RolloutCollector(env, learner.act, 30).collect()[0])
    drawn: list[tuple[torch.Tensor, torch.Tensor]] = []
    policy = learner.policy

    def recording(actors, g, obs, mask, mode, out=None):
        action, extra = policy(actors, g, obs, mask, mode, out)
        drawn.append((obs, action))
        return action, extra

    learner.policy = recording  # type: ignore[method-assign]
    batch = learner.sample()
    learner.targets(batch)
    assert drawn, "targets drew no next action"
    for obs, action in drawn:
        legal = obs[..., 0].long() % 3
        assert bool((action.argmax(-1) == legal).all()), "a target used an action the next step's mask forbids"
    assert (NEXT, "player", "action_mask") in learner.replay.sample(4)[0].keys(include_nested=True)


@pytest.mark.parametrize("low, high, bounded", [((-1.0, 0.0), (1.0, 2.0), True), ((-math.inf, 0.0), (1.0, 2.0), False),
                                                 ((-1.0, 0.0), (1.0, math.inf), False)])  # fmt: skip
def test_actors_that_scale_into_the_bounds_refuse_unbounded_actions_in_one_line(low, high, bounded):
    from marlkit.core.errors import MarlkitError
    from marlkit.core.specs import Box, GroupSpec
    from marlkit.learner import EnvInfo

    box = Box(low, high)
    assert box.bounded is bounded
    info = EnvInfo("custom", {"agent": GroupSpec("agent", ("a",), (3,), box)}, 3)
    for name, extra in (("maddpg", {}), ("mappo", {"squash": True})):
        spec = algorithm(name)
        cfg = with_overrides(spec.config(), {**spec.preset, **extra})
        if bounded:
            spec.build(cfg, info, 0)
            continue
        with pytest.raises(MarlkitError, match="finite action bounds") as err:
            spec.build(cfg, info, 0)
        assert "\n" not in str(err.value)
