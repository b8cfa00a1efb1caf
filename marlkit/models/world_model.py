"""Probabilistic ensemble world models (PETS, MBPO): P(s' - s, r | s, a) as E networks in one batched pass.

* The ensemble is one :class:`~marlkit.networks.ensemble.EnsembleMLP` (``baddbmm`` per layer, never a loop over
  members). Probabilistic mode outputs a mean and a log-variance per target, the log-variance softly
  bounded by learned limits (Chua et al. 2018): ``logvar = max - softplus(max - raw)`` then
  ``min + softplus(logvar - min)``. Deterministic mode outputs the mean only.
* Targets are the state delta and the reward. Inputs and targets are normalized with statistics of
  the training data; the normalizers are buffers, so they are saved in ``state_dict`` (checkpoints).
* Training: Gaussian NLL (optionally beta-NLL; MSE in deterministic mode) plus
  ``logvar_penalty * sum(max - min)``; every member sees its own bootstrap of the training split; a
  held-out split drives early stopping (each member keeps its best epoch's parameters) and elite
  selection (the members with the lowest held-out MSE).
* Multi-agent: the input is the joint state (or all observations) and all agents' actions; for one
  agent it is the usual single-agent model. ``reward_dim`` rewards are predicted (one per agent, or
  one team reward).
* Termination: tasks with a known termination function use it (:mod:`marlkit.models.termination`); for the
  others an optional learned head predicts a termination logit per member (binary cross-entropy,
  not normalized, no variance) and a transition counts as terminal when its member's probability
  exceeds one half.
"""

from __future__ import annotations

import copy
import time
import typing
from dataclasses import dataclass
from typing import ClassVar, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from marlkit.core.errors import MarlkitError
from marlkit.core.options import KeyFn, nested, option, require, require_at_least
from marlkit.models.termination import TerminationFn
from marlkit.networks.ensemble import EnsembleMLP


@dataclass(frozen=True)
class WorldModelConfig:
    ensemble_size: int = option(7, "ensemble members")
    elites: int = option(5, "members used for prediction, chosen by held-out error")
    hidden: tuple[int, ...] = option((200, 200, 200, 200), "hidden layer sizes of every member")
    activation: str = option("silu", "activation of the members")
    probabilistic: bool = option(True, "predict a mean and a log-variance (false: the mean only)")
    lr: float = option(1e-3, "Adam learning rate")
    weight_decay: float = option(5e-5, "Adam weight decay")
    batch_size: int = option(256, "minibatch size per member")
    holdout: float = option(0.1, "fraction of the data held out for early stopping and elites")
    max_epochs: int = option(50, "epoch cap of one fit")
    min_batches_per_epoch: int = option(25, "an epoch repeats the data until it has this many minibatches")
    patience: int = option(5, "epochs without a 1% held-out improvement of any member before stopping")
    logvar_penalty: float = option(0.01, "weight of sum(max_logvar - min_logvar)")
    nll_beta: float = option(0.0, "beta-NLL: each target's NLL weighted by its stop-gradient variance^beta (0: NLL)")

    def validate(self, key: KeyFn = lambda name: f"model.{name}") -> None:
        require_at_least(
            self, ("ensemble_size", "batch_size", "max_epochs", "patience", "min_batches_per_epoch"), 1, key
        )
        require(
            1 <= self.elites <= self.ensemble_size,
            f"{key('elites')} must be in [1, {key('ensemble_size')}={self.ensemble_size}], got {self.elites}",
        )
        require(0 < self.holdout < 1, f"{key('holdout')} must be in (0, 1), got {self.holdout}")
        require(0 <= self.nll_beta <= 1, f"{key('nll_beta')} must be in [0, 1], got {self.nll_beta}")
        require_at_least(self, ("weight_decay", "logvar_penalty"), 0, key)


@dataclass(frozen=True)
class ModelOptions:
    """The world-model part of a model-based learner's config (PETS, MBPO): ``algo.model.*``, ``algo.termination``."""

    # config.json files written before configs were nested (format 1) named these keys flat.
    LEGACY_KEYS: ClassVar[dict[str, str]] = {
        "ensemble_size": "model.ensemble_size",
        "elites": "model.elites",
        "model_hidden": "model.hidden",
        "probabilistic": "model.probabilistic",
        "model_lr": "model.lr",
        "model_max_epochs": "model.max_epochs",
        "model_patience": "model.patience",
        "nll_beta": "model.nll_beta",
    }

    model: WorldModelConfig = nested(WorldModelConfig, "the ensemble world model")
    termination: Literal["auto", "learned", "none"] = option(
        "auto", "model episodes end: auto (known function, else learned), learned, none"
    )


def gaussian_nll(mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor, beta: float = 0.0) -> torch.Tensor:
    """Elementwise Gaussian NLL (times 2, without the constant), weighted by ``stop_grad(var) ** beta``
    (beta-NLL, Seitzer et al. 2022). Plain NLL (beta 0) scales each target's gradient by 1 / var, so
    a model can leave a target's mean unfit and explain it with variance: on vmas/navigation's joint
    observations the ensemble left the velocity change unfit (relative error 0.95-1.01 on new data,
    against 0.045 with beta 0.5), although it is linear in velocity and action. Beta 1 gives the
    means the gradient of the squared error."""
    nll = (mean - target).pow(2) * torch.exp(-logvar) + logvar
    return nll * torch.exp(beta * logvar.detach()) if beta > 0 else nll


class Prediction(NamedTuple):
    """One model step for ``B`` particles."""

    next_state: torch.Tensor  # [B, S]
    reward: torch.Tensor  # [B] (reward_dim 1) or [B, R]
    disagreement: torch.Tensor  # [B]
    terminated: torch.Tensor  # [B] bool; all False without a termination head


class ModelOutput(NamedTuple):
    """Normalized outputs of the members that ran: ``[K, B, out]`` each; None where not modelled."""

    mean: torch.Tensor
    logvar: torch.Tensor | None
    termination_logit: torch.Tensor | None  # [K, B]


class EnsembleWorldModel(nn.Module):
    """Predicts ``(delta_state, reward[, termination])`` from ``(state, action)``; tensors are ``[..., dim]``."""

    in_mean: torch.Tensor
    in_std: torch.Tensor
    out_mean: torch.Tensor
    out_std: torch.Tensor
    elite_idx: torch.Tensor
    fitted: torch.Tensor

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        cfg: WorldModelConfig | None = None,
        seed: int = 0,
        reward_dim: int = 1,
        termination_head: bool = False,
    ) -> None:
        super().__init__()
        self.cfg = cfg = cfg or WorldModelConfig()
        cfg.validate()
        self.state_dim, self.action_dim, self.reward_dim = state_dim, action_dim, reward_dim
        self.termination_head = termination_head
        in_dim, out_dim = state_dim + action_dim, state_dim + reward_dim
        self.out_dim = out_dim
        net_out = out_dim * (2 if cfg.probabilistic else 1) + int(termination_head)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = EnsembleMLP(cfg.ensemble_size, in_dim, net_out, cfg.hidden, cfg.activation, fast_inference=True)
        self.max_logvar = nn.Parameter(torch.full((out_dim,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((out_dim,), -10.0))
        self.register_buffer("in_mean", torch.zeros(in_dim))
        self.register_buffer("in_std", torch.ones(in_dim))
        self.register_buffer("out_mean", torch.zeros(out_dim))
        self.register_buffer("out_std", torch.ones(out_dim))
        self.register_buffer("elite_idx", torch.arange(cfg.elites))
        # In the weights, not the training state: acting with a loaded model (``marlkit eval``) needs it.
        self.register_buffer("fitted", torch.tensor(False))
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.forward_seconds = 0.0  # wall-clock of predict()'s network passes, for profiling

    # ---------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> ModelOutput:
        """Normalized inputs ``[E, B, in]`` -> normalized mean, log-variance (None in deterministic mode)
        and termination logit (None without the head). With ``members [K]``, only those members run on
        ``x [K, B, in]``."""
        out = self.net(x, members)
        logit = None
        if self.termination_head:
            out, logit = out[..., :-1], out[..., -1]
        if not self.cfg.probabilistic:
            return ModelOutput(out, None, logit)
        mean, raw = out.chunk(2, dim=-1)
        return ModelOutput(mean, self.bound_logvar(raw), logit)

    def bound_logvar(self, raw: torch.Tensor) -> torch.Tensor:
        """The soft bounds on the raw log-variance output: ``max - softplus(max - raw)``, then
        ``min + softplus(. - min)``."""
        logvar = self.max_logvar - F.softplus(self.max_logvar - raw)
        return self.min_logvar + F.softplus(logvar - self.min_logvar)

    def normalize_input(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return (torch.cat([state, action], dim=-1) - self.in_mean) / self.in_std

    @torch.no_grad()
    def predict(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        members: torch.Tensor | None = None,
        sample: bool = True,
        disagreement: bool = True,
    ) -> Prediction:
        """Next states, rewards, ensemble disagreement and termination for ``B`` particles.

        ``members [B]`` binds each particle to one elite (TS-inf: keep them fixed across steps; TS-1:
        draw new ones each step); None draws them uniformly from the elites. ``sample`` adds the
        predicted aleatoric noise. Disagreement is the variance across elites of their mean
        predictions (normalized units, averaged over targets): high where the model has not seen data.
        It runs every elite on every particle, so ``disagreement=False`` (zeros) is K times cheaper.
        """
        x = self.normalize_input(state, action)
        elites = self.elite_idx
        if members is None:
            members = elites[torch.randint(len(elites), (x.shape[0],), generator=self.generator).to(x.device)]
        # Each particle runs through its own member only: particles are sorted by member and padded
        # into one [K, n, in] batch (K = elites), a fraction 1/K of running every member on every one.
        slot = (members.unsqueeze(1) == elites.unsqueeze(0)).float().argmax(1)  # elite position per particle
        order = torch.argsort(slot, stable=True)
        counts = torch.bincount(slot, minlength=len(elites))
        width = int(counts.max())
        first = torch.cumsum(counts, 0) - counts
        rank = torch.arange(x.shape[0], device=x.device) - torch.repeat_interleave(first, counts)
        grid = x.new_zeros(len(elites), width, x.shape[-1])
        grid[slot[order], rank] = x[order]
        start = time.perf_counter()
        out_grid = self.forward_chunked(grid, elites)
        self.forward_seconds += time.perf_counter() - start
        chosen = x.new_empty(x.shape[0], self.out_dim)
        chosen[order] = out_grid.mean[slot[order], rank]
        if sample and out_grid.logvar is not None:
            logvar = torch.empty_like(chosen)
            logvar[order] = out_grid.logvar[slot[order], rank]
            noise = torch.randn(chosen.shape, generator=self.generator).to(x.device)
            chosen = chosen + (0.5 * logvar).exp() * noise
        terminated = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        if out_grid.termination_logit is not None:
            terminated[order] = out_grid.termination_logit[slot[order], rank] > 0
        start = time.perf_counter()
        spread = self.disagreement(x) if disagreement and len(elites) > 1 else x.new_zeros(x.shape[0])
        self.forward_seconds += time.perf_counter() - start
        out = chosen * self.out_std + self.out_mean
        reward = out[..., self.state_dim :]
        return Prediction(
            state + out[..., : self.state_dim], reward[..., 0] if self.reward_dim == 1 else reward, spread, terminated
        )

    def forward_chunked(
        self, x: torch.Tensor, members: torch.Tensor | None = None, max_bytes: int = 8 << 20
    ) -> ModelOutput:
        """:meth:`forward` over slices of the batch dimension whose widest layer output stays under
        ``max_bytes``. Inference only: allocations past glibc's mmap threshold (32 MB at most) are
        fresh pages every time, and page-faulting a ``[5, 20000, 200]`` activation costs more than the
        matmul that fills it (86 ms against 53 ms measured); small slices reuse the heap and the cache."""
        widest = max(int(p.shape[-1]) for name, p in self.net.named_parameters() if name.endswith("weight"))
        rows = max(16, max_bytes // (x.shape[0] * widest * x.element_size()) // 16 * 16)  # even splits
        if x.shape[1] <= rows:
            return self(x, members)
        parts = [self(x[:, begin : begin + rows], members) for begin in range(0, x.shape[1], rows)]

        def joined(field: list[torch.Tensor | None]) -> torch.Tensor | None:
            return None if field[0] is None else torch.cat(typing.cast(list[torch.Tensor], field), dim=1)

        mean = torch.cat([part.mean for part in parts], dim=1)
        return ModelOutput(mean, joined([p.logvar for p in parts]), joined([p.termination_logit for p in parts]))

    def disagreement(self, x: torch.Tensor) -> torch.Tensor:
        """Variance across elites of their mean predictions at normalized inputs ``x [B, in]``: ``[B]``."""
        mean = self._members_forward(x, self.elite_idx).mean
        return mean.var(0, unbiased=False).mean(-1)

    def _members_forward(self, x: torch.Tensor, members: torch.Tensor) -> ModelOutput:
        """Every one of ``members`` on all of ``x [B, in]``: ``[K, B, out]``."""
        return self.forward_chunked(x.unsqueeze(0).expand(len(members), *x.shape), members)

    # --------------------------------------------------------------- training
    def loss(self, x: torch.Tensor, y: torch.Tensor, terminated: torch.Tensor | None = None) -> torch.Tensor:
        """Gaussian NLL (or MSE) summed over members, averaged over samples and targets, plus the bound
        penalty, plus the termination head's binary cross-entropy (``terminated [E, B]``)."""
        mean, logvar, logit = self(x)
        if logvar is None:
            loss = (mean - y).pow(2).mean((1, 2)).sum()
        else:
            nll = gaussian_nll(mean, logvar, y, self.cfg.nll_beta).mean((1, 2)).sum()
            loss = nll + self.cfg.logvar_penalty * (self.max_logvar - self.min_logvar).sum()
        if logit is not None and terminated is not None:
            loss = loss + F.binary_cross_entropy_with_logits(logit, terminated, reduction="none").mean(1).sum()
        return loss

    def fit(
        self,
        state: torch.Tensor,
        action: torch.Tensor,
        next_state: torch.Tensor,
        reward: torch.Tensor,
        terminated: torch.Tensor | None = None,
    ) -> dict[str, float]:
        """Train on all transitions given (``[N, ...]``; ``reward [N]`` or ``[N, R]``; ``terminated [N]``
        for the termination head); returns held-out MSE, epochs and elites."""
        cfg = self.cfg
        inputs = torch.cat([state, action], dim=-1).float()
        rewards = reward.unsqueeze(-1) if reward.dim() == state.dim() - 1 else reward
        targets = torch.cat([next_state - state, rewards], dim=-1).float()
        done = terminated.float() if terminated is not None else torch.zeros(len(inputs), device=inputs.device)
        n = inputs.shape[0]
        perm = torch.randperm(n, generator=self.generator).to(inputs.device)
        n_hold = max(1, round(cfg.holdout * n))
        hold, train = perm[:n_hold], perm[n_hold:]
        with torch.no_grad():
            self.in_mean.copy_(inputs[train].mean(0))
            self.in_std.copy_(inputs[train].std(0).clamp_min(1e-6))
            self.out_mean.copy_(targets[train].mean(0))
            self.out_std.copy_(targets[train].std(0).clamp_min(1e-6))
        x = (inputs - self.in_mean) / self.in_std
        y = (targets - self.out_mean) / self.out_std
        x_hold, y_hold = x[hold], y[hold]
        e = cfg.ensemble_size
        # Each member trains on its own bootstrap of the training split.
        boot = train[torch.randint(len(train), (e, len(train)), generator=self.generator).to(train.device)]
        opt = torch.optim.Adam(self.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        best = self.holdout_mse(x_hold, y_hold)
        best_state = copy.deepcopy(self.net.state_dict())
        stale, epochs = 0, 0
        for epochs in range(1, cfg.max_epochs + 1):  # noqa: B007 - the count is reported
            # Small datasets repeat within an epoch: a few minibatches between held-out checks would
            # trip early stopping long before the model has fit (2 minibatches an epoch at 500 rows).
            passes = -(-cfg.min_batches_per_epoch * cfg.batch_size // boot.shape[1])
            shuffles = [torch.randperm(boot.shape[1], generator=self.generator) for _ in range(passes)]
            order = torch.cat([boot[:, p.to(boot.device)] for p in shuffles], dim=1)
            for start in range(0, order.shape[1], cfg.batch_size):
                idx = order[:, start : start + cfg.batch_size]
                loss = self.loss(x[idx], y[idx], done[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            mse = self.holdout_mse(x_hold, y_hold)
            improved = (best - mse) / best.abs().clamp_min(1e-12) > 0.01
            if bool(improved.any()):
                self._keep_members(best_state, improved)
                best = torch.where(improved, mse, best)
                stale = 0
            else:
                stale += 1
                if stale >= cfg.patience:
                    break
        self._restore_members(best_state)
        final = self.holdout_mse(x_hold, y_hold)
        self.elite_idx.copy_(torch.argsort(final)[: cfg.elites])
        self.fitted.fill_(True)
        return {
            "model_holdout_mse": float(final[self.elite_idx].mean()),
            "model_epochs": float(epochs),
            "model_loss": float(loss.detach()),
        }

    @torch.no_grad()
    def holdout_mse(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-member MSE of the mean prediction, normalized units: ``[E]``."""
        mean = self.forward_chunked(x.unsqueeze(0).expand(self.cfg.ensemble_size, *x.shape)).mean
        return (mean - y).pow(2).mean((1, 2))

    def _keep_members(self, snapshot: dict[str, torch.Tensor], members: torch.Tensor) -> None:
        current = self.net.state_dict()
        for key, value in snapshot.items():
            value[members] = current[key][members].detach().clone()

    def _restore_members(self, snapshot: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict(snapshot)


class ModelRollout:
    """Steps particles through a world model: the environment that planners and Dyna learners see.

    ``propagation``: ``"ts_inf"`` binds each particle to one elite for the whole rollout, ``"ts1"`` draws
    a new elite every step (Chua et al. 2018). ``termination(state, action, next_state) -> bool [B]`` is
    the task's known termination function; without one the model's termination head decides (never,
    without a head). After a particle terminates it earns no reward and its
    state stops changing. Every step also reports the ensemble disagreement of the particle's input.
    """

    def __init__(
        self,
        model: EnsembleWorldModel,
        termination: TerminationFn | None = None,
        propagation: str = "ts_inf",
        seed: int = 0,
        track_disagreement: bool = True,
    ) -> None:
        if propagation not in ("ts_inf", "ts1"):
            raise MarlkitError(f"unknown propagation '{propagation}'; valid: ts_inf, ts1")
        self.model, self.termination, self.propagation = model, termination, propagation
        self.track_disagreement = track_disagreement
        self.generator = torch.Generator().manual_seed(seed)

    def _members(self, n: int) -> torch.Tensor:
        elites = self.model.elite_idx
        return elites[torch.randint(len(elites), (n,), generator=self.generator).to(elites.device)]

    @torch.no_grad()
    def rollout(self, state: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """``state [B, S]``, ``actions [B, H, A]`` -> states ``[B, H+1, S]``, rewards, terminated and
        disagreement ``[B, H]`` (rewards and disagreement are 0 after termination)."""
        b, horizon = actions.shape[:2]
        members = self._members(b)
        alive = torch.ones(b, dtype=torch.bool, device=state.device)
        states, rewards, terminated, disagreement = [state], [], [], []
        for t in range(horizon):  # time steps depend on each other; particles and members are batched
            if self.propagation == "ts1":
                members = self._members(b)
            nxt, reward, spread, learned_done = self.model.predict(
                state, actions[:, t], members, disagreement=self.track_disagreement
            )
            done = self.termination(state, actions[:, t], nxt) if self.termination is not None else learned_done
            rewards.append(torch.where(alive, reward, torch.zeros_like(reward)))
            disagreement.append(torch.where(alive, spread, torch.zeros_like(spread)))
            state = torch.where(alive.unsqueeze(-1), nxt, state)
            alive = alive & ~done
            terminated.append(~alive)
            states.append(state)
        return {
            "states": torch.stack(states, 1),
            "rewards": torch.stack(rewards, 1),
            "terminated": torch.stack(terminated, 1),
            "disagreement": torch.stack(disagreement, 1),
        }
