"""Running mean / standard deviation, kept in buffers so that they are saved with the model."""

from __future__ import annotations

import torch
from torch import nn


class RunningNorm(nn.Module):
    """Normalizes the trailing ``shape`` dims with running statistics (parallel Welford update)."""

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.clip = clip
        self.eps = eps

    @torch.no_grad()
    def update(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Fold a batch ``[..., *shape]`` into the statistics; ``mask [...]`` selects the valid rows."""
        x = x.reshape(-1, *tuple(self.mean.shape)).double()
        if mask is not None:
            x = x[mask.reshape(-1)]
        n = x.shape[0]
        if n == 0:
            return
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.var = (self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / total) / total
        self.count = total

    def normalize(self, x: torch.Tensor, clip: bool = True) -> torch.Tensor:
        y = (x - self.mean.to(x.dtype)) / torch.sqrt(self.var + self.eps).to(x.dtype)
        return y.clamp(-self.clip, self.clip) if clip else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(x)

    def denormalize(self, y: torch.Tensor) -> torch.Tensor:
        return y * torch.sqrt(self.var + self.eps).to(y.dtype) + self.mean.to(y.dtype)
