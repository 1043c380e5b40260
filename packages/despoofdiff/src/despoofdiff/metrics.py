"""Evaluation metrics of face anti-spoofing, as the paper reports them (ISO/IEC 30107-3 style).

Scores are liveness scores (higher = live); a sample is accepted as live when s >= threshold.
- APCER: fraction of attacks accepted as live, taken for the *worst* PAI type when attack types are given
  (OULU-NPU convention);  BPCER: fraction of live samples rejected;  ACER = (APCER + BPCER) / 2.
- HTER = (FAR + FRR) / 2 at a threshold fixed on the *source* dev set (cross-dataset), FAR = the
  all-attacks APCER, FRR = BPCER.
- AUC of the ROC (live positive), EER and its threshold (used to fix the dev threshold).

The computations are vislab.metrics' (shared by every anti-spoofing package); this module only
assembles what the paper reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import vislab.metrics as vm


def _np(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def eer_threshold(scores: Any, live: Any) -> tuple[float, float]:
    """(threshold, EER) on a dev set."""
    s, y = _np(scores).astype(np.float64), _np(live).astype(np.int64)
    thr = float(vm.threshold_at_eer(s, y))
    return thr, float(vm.eer(s, y))


def auc(scores: Any, live: Any) -> float:
    """Area under the ROC curve (live = positive class)."""
    return float(vm.auc(_np(scores).astype(np.float64), _np(live).astype(np.int64)))


def evaluate(scores: Any, live: Any, threshold: float, attacks: Sequence[str] | None = None) -> dict[str, float]:
    """APCER (worst PAI when ``attacks`` are given), BPCER, ACER, HTER, AUC and EER at ``threshold``."""
    s, y = _np(scores).astype(np.float64), _np(live).astype(np.int64)
    out: dict[str, float] = {}
    a = None if attacks is None else np.asarray([str(t) for t in attacks])
    out["apcer"] = float(vm.apcer(s, y, threshold, attack=a))
    out["bpcer"] = float(vm.bpcer(s, y, threshold))
    out["acer"] = float(vm.acer(s, y, threshold, attack=a))
    out["hter"] = float(vm.hter(s, y, threshold))
    if a is not None:
        for k, v in vm.apcer_per_attack(s, y, threshold, a).items():
            out[f"apcer_{k}"] = float(v)
    if len(set(y.tolist())) == 2:
        out["auc"] = float(vm.auc(s, y))
        out["eer"] = float(vm.eer(s, y))
    return out


def roc_curve(scores: Any, live: Any) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) over every threshold (live positive), for the ROC pictures."""
    fpr, tpr, _ = vm.roc_curve(_np(scores).astype(np.float64), _np(live).astype(np.int64))
    return fpr, tpr
