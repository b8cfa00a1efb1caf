"""Schedules shared by learners: linear ramps, and the warm-up plus update-to-data ratio of off-policy learning."""

from __future__ import annotations

from dataclasses import dataclass


def linear(t: float, start: float, end: float, first: float, last: float) -> float:
    """``first`` until ``t = start``, then linear to ``last`` at ``t = end``, constant after. A ramp of
    zero length (``end <= start``, e.g. a decay over 0 frames) is a step to ``last`` at ``t = start``."""
    if end <= start:
        return first if t < start else last
    frac = min(max((t - start) / (end - start), 0.0), 1.0)
    return first + frac * (last - first)


@dataclass
class UpdateSchedule:
    """How many gradient steps an off-policy learner takes for the frames it just stored.

    Frames are counted as env copies x steps. Before ``warmup_frames`` nothing is learned (and
    learners act at random); after it, each new frame earns ``updates_per_frame`` gradient steps,
    the fractions carried over, so that the ratio holds exactly over a run whatever the batch size.
    ``updates_per_frame=None`` takes one gradient step per vectorized env step (a step of all env
    copies together), i.e. ``1 / num_envs`` per frame: a run's gradient steps then do not grow with
    the number of copies."""

    warmup_frames: int
    updates_per_frame: float | None
    frames: int = 0
    credit: float = 0.0

    @property
    def warming_up(self) -> bool:
        return self.frames < self.warmup_frames

    def record(self, new_frames: int) -> None:
        self.frames += new_frames

    def due(self, new_frames: int, copies: int) -> int:
        """Gradient steps earned by ``new_frames`` just recorded from ``copies`` env copies (0 during warm-up)."""
        if self.warming_up:
            return 0
        if self.updates_per_frame is None:
            self.credit += new_frames // copies
        else:
            self.credit += new_frames * self.updates_per_frame
        steps = int(self.credit)
        self.credit -= steps
        return steps
