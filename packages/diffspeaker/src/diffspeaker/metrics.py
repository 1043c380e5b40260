"""DiffSpeaker's evaluation metrics, as the official evaluation computes them.

Per sequence: ``pred``, ``gt`` (T,V,3) vertices, ``template`` (V,3).

* LVE: e_t = max_{v in lips} ||pred_{t,v} - gt_{t,v}||^2 (squared!), LVE = mean_t e_t.
* FDD: for motion u = verts - template, d(u) = mean_{v in upper} std_t(||u_{t,v}||^2) (population
  std, numpy's ddof=0); FDD = d(u_gt) - d(u_pred) (signed).
* Aggregation: average over the styles a sequence was generated with, then a plain mean over
  sequences (the official result); the length-weighted mean is reported beside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def _as_tvc(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).double()
    if x.dim() == 2:  # (T, 3V)
        x = x.reshape(x.shape[0], -1, 3)
    return x


def lip_max_errors(pred, gt, lip_idx: Sequence[int]) -> torch.Tensor:
    """(T,) per-frame max over lip vertices of the squared Euclidean error."""
    p, g = _as_tvc(pred), _as_tvc(gt)
    idx = torch.as_tensor(np.asarray(lip_idx), dtype=torch.long)
    return ((p[:, idx] - g[:, idx]) ** 2).sum(-1).max(dim=1).values


def lip_vertex_error(pred, gt, lip_idx: Sequence[int]) -> float:
    """LVE of one sequence: mean over frames of the per-frame max squared lip-vertex error."""
    return float(lip_max_errors(pred, gt, lip_idx).mean())


def upper_face_dynamics(motion, upper_idx: Sequence[int]) -> float:
    """mean over upper-face vertices of std over time (ddof=0) of ||u_{t,v}||^2."""
    u = _as_tvc(motion)
    idx = torch.as_tensor(np.unique(np.asarray(upper_idx)), dtype=torch.long)
    sq = (u[:, idx] ** 2).sum(-1)  # (T, |upper|)
    return float(sq.std(dim=0, unbiased=False).mean())


def upper_face_dynamics_deviation(pred, gt, template, upper_idx: Sequence[int]) -> float:
    """FDD of one sequence: d(gt - template) - d(pred - template) (signed)."""
    tpl = _as_tvc(torch.as_tensor(np.asarray(template)).reshape(1, -1))[0]
    return upper_face_dynamics(_as_tvc(gt) - tpl, upper_idx) - upper_face_dynamics(
        _as_tvc(pred) - tpl, upper_idx
    )


def aggregate(
    per_sequence: Sequence[Sequence[float]], lengths: Sequence[int] | None = None
) -> dict[str, float]:
    """``per_sequence[i]`` = values of sequence i over the styles it was generated with.

    Returns {'mean': plain mean over sequences of the style means, 'weighted': frame-weighted mean}.
    """
    seq = np.array([float(np.mean(v)) for v in per_sequence])
    out = {"mean": float(seq.mean()) if len(seq) else float("nan")}
    if lengths is not None and len(seq):
        w = np.asarray(lengths, dtype=float)
        out["weighted"] = float((seq * w).sum() / w.sum())
    return out


def confidence_interval(values: Sequence[float]) -> tuple[float, float]:
    """mean and 1.96 * std / sqrt(n) over repeated test runs (population std, as the official script)."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(1.96 * v.std() / np.sqrt(len(v)))
