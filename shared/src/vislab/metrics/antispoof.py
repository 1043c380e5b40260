"""Face anti-spoofing metrics (ISO/IEC 30107-3 and the cross-domain FAS conventions).

Conventions used by every function here:

* ``scores``: higher = more live, e.g. the **probability of live**. A model that outputs P(spoof)
  passes ``1 - p``; a depth model passes its mean depth.
* ``live``: 1 for a live (bona fide) presentation, 0 for an attack. Live is the **positive class**.
* Decision at threshold ``thr``: accepted as live iff ``score >= thr``.
* APCER = attacks accepted as live / attacks (FAR); BPCER = live rejected / live (FRR);
  ACER = (APCER + BPCER) / 2; HTER = (FAR + FRR) / 2 (the same numbers; HTER is the cross-dataset
  name). With ``attack=`` (the attack type of each sample), APCER is the worst attack type (OULU-NPU).
* ACER/HTER need a threshold: choose it on the **dev** set with :func:`threshold_at_eer`
  (``evaluate(test..., dev_scores=..., dev_live=...)``); without a dev set :func:`evaluate` uses the
  test set's own EER threshold (the MCIO papers' convention, stated in the result as ``threshold_from``).
* EER threshold: among the candidate thresholds (every distinct score, plus +inf), the one minimising
  ``|FAR - FRR|``; ties go to the larger threshold (as the SSDG/FLIP code's ``dist <= min_dist``
  sweep does); EER = (FAR + FRR) / 2 there.
* AUC: area under the ROC (TPR of live vs FPR of attacks), ties counted 1/2 (Mann-Whitney).
* TPR@FPR: the ROC linearly interpolated at FPR = ``fpr`` (default 1 %): the fraction of live faces
  accepted when ``fpr`` of the attacks pass. ``interpolate=False`` gives FLIP's step rule (the largest
  TPR among ROC points with FPR <= ``fpr``).

All functions take array-likes (lists, numpy, torch) and return Python floats.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _arrays(scores, live) -> tuple[np.ndarray, np.ndarray]:
    s = _np(scores).astype(np.float64).ravel()
    y = _np(live).astype(np.int64).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and live labels differ in length: {s.shape[0]} vs {y.shape[0]}")
    if s.size == 0:
        raise ValueError("no scores given")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("live labels must be 0 (attack) or 1 (live)")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinity")
    return s, y


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _need(y: np.ndarray, cls: int, what: str) -> None:
    if not np.any(y == cls):
        raise ValueError(f"{what} needs at least one {'live' if cls else 'attack'} sample")


def far_frr(scores, live, thr: float) -> tuple[float, float]:
    """(FAR, FRR) at ``thr``: FAR = attacks with score >= thr / attacks, FRR = live with score < thr / live."""
    s, y = _arrays(scores, live)
    _need(y, 0, "FAR")
    _need(y, 1, "FRR")
    return float(np.mean(s[y == 0] >= thr)), float(np.mean(s[y == 1] < thr))


def apcer(scores, live, thr: float, attack: Sequence[str] | None = None) -> float:
    """Attack Presentation Classification Error Rate: attacks accepted as live / attacks.

    With ``attack`` (attack type per sample; live samples ignored), the worst attack type's rate.
    """
    s, y = _arrays(scores, live)
    _need(y, 0, "APCER")
    if attack is None:
        return float(np.mean(s[y == 0] >= thr))
    return max(apcer_per_attack(s, y, thr, attack).values())


def apcer_per_attack(scores, live, thr: float, attack: Sequence[str]) -> dict[str, float]:
    """APCER of each attack type (keys sorted)."""
    s, y = _arrays(scores, live)
    a = np.asarray(list(attack), dtype=object)
    if a.shape[0] != s.shape[0]:
        raise ValueError("attack types and scores differ in length")
    out = {}
    for name in sorted({str(x) for x in a[y == 0]}):
        m = (y == 0) & (a == name)
        out[name] = float(np.mean(s[m] >= thr))
    return out


def bpcer(scores, live, thr: float) -> float:
    """Bona fide Presentation Classification Error Rate: live rejected (score < thr) / live."""
    s, y = _arrays(scores, live)
    _need(y, 1, "BPCER")
    return float(np.mean(s[y == 1] < thr))


def acer(scores, live, thr: float, attack: Sequence[str] | None = None) -> float:
    """(APCER + BPCER) / 2 at ``thr`` (choose ``thr`` on the dev set with :func:`threshold_at_eer`)."""
    return 0.5 * (apcer(scores, live, thr, attack) + bpcer(scores, live, thr))


def hter(scores, live, thr: float) -> float:
    """Half Total Error Rate (FAR + FRR) / 2 at ``thr``."""
    far, frr = far_frr(scores, live, thr)
    return 0.5 * (far + frr)


def accuracy(scores, live, thr: float) -> float:
    """Fraction of samples classified correctly at ``thr`` (live iff score >= thr)."""
    s, y = _arrays(scores, live)
    return float(np.mean((s >= thr).astype(np.int64) == y))


def _eer_point(s: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    _need(y, 0, "EER")
    _need(y, 1, "EER")
    thr = np.concatenate([np.unique(s), [np.inf]])
    neg = np.sort(s[y == 0])
    pos = np.sort(s[y == 1])
    far = 1.0 - np.searchsorted(neg, thr, side="left") / neg.size  # attacks with score >= thr
    frr = np.searchsorted(pos, thr, side="left") / pos.size  # live with score < thr
    dist = np.abs(far - frr)
    i = int(np.flatnonzero(dist == dist.min())[-1])  # ties: the larger threshold
    return float(thr[i]), float(far[i]), float(frr[i])


def threshold_at_eer(scores, live) -> float:
    """The EER threshold (see the module docstring); use the dev set's and apply it to the test set."""
    s, y = _arrays(scores, live)
    return _eer_point(s, y)[0]


def eer(scores, live) -> float:
    """Equal Error Rate: (FAR + FRR) / 2 at the threshold where they are closest."""
    s, y = _arrays(scores, live)
    _, far, frr = _eer_point(s, y)
    return 0.5 * (far + frr)


def roc_curve(scores, live) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC with live positive: ``(fpr, tpr, thresholds)``; thresholds descend from +inf over every
    distinct score, ``fpr[k]`` / ``tpr[k]`` are the attack / live fractions with score >= thresholds[k]."""
    s, y = _arrays(scores, live)
    _need(y, 0, "ROC")
    _need(y, 1, "ROC")
    thr = np.concatenate([[np.inf], np.unique(s)[::-1]])
    neg = np.sort(s[y == 0])
    pos = np.sort(s[y == 1])
    fpr = 1.0 - np.searchsorted(neg, thr, side="left") / neg.size
    tpr = 1.0 - np.searchsorted(pos, thr, side="left") / pos.size
    return fpr, tpr, thr


def auc(scores, live) -> float:
    """Area under the ROC = P(score of a live > score of an attack) + P(equal) / 2."""
    s, y = _arrays(scores, live)
    _need(y, 0, "AUC")
    _need(y, 1, "AUC")
    pos, neg = s[y == 1], np.sort(s[y == 0])
    below = np.searchsorted(neg, pos, side="left")
    equal = np.searchsorted(neg, pos, side="right") - below
    return float((below.sum() + 0.5 * equal.sum()) / (pos.size * neg.size))


def tpr_at_fpr(scores, live, fpr: float = 0.01, interpolate: bool = True) -> float:
    """TPR (live accepted) at FPR = ``fpr`` (attacks accepted), from the ROC (see the module docstring)."""
    f, t, _ = roc_curve(scores, live)
    i = int(np.flatnonzero(f <= fpr)[-1])  # f[0] = 0 always
    if not interpolate or f[i] == fpr or i == f.size - 1:
        return float(t[i])
    return float(t[i] + (fpr - f[i]) / (f[i + 1] - f[i]) * (t[i + 1] - t[i]))


def video_scores(scores, videos: Sequence[str], live=None, attack: Sequence[str] | None = None) -> dict:
    """Average frame scores per video (the video-level evaluation of the FAS benchmarks).

    Returns ``{"videos": [...], "scores": array, "live": array | None, "attack": list | None}`` in the
    order videos first appear. A video whose frames disagree on ``live`` raises ValueError.
    """
    s = _np(scores).astype(np.float64).ravel()
    vids = list(videos)
    if len(vids) != s.size:
        raise ValueError("videos and scores differ in length")
    order: dict[str, list[int]] = {}
    for i, v in enumerate(vids):
        order.setdefault(v, []).append(i)
    out_s = np.array([s[idx].mean() for idx in order.values()])
    out_l = None
    if live is not None:
        y = _np(live).astype(np.int64).ravel()
        out_l = []
        for v, idx in order.items():
            vals = set(y[idx].tolist())
            if len(vals) != 1:
                raise ValueError(f"video {v} mixes live and attack frames")
            out_l.append(vals.pop())
        out_l = np.array(out_l)
    out_a = [attack[idx[0]] for idx in order.values()] if attack is not None else None
    return {"videos": list(order), "scores": out_s, "live": out_l, "attack": out_a}


def evaluate(
    scores,
    live,
    dev_scores=None,
    dev_live=None,
    attack: Sequence[str] | None = None,
    threshold: float | None = None,
    fpr: float = 0.01,
) -> dict[str, float]:
    """Every anti-spoofing metric on a test set.

    The threshold is ``threshold`` if given, else the dev set's EER threshold if ``dev_scores`` are
    given, else the test set's own EER threshold (``threshold_from`` in the result says which: 0 given,
    1 dev, 2 test). Returns ``apcer, bpcer, acer, hter, accuracy, eer, auc, tpr_at_fpr, threshold,
    threshold_from`` (fractions, not percent).
    """
    s, y = _arrays(scores, live)
    if threshold is not None:
        thr, src = float(threshold), 0
    elif dev_scores is not None:
        if dev_live is None:
            raise ValueError("dev_scores given without dev_live")
        thr, src = threshold_at_eer(dev_scores, dev_live), 1
    else:
        thr, src = threshold_at_eer(s, y), 2
    return {
        "apcer": apcer(s, y, thr, attack),
        "bpcer": bpcer(s, y, thr),
        "acer": acer(s, y, thr, attack),
        "hter": hter(s, y, thr),
        "accuracy": accuracy(s, y, thr),
        "eer": eer(s, y),
        "auc": auc(s, y),
        "tpr_at_fpr": tpr_at_fpr(s, y, fpr),
        "threshold": float(thr),
        "threshold_from": float(src),
    }


def plot_roc(path, curves: dict, title: str = "ROC (live = positive)") -> None:
    """Write a ROC plot PNG: ``curves`` maps a name to ``(scores, live)``; the legend shows AUC and EER."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vislab.io import atomic_path

    fig, ax = plt.subplots(figsize=(4.2, 4.0), dpi=100)
    for name, (sc, lv) in curves.items():
        f, t, _ = roc_curve(sc, lv)
        ax.plot(f, t, label=f"{name}: AUC {auc(sc, lv):.3f}, EER {eer(sc, lv):.3f}")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("FPR (attacks accepted)")
    ax.set_ylabel("TPR (live accepted)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def plot_confusion(path, predicted: Sequence[int], target: Sequence[int], names: Sequence[str], title: str = "confusion") -> None:
    """Write a confusion-matrix PNG (rows = true class, columns = predicted; counts annotated)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vislab.io import atomic_path

    p, t = _np(predicted).astype(int).ravel(), _np(target).astype(int).ravel()
    k = len(names)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * k, 1.0 + 0.7 * k), dpi=100)
    ax.imshow(cm, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8, color="black" if cm[i, j] < cm.max() / 2 else "white")
    ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
