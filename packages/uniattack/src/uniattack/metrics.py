"""UniAttackData metrics (ISO/IEC 30107-3) on :mod:`vislab.metrics`.

Scores are P(live) (higher = live; P(attack) = 1 - P(live)); ``live`` 1 bona fide / 0 attack; a sample
is accepted as live when ``score >= thr``.
  APCER = attacks accepted as live / attacks (all attack types pooled, as the UniAttackData benchmark
          reports it; per-family APCER is reported beside it)
  BPCER = live rejected / live;  ACER = (APCER + BPCER) / 2 at the dev-set EER threshold
  ACC   = correctly classified / all at that threshold;  AUC and EER on the test scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from vislab import metrics as M

FAMILY_OF_LABEL = {0: "live", 1: "physical", 2: "adversarial", 3: "digital"}


def evaluate(scores, live, dev_scores=None, dev_live=None, family: Sequence[str] | None = None,
             attack: Sequence[str] | None = None, threshold: float | None = None) -> dict:
    """ACER/APCER/BPCER/ACC at the dev EER threshold (or ``threshold``; else the test EER), AUC, EER,
    APCER per attack family and per attack type when given."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(live).astype(np.int64).ravel()
    if threshold is not None:
        thr = float(threshold)
    elif dev_scores is not None:
        thr = M.threshold_at_eer(dev_scores, dev_live)
    else:
        thr = M.threshold_at_eer(s, y)
    ap, bp = M.apcer(s, y, thr), M.bpcer(s, y, thr)
    out = {
        "acer": 0.5 * (ap + bp), "apcer": ap, "bpcer": bp, "acc": M.accuracy(s, y, thr),
        "auc": M.auc(s, y), "eer": M.eer(s, y), "threshold": float(thr), "n": int(s.size),
    }
    if family is not None:
        out["apcer_per_family"] = M.apcer_per_attack(s, y, thr, family)
    if attack is not None:
        out["apcer_per_attack"] = M.apcer_per_attack(s, y, thr, attack)
    return out
