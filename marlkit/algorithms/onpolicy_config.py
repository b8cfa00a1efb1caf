"""The options of the on-policy family (ITRPO/MATRPO/HATRPO, IPPO/MAPPO/HAPPO): one config, switches
pick the variant."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from marlkit.blocks.trust_region import TrustRegionConfig
from marlkit.core.options import KeyFn, nested, option, require, require_at_least
from marlkit.networks.policies import OUT_GAIN


@dataclass(frozen=True)
class OnPolicyConfig:
    # config.json files written before configs were nested (format 1) named these keys flat.
    LEGACY_KEYS: ClassVar[dict[str, str]] = {
        k: f"trust_region.{k}"
        for k in ("max_kl", "cg_iters", "cg_damping", "backtrack_coef", "backtrack_iters", "accept_ratio")
    }

    critic: Literal["local", "central"] = option("local", "local V_i(o_i) or centralized V_i(s) critic")
    schedule: Literal["simultaneous", "sequential"] = option(
        "simultaneous", "agents step together, or in a random order"
    )
    step_rule: Literal["trust_region", "clip"] = option("trust_region", "TRPO step or PPO clipped objective")
    share_actor: bool = option(False, "one policy network per group instead of one per agent")
    share_critic: bool = option(True, "one critic network per group instead of one per agent")
    agent_order: Literal["random", "fixed"] = option(
        "random", "sequential schedule: a fresh random permutation every iteration, or env order every time"
    )
    allow_shared_sequential: bool = option(False, "opt in to a sequential schedule with shared actors (inexact M)")
    rollout_steps: int = option(100, "steps per env copy collected per iteration")
    gamma: float = option(0.99, "discount factor")
    gae_lambda: float = option(0.95, "GAE lambda")
    time_limit_terminal: bool = option(
        False, "treat the time limit as the task's end: no bootstrap from the last state (BenchMARL on VMAS)"
    )
    adv_norm: Literal["global", "agent", "none"] = option("global", "advantage normalization scope")
    factor_clip: float = option(0.0, "sequential schedule: clip M to [1/c, c] when c > 1 (0 = never)")
    trust_region: TrustRegionConfig = nested(TrustRegionConfig, "the trust-region step (step_rule=trust_region)")
    clip_eps: float = option(0.2, "clip: ratio clipping epsilon")
    actor_lr: float = option(5e-4, "clip: actor Adam learning rate")
    actor_epochs: int = option(10, "clip: epochs over the batch")
    actor_minibatches: int = option(4, "clip: minibatches per epoch")
    entropy_coef: float = option(0.0, "clip: entropy bonus coefficient")
    max_grad_norm: float = option(0.5, "clip: actor gradient-norm clip")
    critic_lr: float = option(1e-3, "critic Adam learning rate")
    adam_eps: float = option(1e-5, "epsilon of the actors' and critics' Adam (HARL and MAPPO 1e-5, BenchMARL 1e-6)")
    critic_epochs: int = option(5, "critic epochs over the batch")
    critic_minibatches: int = option(1, "critic minibatches per epoch")
    critic_max_grad_norm: float = option(10.0, "critic gradient-norm clip")
    value_norm: bool = option(False, "normalize critic targets with running statistics")
    critic_loss: Literal["mse", "huber"] = option("mse", "critic loss on the value error (HARL/MAPPO: huber)")
    huber_delta: float = option(10.0, "huber: the error beyond which the loss grows linearly (HARL/MAPPO: 10)")
    value_clip: float = option(
        0.0, "clip each value to within this of its value at collection, the worse loss counts (0: off; MAPPO: 0.2)"
    )
    obs_norm: bool = option(False, "normalize observations (and state) with running statistics")
    hidden: tuple[int, ...] = option((64, 64), "hidden layer sizes of actors and critics (gru: the actor's encoder)")
    network: Literal["mlp", "gru"] = option("mlp", "actor network: feed-forward, or an MLP encoder followed by a GRU")
    critic_network: Literal["mlp", "gru"] = option("mlp", "critic network: feed-forward, or an MLP encoder and a GRU")
    gru_hidden: int = option(64, "gru: units of each GRU (its hidden state per env copy and agent)")
    chunk_len: int = option(0, "gru: length of the training sequences, dividing rollout_steps (0 = whole rollouts)")
    activation: str = option("tanh", "activation of actors and critics")
    layer_norm: bool = option(
        False, "LayerNorm on the input and after each hidden (gru: encoder) layer of actors and critics (HARL)"
    )
    init: Literal["default", "orthogonal"] = option(
        "default", "weights of actors and critics: PyTorch's init, or orthogonal with the activation's gain (HARL)"
    )
    init_log_std: float = option(0.0, "initial log standard deviation of Gaussian policies")
    actor_out_gain: float = option(
        OUT_GAIN, "actor output layer at init: weights scaled by this, bias 0 (1: left as initialized, BenchMARL)"
    )
    std: Literal["parameter", "state", "bounded"] = option(
        "parameter",
        "Gaussian std: one learned log-std per action dim, an actor output (BenchMARL), or one learned parameter "
        "per action dim bounded by std_max, std_max * sigmoid(p) (HARL)",
    )
    std_max: float = option(0.5, "std=bounded: the largest std (HARL's std_y_coef)")
    squash: bool = option(False, "tanh-squash Gaussian actions into the env's bounds instead of clipping (BenchMARL)")

    def validate(self, key: KeyFn) -> None:
        positive = (
            "rollout_steps",
            "actor_epochs",
            "actor_minibatches",
            "critic_epochs",
            "critic_minibatches",
        )
        require_at_least(self, positive, 1, key)
        require(0 < self.gamma <= 1 and 0 <= self.gae_lambda <= 1, "algo.gamma must be in (0, 1], gae_lambda in [0, 1]")
        for name in ("clip_eps", "max_grad_norm", "critic_max_grad_norm", "huber_delta"):  # 0 would freeze them
            require(getattr(self, name) > 0, f"{key(name)} must be > 0, got {getattr(self, name)}")
        require_at_least(self, ("entropy_coef", "factor_clip", "value_clip"), 0, key)
        require(self.adam_eps > 0, f"{key('adam_eps')} must be > 0, got {self.adam_eps}")
        require(self.actor_out_gain > 0, f"{key('actor_out_gain')} must be > 0, got {self.actor_out_gain}")
        require(self.std_max > 0, f"{key('std_max')} must be > 0, got {self.std_max}")
        require(self.gru_hidden >= 1, f"{key('gru_hidden')} must be positive, got {self.gru_hidden}")
        require(
            self.init == "default" or (self.network, self.critic_network) == ("mlp", "mlp"),
            f"{key('init')}={self.init} applies to feed-forward networks; "
            f"{key('network')} and {key('critic_network')} must be mlp",
        )
        require(
            self.std != "state" or self.network == "mlp",
            f"{key('std')}=state applies to feed-forward actors; {key('network')} must be mlp",
        )
        require(
            self.std != "bounded" or 0 < math.exp(self.init_log_std) < self.std_max,
            f"{key('std')}=bounded needs 0 < exp({key('init_log_std')}) < {key('std_max')}; got "
            f"exp({self.init_log_std}) = {math.exp(self.init_log_std):.3g} and {self.std_max}",
        )
        require(
            self.critic_network == "mlp" or self.network == "gru",
            f"{key('critic_network')}=gru trains on sequences, which a feed-forward actor does not collect; "
            f"set {key('network')}=gru too",
        )
        require(
            0 <= self.chunk_len <= self.rollout_steps,
            f"{key('chunk_len')} must be in [0, {key('rollout_steps')}={self.rollout_steps}] "
            f"(0 = whole rollouts), got {self.chunk_len}",
        )
        require(
            self.chunk_len == 0 or self.rollout_steps % self.chunk_len == 0,
            f"{key('chunk_len')}={self.chunk_len} must divide {key('rollout_steps')}={self.rollout_steps}",
        )
        require(
            self.schedule == "simultaneous" or not self.share_actor or self.allow_shared_sequential,
            "a sequential schedule (HATRPO/HAPPO) needs separate actor parameters: set algo.share_actor=false, "
            "or algo.allow_shared_sequential=true for the inexact shared variant",
        )
