"""Calibration of the absolute grounding threshold (``guidance.threshold``) on data disjoint from the evaluation.

The rule U = {u : s_u < threshold} (s_u = cos(g(u), f(I_f)) with the guidance CLIP) needs a threshold on the
guidance CLIP's cosine scale. It is chosen on *calibration prompts* (two-object toy prompts that are not in the
evaluation prompt set) probed on *calibration seeds* (disjoint from the evaluation seeds): each unit is labelled
absent or present in the probe's final image by the toy world's pixel oracle (no learned model), and the threshold
maximises Youden's J = TPR - FPR of "flag u" against "u is absent" (a flagged unit that is present costs as much
as a missing unit that is not flagged).
"""

from __future__ import annotations

from typing import Any

import numpy as np

CALIBRATION_SEEDS = (2000, 2001)


def calibration_prompts(n: int, exclude: set[str], seed: int = 0) -> list[str]:
    """``n`` two-object toy prompts "a <colour> <shape> and a <colour> <shape>" (distinct colours, no held-out
    colour-shape combination), none of them in ``exclude`` (the evaluation prompts)."""
    from vislab.toy.world import COLORS, HELD_OUT, SHAPES

    rng = np.random.default_rng(seed)
    objs = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in HELD_OUT]
    out: list[str] = []
    seen = {p.lower().strip() for p in exclude}
    for _ in range(100 * n):
        i, j = rng.choice(len(objs), size=2, replace=False)
        (c1, s1), (c2, s2) = objs[i], objs[j]
        if c1 == c2:
            continue
        p = f"a {c1} {s1} and a {c2} {s2}"
        if p not in seen:
            seen.add(p)
            out.append(p)
            if len(out) == n:
                break
    return out


def youden_threshold(scores: list[float], absent: list[bool]) -> dict[str, float]:
    """The threshold t maximising TPR - FPR of the rule "s < t" for detecting absent units (t at the midpoint
    between neighbouring scores; ties broken towards the smaller t). Returns t, J, TPR, FPR and the AUC."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(absent, dtype=bool)
    if y.all() or (~y).all():
        raise ValueError("calibration needs both absent and present units")
    u = np.unique(s)
    cands = np.concatenate([[u[0] - 1e-6], (u[:-1] + u[1:]) / 2, [u[-1] + 1e-6]])
    best = None
    for t in cands:
        flag = s < t
        tpr, fpr = float(flag[y].mean()), float(flag[~y].mean())
        if best is None or tpr - fpr > best["youden_j"] + 1e-12:
            best = {"threshold": float(t), "youden_j": tpr - fpr, "tpr_absent": tpr, "fpr_present": fpr}
    # AUC of -s for "absent" (probability that an absent unit scores below a present one; ties count 1/2)
    pos, neg = s[y], s[~y]
    auc = float(((pos[:, None] < neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg)))
    return {**best, "auc": auc}


def calibrate(frozen, cfg: dict[str, Any], exclude_prompts: set[str], n_prompts: int = 24,
              seeds: tuple[int, ...] = CALIBRATION_SEEDS) -> dict[str, Any]:
    """Probe every calibration prompt on every calibration seed, label each unit with the oracle on the probe's
    final image, and pick the threshold (:func:`youden_threshold`)."""
    from vislab.errors import ConfigError
    from vislab.toy.oracle import score

    from incantations.guidance import probe

    overlap = set(seeds) & {int(x) for x in cfg["eval"]["seeds"]}
    if overlap:
        raise ConfigError(f"calibration seeds {sorted(overlap)} are evaluation seeds; calibrate on other seeds")
    prompts = calibration_prompts(n_prompts, exclude_prompts)
    s = cfg["sampling"]
    rows = []
    for p in prompts:
        for seed in seeds:
            g = probe(frozen, p, seed, s["steps"], s["cfg"], s["k_c"], s["k_f"], "clip", threshold=None)
            img = g.images["final"].detach().float().cpu().clamp(0, 1)
            for u, su in zip(g.units, g.scores):
                present = bool(score(img, u)[0]["objects_present"] >= 1.0)
                rows.append({"prompt": p, "seed": seed, "unit": u, "s_u": float(su), "present": present})
    res = youden_threshold([r["s_u"] for r in rows], [not r["present"] for r in rows])
    return {**res, "units": len(rows), "absent": sum(not r["present"] for r in rows), "prompts": prompts,
            "seeds": list(seeds), "rows": rows}
