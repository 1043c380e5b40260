"""Paired comparison of two methods scored on the same items (same prompts, same seeds).

When a method and its baseline are evaluated on identical prompts and seeds, the per-item
differences remove the variance the items share, so a paired t-interval is far tighter than
comparing the two means independently. :func:`paired_stats` reports both means, the mean
difference ``a - b`` and its two-sided t confidence interval:

    d_i = a_i - b_i,  d̄ = (1/n) Σ d_i,  s = sqrt(Σ (d_i - d̄)² / (n - 1)),
    CI = d̄ ± t_{1-α/2, n-1} · s / sqrt(n),  t = d̄ / (s / sqrt(n))  (paired Student t-test).

A difference is *significant at level α* when its interval excludes 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["paired_stats", "format_paired"]


def _as_vector(x: Any, name: str) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().double().numpy()
    except ImportError:  # pragma: no cover
        pass
    v = np.asarray(x, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(v)):
        raise ValueError(f"paired_stats: {name} has non-finite values")
    return v


def paired_stats(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, confidence: float = 0.95) -> dict[str, Any]:
    """Paired statistics of per-item scores ``a`` and ``b`` (same length, item i of both measured
    on the same prompt and seed).

    Returns a dict:

    - ``n``: number of pairs;
    - ``mean_a``, ``mean_b``: the two means;
    - ``diff``: the mean paired difference ``mean(a - b)`` (positive: ``a`` scores higher);
    - ``diff_sd``: the standard deviation of the differences (``ddof=1``; 0 for ``n = 1``);
    - ``ci_low``, ``ci_high``: the two-sided ``confidence`` t-interval of ``diff``
      (``±inf`` when ``n < 2``; a zero-width interval when every difference is equal);
    - ``confidence``: the level used; ``t``: the paired t statistic; ``p_value``: its two-sided
      p-value (1.0 when every difference is 0, ``nan`` when ``n < 2``);
    - ``significant``: whether the interval excludes 0.
    """
    x, y = _as_vector(a, "a"), _as_vector(b, "b")
    if len(x) != len(y):
        raise ValueError(f"paired_stats needs equally long score lists, got {len(x)} and {len(y)}")
    if len(x) == 0:
        raise ValueError("paired_stats needs at least one pair")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    d = x - y
    n = len(d)
    mean = float(d.mean())
    out: dict[str, Any] = {"n": n, "mean_a": float(x.mean()), "mean_b": float(y.mean()), "diff": mean, "confidence": confidence}
    if n < 2:
        return {**out, "diff_sd": 0.0, "ci_low": -math.inf, "ci_high": math.inf, "t": math.nan, "p_value": math.nan, "significant": False}
    from scipy import stats

    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    tq = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1))
    if se == 0.0:
        t_stat = 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
        p = 1.0 if mean == 0.0 else 0.0
    else:
        t_stat = mean / se
        p = float(2 * stats.t.sf(abs(t_stat), df=n - 1))
    lo, hi = mean - tq * se, mean + tq * se
    return {**out, "diff_sd": sd, "ci_low": lo, "ci_high": hi, "t": t_stat, "p_value": p, "significant": bool(lo > 0 or hi < 0)}


def format_paired(stats: dict[str, Any], name_a: str = "a", name_b: str = "b", scale: float = 1.0, unit: str = "") -> str:
    """One line: ``a 0.81 vs b 0.74: diff +0.07 [95 % CI +0.03, +0.11], n = 96``.

    ``scale`` multiplies every number (``100`` with ``unit=" %"`` for percentages).
    """
    f = lambda v: f"{v * scale:.3g}{unit}"  # noqa: E731
    g = lambda v: f"{v * scale:+.3g}{unit}"  # noqa: E731
    level = round(stats["confidence"] * 100)
    return (
        f"{name_a} {f(stats['mean_a'])} vs {name_b} {f(stats['mean_b'])}: diff {g(stats['diff'])} "
        f"[{level} % CI {g(stats['ci_low'])}, {g(stats['ci_high'])}], n = {stats['n']}"
    )
