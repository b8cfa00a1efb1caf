"""The options of the off-policy family (MADDPG/MATD3/DDPG/TD3, SAC/ISAC/MASAC): one config, switches
pick the variant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from marlkit.blocks.replay import ReplayOptions
from marlkit.core.options import KeyFn, option, require, require_at_least


@dataclass(frozen=True)
class OffPolicyConfig(ReplayOptions):
    actor: Literal["deterministic", "squashed_gaussian"] = option("deterministic", "DDPG-style or SAC actor")
    critic: Literal["local", "central"] = option("central", "Q_i(o_i, a_i) or Q_i(global input, all actions)")
    central_input: Literal["state", "observations"] = option("state", "global input of central critics")
    others_actions: Literal["buffer", "current"] = option("buffer", "other agents' actions in an actor loss")
    share_actor: bool = option(False, "one actor network per group instead of one per agent")
    share_critic: bool = option(True, "one critic network per group (with agent id) instead of one per agent")
    critic_agent_id: bool = option(
        True,
        "a shared central critic reads a one-hot agent id (false: one value for all the group's agents, "
        "BenchMARL's shared MADDPG/MASAC critic; right only when they share one reward)",
    )
    n_critics: int = option(1, "Q networks per agent; 2 takes the min (twin critics)")
    target_noise: float = option(0.0, "target policy smoothing noise std (normalized actions; TD3: 0.2)")
    target_noise_clip: float = option(0.5, "clip of the target smoothing noise")
    policy_delay: int = option(1, "critic steps per actor and target step (TD3: 2)")
    buffer_size: int = option(1_000_000, "replay capacity in transitions (env copies x steps)")
    batch_size: int = option(256, "transitions per gradient step")
    tau: float = option(0.005, "Polyak factor: target <- tau * online + (1 - tau) * target")
    actor_lr: float = option(3e-4, "actor Adam learning rate")
    critic_lr: float = option(3e-4, "critic Adam learning rate")
    max_grad_norm: float = option(0.0, "per-agent gradient-norm clip of actors and critics (0 = off)")
    alpha: float = option(0.2, "SAC: initial (or fixed) temperature")
    auto_alpha: bool = option(True, "SAC: learn the temperature towards the entropy target per agent")
    target_entropy_per_dim: float = option(-1.0, "SAC: entropy target per action dimension (-1: the usual -|A|)")
    alpha_lr: float = option(3e-4, "SAC: temperature Adam learning rate")
    target_entropy_fraction: float = option(0.98, "discrete SAC: entropy target as a fraction of log |A|")
    exploration: Literal["gaussian", "ou"] = option("gaussian", "deterministic actors: exploration noise")
    noise_std: float = option(0.1, "deterministic actors: initial noise std (normalized actions)")
    noise_std_final: float = option(0.1, "deterministic actors: noise std after noise_decay_frames")
    noise_decay_frames: int = option(0, "frames of linear noise decay (0: constant)")
    ou_theta: float = option(0.15, "Ornstein-Uhlenbeck mean reversion")
    logits_reg: float = option(1e-3, "discrete deterministic actors: weight of mean(logits^2)")
    hidden: tuple[int, ...] = option((256, 256), "hidden layer sizes of actors and critics (gru: actor encoder)")
    activation: str = option("relu", "activation of actors and critics")
    network: Literal["mlp", "gru"] = option("mlp", "actor network: feed-forward, or an MLP encoder followed by a GRU")
    gru_hidden: int = option(64, "gru: units of the actors' GRU")
    chunk_len: int = option(10, "gru: replayed sequence length (rows of the buffer); it divides rollout_steps")
    burn_in: int = option(0, "gru: leading steps of each sequence that only warm the state up (no loss)")
    initial_state: Literal["stored", "zero"] = option(
        "stored", "gru: replayed sequences start from the state stored at collection, or from zeros"
    )

    @property
    def shared_central_critic(self) -> bool:
        """One central critic network for all of a group's agents: the only kind that reads an agent id."""
        return self.critic == "central" and self.share_critic

    def validate(self, key: KeyFn) -> None:
        self.validate_replay(key)
        require_at_least(self, ("n_critics", "policy_delay", "buffer_size", "batch_size", "gru_hidden", "chunk_len"),
                         1, key)  # fmt: skip
        if self.network == "gru":
            require(
                self.rollout_steps % self.chunk_len == 0,
                f"{key('chunk_len')}={self.chunk_len} must divide {key('rollout_steps')}={self.rollout_steps}",
            )
            require(
                0 <= self.burn_in < self.chunk_len,
                f"{key('burn_in')} must be in [0, {key('chunk_len')}={self.chunk_len}), got {self.burn_in}",
            )
            require(
                self.batch_size >= self.chunk_len,
                f"{key('batch_size')}={self.batch_size} must hold at least one sequence of "
                f"{key('chunk_len')}={self.chunk_len} steps",
            )
            require(
                not self.prioritized,
                f"{key('prioritized')} is not supported with {key('network')}=gru (replay rows are sequences); "
                f"set {key('prioritized')}=false",
            )
        require(
            self.critic_agent_id or self.shared_central_critic,
            f"{key('critic_agent_id')}=false applies to a shared central critic only ({key('critic')}=central "
            f"and {key('share_critic')}=true); got {key('critic')}={self.critic}, "
            f"{key('share_critic')}={str(self.share_critic).lower()}",
        )
        require(0 < self.tau <= 1, f"algo.tau must be in (0, 1], got {self.tau}")
        require(self.alpha > 0, f"algo.alpha must be > 0, got {self.alpha}")
        require_at_least(
            self,
            ("target_noise", "target_noise_clip", "noise_std", "noise_std_final", "noise_decay_frames",
             "max_grad_norm", "logits_reg", "burn_in"),
            0,
            key,
        )  # fmt: skip
        require(0 <= self.ou_theta <= 1, f"{key('ou_theta')} must be in [0, 1], got {self.ou_theta}")
        require(
            0 <= self.target_entropy_fraction <= 1,
            f"{key('target_entropy_fraction')} must be in [0, 1], got {self.target_entropy_fraction}",
        )
