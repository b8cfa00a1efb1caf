"""What the ablation scripts share: each variant's finals against the default's under the statistics
protocol (difference of means with its Welch CI, permutation p, Holm over the task's variants, probability
of improvement), and the markdown table of one task."""

from __future__ import annotations

import numpy as np

from marlkit.analysis import stats


def versus_default(finals: dict[str, np.ndarray], default: str = "default") -> dict[str, dict]:
    """Every variant but ``default`` against it: ``diff``, ``ci``, ``p``, ``p_holm`` (over the variants) and
    ``poi`` (P(variant > default))."""
    base = finals[default]
    raw = [(name, float(x.mean() - base.mean()), stats.welch_ci(x, base), stats.permutation_p(x, base))
           for name, x in finals.items() if name != default]  # fmt: skip
    adjusted = stats.holm([p for *_, p in raw])
    return {name: {"diff": diff, "ci": list(ci), "p": p, "p_holm": p_holm,
                   "poi": stats.improvement([finals[name]], [base])}
            for (name, diff, ci, p), p_holm in zip(raw, adjusted, strict=True)}  # fmt: skip


def table(finals: dict[str, np.ndarray], pairs: dict[str, dict], extra: dict[str, dict[str, str]]) -> list[str]:
    """One task's rows: final mean [95% t-CI], the difference from the default with its CI, Holm p and P;
    ``extra`` adds columns (name -> variant -> text)."""
    head = "| variant | final: mean [95% CI] | − default [95% CI] | p (Holm) | P(variant > default) |"
    lines = [head + "".join(f" {c} |" for c in extra), "|---|---|---|---|---|" + "---|" * len(extra)]
    for name, x in finals.items():
        low, high = stats.t_ci(x)
        more = "".join(f" {column[name]} |" for column in extra.values())
        if name not in pairs:
            lines.append(f"| {name} | {x.mean():.4g} [{low:.4g}, {high:.4g}] | | | |{more}")
            continue
        c = pairs[name]
        lines.append(f"| {name} | {x.mean():.4g} [{low:.4g}, {high:.4g}] | {c['diff']:+.4g} [{c['ci'][0]:+.4g}, "
                     f"{c['ci'][1]:+.4g}] | {c['p_holm']:.3g} | {c['poi']:.2f} |{more}")  # fmt: skip
    return lines
