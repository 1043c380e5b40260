"""Multi-label metrics: non-interpolated mAP (ties grouped as sklearn does) and the CP/CR/CF1/OP/OR/OF1 family."""

from __future__ import annotations

import numpy as np
import torch


def _np(x) -> np.ndarray:
    return x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


def average_precision(scores, targets) -> np.ndarray:
    """Per-class non-interpolated AP, with tied scores grouped as sklearn's ``average_precision_score``.

    Rank class k's images by score; at every distinct score value t (a threshold "score >= t") take
    precision P(t) and recall R(t), and AP_k = sum_t (R(t) - R(t_prev)) P(t). Without ties this is
    (1/P_k) sum_{i positive} precision@rank(i); with ties, every image of a tied block is counted at the
    block's end, so the order inside the block cannot change AP. Pass logits rather than sigmoids:
    float32 sigmoids saturate to 1.0 and create ties the logits do not have.

    targets: 1 positive, 0 negative, -1 ignored (left out of class k's ranking). Classes without a
    positive get NaN. scores, targets: (N, C) -> (C,).
    """
    s, t = _np(scores), _np(targets)
    aps = np.full(s.shape[1], np.nan)
    for k in range(s.shape[1]):
        keep = t[:, k] >= 0
        sk, tk = s[keep, k], t[keep, k]
        n_pos = tk.sum()
        if n_pos == 0:
            continue
        order = np.argsort(-sk, kind="stable")
        sk, hits = sk[order], tk[order]
        ends = np.r_[np.flatnonzero(np.diff(sk)), len(sk) - 1]  # last index of each block of equal scores
        tp = np.cumsum(hits)[ends]
        precision = tp / (ends + 1)
        recall_step = np.diff(np.r_[0.0, tp]) / n_pos
        aps[k] = float((recall_step * precision).sum())
    return aps


def mean_average_precision(scores, targets) -> float:
    """mAP = 100 * mean over classes with >= 1 positive of their AP."""
    aps = average_precision(scores, targets)
    return float(100.0 * np.nanmean(aps)) if np.isfinite(aps).any() else float("nan")


def _prf(pred: np.ndarray, t: np.ndarray) -> dict[str, float]:
    valid = t >= 0
    pos = (t == 1) & valid
    pred = pred & valid
    tp_c = (pred & pos).sum(0).astype(float)
    np_c = pred.sum(0).astype(float)
    ng_c = pos.sum(0).astype(float)
    cp = float(np.mean(np.divide(tp_c, np_c, out=np.zeros_like(tp_c), where=np_c > 0)))
    cr = float(np.mean(np.divide(tp_c, ng_c, out=np.zeros_like(tp_c), where=ng_c > 0)))
    op = float(tp_c.sum() / max(np_c.sum(), 1))
    orr = float(tp_c.sum() / max(ng_c.sum(), 1))
    f1 = lambda p, r: 2 * p * r / (p + r) if p + r > 0 else 0.0
    return {"CP": 100 * cp, "CR": 100 * cr, "CF1": 100 * f1(cp, cr), "OP": 100 * op, "OR": 100 * orr, "OF1": 100 * f1(op, orr)}


def prf_metrics(scores, targets, threshold: float = 0.5, top_k: int | None = 3) -> dict[str, float]:
    """CP/CR/CF1 (per class, then averaged) and OP/OR/OF1 (overall) at ``threshold`` on probabilities,
    plus the top-k variants (``CP_top3`` ...): a label is predicted when it is among the k highest
    scores of its image (and, as usual, only counted once). CF1 = 2 CP CR / (CP + CR)."""
    s, t = _np(scores), _np(targets)
    out = _prf(s >= threshold, t)
    if top_k:
        k = min(top_k, s.shape[1])
        top = np.zeros_like(s, dtype=bool)
        idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
        np.put_along_axis(top, idx, True, axis=1)
        out.update({f"{name}_top{k}": v for name, v in _prf(top, t).items()})
    return out
