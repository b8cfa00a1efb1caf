"""ITRPO / MATRPO / HATRPO and the PPO step rule: invariants of the updater."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from marlkit import MarlkitError, make_env
from marlkit.algorithms import algorithm
from marlkit.core.checkpoint import seed_everything
from marlkit.core.options import with_overrides
from marlkit.keys import ACTION, OBS, REWARD
from marlkit.training.rollout import RolloutCollector


def setup(
    algo: str,
    env_name: str = "vmas/navigation",
    seed: int = 0,
    num_envs: int = 8,
    steps: int = 16,
    env_kwargs: dict | None = None,
    **overrides,
):
    seed_everything(seed)
    kwargs = env_kwargs if env_kwargs is not None else {"n_agents": 3, "max_steps": 20}
    env = make_env(env_name, num_envs=num_envs, seed=seed, **kwargs)
    spec = algorithm(algo)
    cfg = with_overrides(spec.config(), {**spec.preset, "rollout_steps": steps, **overrides})
    learner = spec.build(cfg, env, seed)
    return env, learner, RolloutCollector(env, learner.act, steps, reuse_buffer=False)


def test_hatrpo_factor_equals_the_product_of_ratios_computed_directly():
    _env, learner, collector = setup("hatrpo")
    batch, _ = collector.collect()
    before = copy.deepcopy(learner.policies)
    learner.update(batch)
    obs, action = batch["agent", OBS].flatten(0, 1), batch["agent", ACTION].flatten(0, 1)
    old, new = before["agent"], learner.policies["agent"]
    ratio = torch.exp(new.log_prob(new.dist(obs), action) - old.log_prob(old.dist(obs), action))
    assert not torch.allclose(ratio, torch.ones_like(ratio)), "no agent moved: the test would prove nothing"
    torch.testing.assert_close(learner.last_factor, ratio.prod(-1), rtol=1e-5, atol=1e-6)


def test_hatrpo_order_spans_all_groups_differs_across_iterations_and_is_reproducible():
    def orders(seed: int) -> list[list[str]]:
        _env, learner, collector = setup(
            "hatrpo", "mpe/simple_adversary_v3", seed=seed, num_envs=2, steps=5, env_kwargs={"max_cycles": 10}
        )
        out = []
        for _ in range(5):
            batch, _ = collector.collect()
            learner.update(batch)
            out.append(list(learner.last_order))
        return out

    a, b, c = orders(0), orders(0), orders(1)
    assert a == b
    assert all(sorted(o) == ["adversary_0", "agent_0", "agent_1"] for o in a)
    assert len({tuple(o) for o in a}) > 1
    assert a != c


def test_each_sequential_step_changes_only_that_agents_parameters():
    _env, learner, collector = setup("hatrpo")
    batch, _ = collector.collect()
    data = learner._prepare(batch)
    before = learner.policies["agent"].net.flat_params()
    result = learner._solve("agent", data["agent"], None, 1)
    after = learner.policies["agent"].net.flat_params()
    assert bool(result.accepted.all())
    assert not torch.equal(before[1], after[1])
    assert torch.equal(before[0], after[0]) and torch.equal(before[2], after[2])


def test_batched_solve_treats_agents_as_independent_problems():
    results = []
    for perturb in (False, True):
        _env, learner, collector = setup("itrpo")
        batch, _ = collector.collect()
        data = learner._prepare(batch)
        if perturb:
            data["agent"].advantage[:, 2] = torch.randn_like(data["agent"].advantage[:, 2])
        learner._solve("agent", data["agent"], None, None)
        results.append(learner.policies["agent"].net.flat_params())
    torch.testing.assert_close(results[0][:2], results[1][:2], rtol=0, atol=1e-7)
    assert not torch.allclose(results[0][2], results[1][2])


@pytest.mark.parametrize("step_rule", ["trust_region", "clip"])
def test_with_one_agent_itrpo_matrpo_hatrpo_give_identical_parameters(step_rule):
    names = {"trust_region": ("trpo", "matrpo", "hatrpo"), "clip": ("ppo", "mappo", "happo")}[step_rule]
    states = []
    for name in names:
        # The same networks and critic updates for all three (PPO and MAPPO default to a shared actor with
        # LayerNorms, which HAPPO's sequential update cannot have, and to 10 critic epochs of 4 minibatches):
        # the update rules are what must agree.
        _env, learner, collector = setup(name, "gym/Pendulum-v1", num_envs=4, steps=32, env_kwargs={},
                                         share_actor=False, layer_norm=False, critic_epochs=10,
                                         critic_minibatches=4)  # fmt: skip
        for _ in range(3):
            batch, _ = collector.collect()
            learner.update(batch)
        # actor_rows are the clip rule's optimizer copies (keyed per group or per agent), not the model.
        states.append({k: v.clone() for k, v in learner.state_dict().items() if not k.startswith("actor_rows")})
    for other in states[1:]:
        assert states[0].keys() == other.keys()
        for key in states[0]:
            assert torch.equal(states[0][key], other[key]), key


def test_sequential_schedule_refuses_shared_actors_unless_opted_in():
    with pytest.raises(MarlkitError, match=r"separate actor parameters.*allow_shared_sequential"):
        setup("hatrpo", share_actor=True)
    _env, learner, collector = setup("hatrpo", share_actor=True, allow_shared_sequential=True)
    learner.update(collector.collect()[0])


@pytest.mark.parametrize("algo", ["itrpo", "matrpo", "hatrpo", "ippo", "mappo", "happo"])
def test_every_variant_updates_on_heterogeneous_groups(algo):
    # Two groups with different observation sizes and action kinds, agents leaving mid-episode.
    _env, learner, collector = setup(
        algo, "envs/scout_carrier", env_kwargs={"n_carriers": 2, "max_steps": 15}, obs_norm=True, value_norm=True
    )
    for _ in range(2):
        metrics = learner.update(collector.collect()[0])
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())


@pytest.mark.parametrize("share", [True, False])
def test_itrpo_and_matrpo_work_with_shared_or_separate_parameters(share):
    for algo in ("itrpo", "matrpo"):
        _env, learner, collector = setup(algo, share_actor=share)
        before = learner.policies["agent"].net.flat_params()
        metrics = learner.update(collector.collect()[0])
        assert learner.policies["agent"].net.param_dim == (1 if share else 3)
        assert 0 < metrics["agent/kl"] <= 0.01
        assert not torch.equal(before, learner.policies["agent"].net.flat_params())


def test_observation_normalizer_is_saved_with_the_policy():
    env, learner, collector = setup("matrpo", obs_norm=True)
    learner.update(collector.collect()[0])
    state = learner.state_dict()
    assert float(state["obs_norms.agent.count"]) > 0 and "state_norm.mean" in state
    _, fresh, _ = setup("matrpo", obs_norm=True, seed=5)
    fresh.load_state_dict(state)
    td = env.reset()
    a = learner.act(td.clone(), deterministic=True)["agent", ACTION]
    b = fresh.act(td.clone(), deterministic=True)["agent", ACTION]
    assert torch.equal(a, b)


@pytest.mark.parametrize("algo", ["matrpo", "mappo", "hatrpo", "happo"])
def test_central_critic_gives_each_agent_its_own_value(algo):
    # Issue 16, defect 1: with individual rewards a shared central V(s) without agent identity predicted
    # the same value for every agent. Agents rewarded -1, 0 and +1 per step must get values in that order,
    # apart by at least one step's reward.
    _env, learner, collector = setup(algo, env_kwargs={"n_agents": 3, "max_steps": 20}, critic_lr=1e-2)
    batch, _ = collector.collect()
    batch["agent", REWARD] = torch.tensor([-1.0, 0.0, 1.0]).expand_as(batch["agent", REWARD]).clone()
    for _ in range(5):
        learner.update(batch)
    with torch.no_grad():
        per_agent = learner.value("agent", learner.critic_input(batch, "agent")).mean((0, 1))
    assert per_agent[0] + 1 < per_agent[1] < per_agent[2] - 1, per_agent


def test_explained_variance_by_hand():
    from marlkit.algorithms.onpolicy import explained_variance

    target = torch.tensor([1.0, 2.0, 3.0, 100.0])
    alive = torch.tensor([True, True, True, False])  # the dead agent's entry is left out
    assert explained_variance(target, target, alive) == pytest.approx(1.0)
    assert explained_variance(torch.full((4,), 2.0), target, alive) == pytest.approx(0.0)  # the mean
    # Residuals [1, 0, -1] (variance 2/3) against targets of variance 2/3: 0.
    assert explained_variance(torch.tensor([0.0, 2.0, 4.0, 0.0]), target, alive) == pytest.approx(0.0)
    assert explained_variance(torch.tensor([1.5, 2.0, 2.5, 0.0]), target, alive) == pytest.approx(0.75)


@pytest.mark.parametrize(("algo", "extra"), [("mappo", {}), ("hatrpo", {"value_norm": True})])
def test_critic_fit_is_logged_and_rises_when_the_critic_trains(algo, extra):
    """critic_ev (after the update) above critic_ev_before when the critic gets many steps on one batch;
    value_target_std is the targets' spread in reward units (with value normalization too)."""
    _, learner, collector = setup(algo, critic_epochs=50, **extra)
    batch, _ = collector.collect()
    _, _, _, returns = learner.value_targets(batch, "agent")  # the targets the update will fit (all alive)
    metrics = learner.update(batch)
    assert metrics["agent/critic_ev"] > metrics["agent/critic_ev_before"] + 0.2, metrics
    assert metrics["agent/critic_ev"] > 0.3
    assert metrics["agent/value_target_std"] == pytest.approx(float(returns.std(unbiased=False)), rel=1e-4)


def test_critic_loss_options_by_hand():
    """Squared error; Huber (quadratic to delta, then linear); value clipping keeps the worse of the value's
    and the clipped value's loss, as MAPPO does."""
    target, old = torch.tensor([0.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, -3.0])
    value = torch.tensor([2.0, 0.9, 0.0])
    _, mse, _ = setup("mappo")
    torch.testing.assert_close(mse.critic_error(value, target, old), torch.tensor([4.0, 0.81, 0.0]))
    _, huber, _ = setup("mappo", critic_loss="huber", huber_delta=1.0)
    # |2| > 1: 1 * (2 - 0.5) = 1.5; |0.9| <= 1: 0.5 * 0.81.
    torch.testing.assert_close(huber.critic_error(value, target, old), torch.tensor([1.5, 0.405, 0.0]))
    _, clipped, _ = setup("mappo", value_clip=0.2)
    # Clipped to within 0.2 of old: 1.2 (loss 1.44 < 4: 4 counts), 0.9 (unchanged), -2.8 (7.84 > 0: counts).
    torch.testing.assert_close(clipped.critic_error(value, target, old), torch.tensor([4.0, 0.81, 7.84]))
    with pytest.raises(MarlkitError, match="huber_delta must be > 0"):
        setup("mappo", huber_delta=0.0)


@pytest.mark.parametrize("extra", [{"critic_loss": "huber"}, {"value_clip": 0.2, "value_norm": True}])
def test_critic_options_train(extra):
    _, learner, collector = setup("mappo", critic_epochs=50, **extra)
    metrics = learner.update(collector.collect()[0])
    assert metrics["agent/critic_ev"] > metrics["agent/critic_ev_before"], metrics


@pytest.mark.parametrize("algo", ["mappo", "hatrpo"])
def test_layer_norm_and_orthogonal_init_train_actors_and_critics(algo, tmp_path):
    from marlkit.training.experiment import Experiment, build_config

    overrides = {"algo.layer_norm": True, "algo.init": "orthogonal", "algo.activation": "relu",
                 "algo.rollout_steps": 50, "env.n_agents": 2, "experiment.num_envs": 4, "experiment.frames": 400,
                 "experiment.progress": False, "experiment.tensorboard": False}  # fmt: skip
    experiment = Experiment(build_config(algo, "vmas/navigation", overrides), tmp_path / algo)
    learner = experiment.learner
    for module in (learner.policies["agent"].net, learner.critics["agent"]):
        # a stacked GroupModule's networks are its template (parameters stacked apart from it)
        inner = module._template[0] if getattr(module, "share_params", True) is False else module
        assert any(isinstance(m, torch.nn.LayerNorm) for m in inner.modules())
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    summary = experiment.run()
    assert summary["frames"] == 400
    moved = [k for k, v in learner.state_dict().items() if k in before and not torch.equal(v, before[k])]
    assert any("mean__0__weight" in k or "mean.0.weight" in k for k in moved)  # the actors' input LayerNorm learns
    assert any("critics" in k for k in moved)


def test_layer_norm_normalizes_gru_encoders_and_orthogonal_init_is_refused_for_them():
    from marlkit.core.errors import MarlkitError
    from marlkit.training.config import build_config

    _env, learner, collector = setup("mappo", layer_norm=True, network="gru", critic_network="gru", chunk_len=8,
                                     share_actor=False, gru_hidden=16, hidden=(16,))  # fmt: skip
    for module in (learner.policies["agent"].net, learner.critics["agent"]):
        inner = module._template[0] if not module.share_params else module.net
        norms = [m for m in inner.modules() if isinstance(m, torch.nn.LayerNorm)]
        assert len(norms) == 2  # the input and the one encoder layer
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    learner.update(collector.collect()[0])
    moved = [k for k, v in learner.state_dict().items() if k in before and not torch.equal(v, before[k])]
    assert any("encoder__0" in k or "encoder.0" in k for k in moved), moved  # the input LayerNorm learns
    with pytest.raises(MarlkitError, match="applies to feed-forward networks"):
        build_config("mappo", "vmas/navigation", {"algo.init": "orthogonal", "algo.network": "gru"})


def test_squashed_actions_are_tanh_of_the_stored_sample_in_the_bounds_and_the_update_reads_that_sample():
    from marlkit.keys import PRE_SQUASH

    _env, learner, collector = setup("mappo", squash=True)
    batch, _ = collector.collect()
    low, high = learner.groups["agent"].action.bounds("cpu")
    u, action = batch["agent", PRE_SQUASH], batch["agent", ACTION]
    assert u.abs().max() > 1, "no sample beyond the bounds: squashing would not be visible"
    torch.testing.assert_close(action, low + (torch.tanh(u) + 1) * (high - low) / 2)
    assert bool(((action >= low) & (action <= high)).all())
    data = learner._prepare(batch)
    torch.testing.assert_close(data["agent"].action, u.flatten(0, 1))
    # The ratio the update uses (densities of u) equals the ratio of the squashed actions' densities
    # (torch's TanhNormal with the affine map to the bounds): the Jacobian cancels. float64 keeps atanh exact.
    policy = learner.policies["agent"]
    before = policy.dist(data["agent"].obs).double()
    learner.update(batch)
    after = policy.dist(data["agent"].obs).double()
    u64 = data["agent"].action.double()
    ours = policy.log_prob(after, u64) - policy.log_prob(before, u64)

    def squashed(dist: torch.Tensor) -> torch.distributions.Distribution:
        loc, log_std = dist.chunk(2, -1)
        affine = torch.distributions.AffineTransform((high + low).double() / 2, (high - low).double() / 2)
        maps = [torch.distributions.TanhTransform(), affine]
        return torch.distributions.TransformedDistribution(torch.distributions.Normal(loc, log_std.exp()), maps)

    a64 = low.double() + (torch.tanh(u64) + 1) * (high - low).double() / 2
    keep = u64.abs().amax(-1) < 4  # where atanh of the float64 action recovers u
    theirs = (squashed(after).log_prob(a64) - squashed(before).log_prob(a64)).sum(-1)
    assert not torch.allclose(ours, torch.zeros_like(ours)), "the policy did not move: the test would prove nothing"
    torch.testing.assert_close(ours[keep], theirs[keep], rtol=1e-6, atol=1e-8)
    # Deterministic actions squash the mean.
    td = collector.env.reset()
    loc, _ = policy.dist(td["agent", OBS]).chunk(2, -1)
    acted = learner.act(td.clone(), deterministic=True)["agent", ACTION]
    torch.testing.assert_close(acted, low + (torch.tanh(loc) + 1) * (high - low) / 2)


def test_state_std_starts_at_the_initial_std_in_every_state_and_then_depends_on_the_state():
    from marlkit.core.specs import Box, GroupSpec
    from marlkit.networks.policies import GroupPolicy

    spec = GroupSpec("agent", ("a", "b"), (5,), Box((-1.0, -1.0), (1.0, 1.0)))
    policy = GroupPolicy(spec, (16,), share_params=True, init_log_std=-0.5, state_std=True)
    obs = torch.randn(32, 2, 5)
    last = policy.net.module.net[-1] if hasattr(policy.net, "module") else list(policy.net.modules())[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():
        last.weight.zero_()
    _, log_std = policy.dist(obs).chunk(2, -1)
    torch.testing.assert_close(log_std, torch.full_like(log_std, -0.5))
    with torch.no_grad():
        last.weight.normal_()
    _, log_std = policy.dist(obs).chunk(2, -1)
    assert log_std.std() > 0.1 and bool((log_std.exp() >= 0.01).all())
    loss = policy.log_prob(policy.dist(obs), torch.zeros(32, 2, 2)).sum()
    loss.backward()
    assert last.weight.grad is not None and last.weight.grad[2:].abs().sum() > 0  # the std rows learn


def test_state_std_is_refused_for_recurrent_actors_and_squash_for_unbounded_actions():
    from marlkit.core.specs import Box, GroupSpec
    from marlkit.learner import EnvInfo
    from marlkit.training.config import build_config

    with pytest.raises(MarlkitError, match="std=state applies to feed-forward actors"):
        build_config("mappo", "vmas/navigation", {"algo.std": "state", "algo.network": "gru"})
    spec = GroupSpec("agent", ("a",), (3,), Box((-float("inf"),), (float("inf"),)))
    info = EnvInfo("custom", {"agent": spec}, 3)
    mappo = algorithm("mappo")
    with pytest.raises(MarlkitError, match=r"algo\.squash needs finite action bounds"):
        mappo.build(with_overrides(mappo.config(), {**mappo.preset, "squash": True}), info, 0)


@pytest.mark.parametrize("network", ["mlp", "gru"])
def test_bounded_std_starts_as_harl_stays_below_std_max_and_learns(network: str):
    from marlkit.training.config import build_config

    harl_start = math.log(0.5 * torch.sigmoid(torch.tensor(1.0)).item())  # HARL: 0.5 * sigmoid(p), p = 1 at init
    _env, learner, collector = setup("hatrpo", network=network, std="bounded", std_max=0.5, init_log_std=harl_start)
    params = [p for name, p in learner.policies.named_parameters() if name.endswith("log_std")]
    assert params and all(torch.allclose(p, torch.ones_like(p)) for p in params)  # HARL's parameter at init
    batch, _ = collector.collect()
    _, log_std = learner._prepare(batch)["agent"].old_dist.chunk(2, -1)
    torch.testing.assert_close(log_std, torch.full_like(log_std, harl_start))
    before = [p.detach().clone() for p in params]
    learner.update(batch)
    assert any(not torch.equal(b, p) for b, p in zip(before, params, strict=True)), "the std did not learn"
    with torch.no_grad():
        for p in params:
            p.fill_(40.0)  # far beyond any step: the std saturates at std_max, never above
    _, log_std = learner._prepare(collector.collect()[0])["agent"].old_dist.chunk(2, -1)
    assert bool((log_std <= math.log(0.5)).all()) and bool((log_std > math.log(0.5) - 1e-6).all())
    with pytest.raises(MarlkitError, match=r"algo\.std=bounded needs 0 < exp\(algo\.init_log_std\) < algo\.std_max"):
        build_config("hatrpo", "vmas/navigation", {"algo.std": "bounded", "algo.init_log_std": 0.0})


@pytest.mark.parametrize("state_std", [False, True])
def test_actor_out_gain_scales_the_initial_output_layer_and_one_leaves_pytorch_init(state_std: bool):
    from marlkit.core.specs import Box, GroupSpec
    from marlkit.networks.policies import GroupPolicy
    from marlkit.training.config import build_config

    spec = GroupSpec("agent", ("a", "b"), (5,), Box((-1.0, -1.0), (1.0, 1.0)))

    def output_layer(gain: float) -> torch.nn.Linear:
        torch.manual_seed(3)
        policy = GroupPolicy(spec, (16,), share_params=True, state_std=state_std, out_gain=gain)
        return [m for m in policy.modules() if isinstance(m, torch.nn.Linear)][-1]

    plain = output_layer(1.0)
    torch.manual_seed(3)  # the same draws as PyTorch's own init of those layers
    torch.nn.Linear(5, 16)  # the hidden layer's draws come first
    reference = torch.nn.Linear(16, plain.out_features)
    torch.testing.assert_close(plain.weight, reference.weight)
    torch.testing.assert_close(plain.bias, reference.bias)
    for gain in (0.01, 0.5):
        shrunk = output_layer(gain)
        torch.testing.assert_close(shrunk.weight, gain * plain.weight)
        assert bool((shrunk.bias == 0).all())
    with pytest.raises(MarlkitError, match=r"algo\.actor_out_gain must be > 0"):
        build_config("mappo", "vmas/navigation", {"algo.actor_out_gain": 0.0})


def test_time_limit_terminal_stops_the_bootstrap_at_the_time_limit_only():
    from marlkit.keys import TERMINATED, TRUNCATED

    targets = {}
    for on in (False, True):
        _env, learner, collector = setup("mappo", steps=16, env_kwargs={"n_agents": 3, "max_steps": 8},
                                         time_limit_terminal=on)  # fmt: skip
        batch, _ = collector.collect()
        _, value, _, returns = learner.value_targets(batch, "agent")
        targets[on] = (batch["agent"], value, returns)
    group, value, returns = targets[True]
    cut = group[TRUNCATED] & ~group[TERMINATED]
    assert int(cut.sum()) == 2 * 8 * 3  # each env copy's agents reach the limit at steps 8 and 16
    # The last step of an episode cut by the limit: the target is its reward alone, not r + gamma V(s').
    torch.testing.assert_close(returns[cut], group[REWARD][cut])
    off_group, _, off_returns = targets[False]
    assert torch.equal(off_group[REWARD], group[REWARD])  # the same seed collects the same data
    assert (off_returns[cut] - group[REWARD][cut]).abs().min() > 1e-4  # the default bootstraps there
    mid = ~group[TRUNCATED] & ~group[TERMINATED]
    assert not torch.allclose(off_returns[mid], returns[mid])  # earlier steps see the cut through lambda
    assert value.shape == returns.shape


@pytest.mark.parametrize("algo", ["mappo", "hatrpo"])
def test_adam_eps_reaches_every_optimizer(algo: str):
    _env, learner, collector = setup(algo, adam_eps=1e-6)
    learner.update(collector.collect()[0])
    optimizers = [learner.critic_opt, *learner.actor_opts.values()]
    assert len(optimizers) == (2 if algo == "mappo" else 1)  # the trust-region step has no actor optimizer
    assert all(group["eps"] == 1e-6 for opt in optimizers for group in opt.param_groups)


def test_variants_of_a_family_differ_only_in_their_switches():
    # A comparison of IPPO with MAPPO (or ITRPO with MATRPO) must measure the critic's input, not other
    # defaults: within each family the presets differ only in critic, schedule and step rule.
    switches = {"critic", "schedule", "step_rule"}

    def rest(name: str) -> dict:
        cfg = vars(algorithm(name).default_config())
        return {k: v for k, v in cfg.items() if k not in switches}

    for family in (("ppo", "ippo", "mappo"), ("trpo", "itrpo", "matrpo", "hatrpo")):
        for other in family[1:]:
            assert rest(other) == rest(family[0]), (family[0], other)
    # The PPO family's critic updates (docs/algorithms.md): 10 epochs of 4 minibatches; HAPPO keeps the
    # trust-region family's 5 full-batch epochs with its separate actors.
    assert (
        algorithm("mappo").default_config().critic_epochs,
        algorithm("mappo").default_config().critic_minibatches,
    ) == (10, 4)
    assert (
        algorithm("happo").default_config().critic_epochs,
        algorithm("happo").default_config().critic_minibatches,
    ) == (5, 1)
