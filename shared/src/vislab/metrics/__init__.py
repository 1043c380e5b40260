"""Evaluation metrics shared by the vislab packages.

Anti-spoofing (:mod:`vislab.metrics.antispoof`): scores are "probability of live" (higher = live),
``live`` labels are 1 live / 0 attack, live is the positive class.

Paired comparisons (:mod:`vislab.metrics.paired`): :func:`paired_stats` of two methods scored on
the same prompts and seeds (means, mean difference, its 95 % t-interval).
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
from vislab.metrics.paired import format_paired, paired_stats

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
    "format_paired",
    "hter",
    "paired_stats",
    "plot_confusion",
    "plot_roc",
    "roc_curve",
    "threshold_at_eer",
    "tpr_at_fpr",
    "video_scores",
]
