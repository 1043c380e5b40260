"""Evaluation metrics of the domain-generalised FAS literature, on
:mod:`vislab.metrics` (which holds the hand-checked formulas).

Scores are P(live) (higher = live); ``live`` is 1 for bona fide, 0 for attacks; a sample is
accepted as live when ``score >= threshold``.
  FAR (= APCER) = #{attack, score >= thr} / #attack;  FRR (= BPCER) = #{live, score < thr} / #live
  HTER = (FAR + FRR) / 2 at the EER threshold computed on the target test scores (CFPL/FLIP/SSDG
  convention, so HTER ~ EER).
  AUC = P(score_live > score_attack) + 0.5 P(equal).
  TPR@FPR=1%: live = positive; the ROC linearly interpolated at FPR = 0.01.
Video level: frame scores are averaged per video before any metric.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from vislab import metrics as M

auc = M.auc
roc_curve = M.roc_curve
eer = M.eer
far_frr = M.far_frr
tpr_at_fpr = M.tpr_at_fpr
eer_threshold = M.threshold_at_eer


def hter(scores, live, threshold: float | None = None) -> float:
    """HTER = (FAR + FRR) / 2 at ``threshold`` (default: the EER threshold of these scores)."""
    t = M.threshold_at_eer(scores, live) if threshold is None else threshold
    return M.hter(scores, live, t)


def video_scores(scores, live, videos: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """Frame scores averaged per video id (first-seen order) and the videos' labels."""
    s, y = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(live).astype(np.int64).ravel()
    if videos is None:
        return s, y
    v = M.video_scores(s, list(videos), y)
    return v["scores"], v["live"]


def evaluate_scores(scores, live, videos: Sequence[str] | None = None, threshold: float | None = None) -> dict[str, float]:
    """HTER (at ``threshold``, default the target EER threshold), AUC, TPR@FPR=1%, EER; video level if ids given."""
    s, y = video_scores(scores, live, videos)
    thr = M.threshold_at_eer(s, y) if threshold is None else float(threshold)
    far, frr = M.far_frr(s, y, thr)
    return {
        "hter": 0.5 * (far + frr),
        "far": far,
        "frr": frr,
        "auc": M.auc(s, y),
        "tpr_at_fpr1": M.tpr_at_fpr(s, y, 0.01),
        "eer": M.eer(s, y),
        "threshold": thr,
        "n": int(len(s)),
    }
