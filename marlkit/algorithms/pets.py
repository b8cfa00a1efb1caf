"""PETS (Chua et al. 2018): a probabilistic ensemble world model and CEM model-predictive control.

The model is over the global state and the joint (normalized) action of every agent of every group;
it predicts the state change and the *team* reward (the sum over all agents). With one agent this is
single-agent PETS; with several it is a centralized planner over the joint action of a cooperative
team (limits: the plan is centralized, so execution is not decentralized, and the joint action space
grows with the number of agents, so CEM needs a larger population; see docs/algorithms.md).

Every env step replans, for all env copies at once (one batched CEM problem per copy):
``population`` candidate sequences of ``horizon`` steps, ``iterations`` CEM rounds, warm-started
from the previous plan shifted by one step. A candidate's score is the mean
return over ``particles`` model rollouts (TS-inf or TS-1 propagation), minus ``uncertainty_penalty``
times the summed ensemble disagreement. The model is refit on all collected data every
``retrain_every`` frames, after ``warmup_frames`` uniformly random frames. A particle that
terminates earns nothing afterwards: ``termination="auto"`` uses the task's known termination
function (:mod:`marlkit.models.termination`) and otherwise a learned termination head.

``timing`` accumulates wall-clock seconds of planning and of the ensemble's forward passes (CPU
clocks; on CUDA the forward time is launch time only).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from tensordict import TensorDictBase

from marlkit.core.errors import MarlkitError
from marlkit.core.options import KeyFn, nested, option, require_at_least, validate
from marlkit.core.specs import Box
from marlkit.keys import ACTION, DONE, NEXT, REWARD, STATE
from marlkit.learner import EnvInfo, Learner
from marlkit.models.planning import CEMConfig, CEMPlanner
from marlkit.models.termination import episode_terminated, model_termination
from marlkit.models.world_model import EnsembleWorldModel, ModelOptions, ModelRollout
from marlkit.networks.groups import JointActions


@dataclass(frozen=True)
class PETSConfig(ModelOptions):
    LEGACY_KEYS: ClassVar[dict[str, str]] = {
        **ModelOptions.LEGACY_KEYS,
        "horizon": "planner.horizon",
        "population": "planner.population",
        "cem_elite_ratio": "planner.elite_ratio",
        "cem_iterations": "planner.iterations",
        "cem_momentum": "planner.momentum",
    }

    planner: CEMConfig = nested(CEMConfig, "the CEM planner")
    rollout_steps: int = option(25, "env steps per env copy per iteration of the training loop")
    warmup_frames: int = option(200, "uniformly random frames before planning starts")
    retrain_every: int = option(250, "frames between model fits (all data each time)")
    dataset_size: int = option(100_000, "transitions kept for model fits (the oldest are dropped)")
    particles: int = option(5, "model rollouts per candidate")
    propagation: Literal["ts_inf", "ts1"] = option("ts_inf", "particle-to-member binding")
    uncertainty_penalty: float = option(0.0, "beta in reward - beta * disagreement")

    def validate(self, key: KeyFn) -> None:
        require_at_least(self, ("rollout_steps", "retrain_every", "dataset_size", "particles"), 1, key)
        require_at_least(self, ("uncertainty_penalty", "warmup_frames"), 0, key)


class PETS(Learner):
    Config = PETSConfig
    replays: ClassVar[bool] = True

    def __init__(self, cfg: PETSConfig, env: EnvInfo, seed: int = 0) -> None:
        super().__init__()
        validate(cfg, "algo.")
        self.cfg, self.groups, self.seed = cfg, dict(env.groups), seed
        groups = self.groups
        for g, s in groups.items():
            if not isinstance(s.action, Box):
                raise MarlkitError(f"PETS plans continuous actions, but group '{g}' has discrete actions")
        self.joint = JointActions(groups)
        # The model's state is the global state; known termination functions read observations.
        known, head = model_termination(cfg.termination, env.name, env.state_source == "observations")
        self.model = EnsembleWorldModel(env.state_dim, self.joint.dim, cfg.model, seed=seed, termination_head=head)
        self.rollouts = ModelRollout(
            self.model, known, cfg.propagation, seed=seed, track_disagreement=cfg.uncertainty_penalty > 0
        )
        self.data: dict[str, torch.Tensor] = {}
        self.frames = 0
        self._last_fit = 0
        self._planners: dict[tuple[int, bool], CEMPlanner] = {}
        self.generator = torch.Generator().manual_seed(seed + 2)
        self.timing = {"plan_s": 0.0, "plan_calls": 0.0}

    @property
    def acting_reads_state(self) -> bool:
        return True  # the planner scores candidate actions from the state

    @property
    def steps_per_collection(self) -> int:
        return self.cfg.rollout_steps

    # ---------------------------------------------------------------- acting
    @torch.no_grad()
    def act(self, td: TensorDictBase, deterministic: bool = False) -> TensorDictBase:
        n = td.batch_size[0]
        if not bool(self.model.fitted) or (not deterministic and self.frames < self.cfg.warmup_frames):
            joint = (torch.rand(n, self.joint.dim, generator=self.generator) * 2 - 1).to(td.device)
        else:
            start = time.perf_counter()
            planner = self._planner_for(n, deterministic)
            if DONE in td.keys():
                planner.reset(td[DONE])
            joint = planner.act(self._scorer(td[STATE]))
            self.timing["plan_s"] += time.perf_counter() - start
            self.timing["plan_calls"] += 1
        for g, action in self.joint.unpack(joint).items():
            td[g][ACTION] = self.joint.env(g, action)
        return td

    def _planner_for(self, n: int, deterministic: bool) -> CEMPlanner:
        """One batched planner per (env copies, mode): training and evaluation keep separate warm starts."""
        key = (n, deterministic)
        if key not in self._planners:
            seed = self.seed + 1000 * (1 + int(deterministic))  # independent of creation order
            high = torch.ones(self.joint.dim, device=self.joint.device)
            self._planners[key] = CEMPlanner(self.cfg.planner, -high, high, seed=seed, batch=n)
        return self._planners[key]

    def _scorer(self, state: torch.Tensor):
        """Scores ``[N, P, H, A]`` candidates from the ``N`` env copies' states ``[N, S]``."""
        cfg = self.cfg

        def score(candidates: torch.Tensor) -> torch.Tensor:
            n, p = candidates.shape[:2]
            k = cfg.particles
            actions = candidates.repeat_interleave(k, dim=1).flatten(0, 1)  # [N*P*K, H, A]
            starts = state.repeat_interleave(p * k, dim=0)
            out = self.rollouts.rollout(starts, actions)
            value = out["rewards"].sum(1) - cfg.uncertainty_penalty * out["disagreement"].sum(1)
            return value.view(n, p, k).mean(-1)

        return score

    def run_summary(self) -> dict[str, float]:
        """Planning wall-clock per planning call (one env step of every copy) and the share of it spent
        in the ensemble's forward passes."""
        calls, plan_s = self.timing["plan_calls"], self.timing["plan_s"]
        return {
            "plan_s_per_step": plan_s / max(calls, 1),
            "plan_forward_share": self.model.forward_seconds / plan_s if plan_s > 0 else float("nan"),
        }

    # ----------------------------------------------------------------- update
    def update(self, batch: TensorDictBase) -> dict[str, float]:
        rows = batch.reshape(-1)
        reward = torch.cat([rows[g][REWARD].sum(-1, keepdim=True) for g in self.groups], dim=-1).sum(-1)
        terminated = episode_terminated(rows, self.groups)
        new = {
            "state": rows[STATE],
            "action": self.joint.pack_env(rows),
            "next_state": rows[NEXT, STATE],
            "reward": reward,
            "terminated": terminated,
        }
        # torch.cat copies: the batch is borrowed, and the collector overwrites it with the next rollout.
        self.data = {
            k: torch.cat([self.data[k], v] if self.data else [v])[-self.cfg.dataset_size :] for k, v in new.items()
        }
        self.frames += rows.shape[0]
        metrics: dict[str, float] = {"model_data": float(len(self.data["state"]))}
        if self.frames >= self.cfg.warmup_frames and self.frames - self._last_fit >= self.cfg.retrain_every:
            data = self.data
            metrics.update(
                self.model.fit(data["state"], data["action"], data["next_state"], data["reward"], data["terminated"])
            )
            self._last_fit = self.frames
        return metrics

    # ------------------------------------------------------------- checkpoints
    def training_state(self, include_replay: bool = True) -> dict[str, object]:
        state: dict[str, object] = {
            **self.acting_state(),
            "last_fit": self._last_fit,
            "model_generator": self.model.generator.get_state(),
        }
        if include_replay:
            state["data"] = dict(self.data)
        return state

    def load_training_state(self, state: Mapping) -> None:
        self._last_fit = int(state["last_fit"])
        self.model.generator.set_state(state["model_generator"])
        self.load_acting_state(state)
        self.data = {k: v.to(self.joint.device) for k, v in state.get("data", {}).items()}

    def acting_state(self) -> dict[str, object]:
        """Frames (warm-up), the random-action and particle generators, and the planners' warm starts
        and random streams."""
        return {
            "frames": self.frames,
            "generator": self.generator.get_state(),
            "rollout_generator": self.rollouts.generator.get_state(),
            "planners": {
                f"{n}:{int(det)}": {"generator": p.generator.get_state(), "mean": p.mean.clone()}
                for (n, det), p in self._planners.items()
            },
        }

    def load_acting_state(self, state: Mapping) -> None:
        self.frames = int(state["frames"])
        self.generator.set_state(state["generator"])
        self.rollouts.generator.set_state(state["rollout_generator"])
        for key, saved in state["planners"].items():
            n, det = key.split(":")
            planner = self._planner_for(int(n), bool(int(det)))
            planner.generator.set_state(saved["generator"])
            planner.mean = saved["mean"].to(self.joint.device, copy=True)
