"""Evaluation metrics shared by the vislab packages.

Anti-spoofing (:mod:`vislab.metrics.antispoof`): scores are "probability of live" (higher = live),
``live`` labels are 1 live / 0 attack, live is the positive class.
"""

from vislab.metrics.antispoof import (
    accuracy,
    acer,
    apcer,
    apcer_per_attack,
    auc,
    bpcer,
    eer,
    evaluate,
    far_frr,
    hter,
    plot_confusion,
    plot_roc,
    roc_curve,
    threshold_at_eer,
    tpr_at_fpr,
    video_scores,
)

__all__ = [
    "accuracy",
    "acer",
    "apcer",
    "apcer_per_attack",
    "auc",
    "bpcer",
    "eer",
    "evaluate",
    "far_frr",
    "hter",
    "plot_confusion",
    "plot_roc",
    "roc_curve",
    "threshold_at_eer",
    "tpr_at_fpr",
    "video_scores",
]
