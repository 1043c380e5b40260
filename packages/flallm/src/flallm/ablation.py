"""The factorisation ablation on the synthetic world, over several seeds.

Arms (each selected on dev — the best dev BLEU-4 validation epoch — and reported on test):

- ``factorised``: stage 1 (visual encoder from the ImageNet-style backbone + VL-adapter + Light-T), then
  stage 2 with that encoder frozen (FLa-LLM);
- ``imagenet_frozen``: stage 2 only, on the frozen ImageNet-style backbone and a random temporal module
  (the paper's "stage 2 without stage 1");
- ``end_to_end``: stage 2 only, the same initialisation trained end to end with the LLM (not factorised).

Beside them: stage 1 alone (Light-T, last epoch) and the constant-output reference — the training
sentence with the best dev BLEU-4, output for every test clip.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from vislab import runtime
from vislab.run import Run

ARMS = ("factorised", "imagenet_frozen", "end_to_end")
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}  # two-sided t, 95 %


def constant_reference(splits: dict[str, list[dict[str, Any]]], tok: Any) -> dict[str, Any]:
    """The best constant output: the training sentence whose repetition scores the best dev BLEU-4, and
    its test scores. References are normalised as in every evaluation."""
    from flallm.metrics import bleu, translation_scores

    dev = tok.normalize([s["text"] for s in splits["dev"]])
    test = tok.normalize([s["text"] for s in splits["test"]])
    candidates = sorted(set(tok.normalize([s["text"] for s in splits["train"]])))
    scored = [(bleu([c] * len(dev), dev, tok.lang), c) for c in candidates]
    best_dev, sentence = max(scored)
    return {"sentence": sentence, "dev_bleu4": best_dev, "test": translation_scores([sentence] * len(test), test, tok.lang)}


def mean_std(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (ddof 1; 0 for one value)."""
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": len(a)}


def paired_difference(a: list[float], b: list[float]) -> dict[str, float]:
    """Mean of a_i - b_i over seeds with a two-sided 95 % t interval."""
    d = np.asarray(a, float) - np.asarray(b, float)
    half = T95.get(len(d) - 1, 1.96) * float(d.std(ddof=1)) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
    return {"mean": float(d.mean()), "ci95": [float(d.mean() - half), float(d.mean() + half)], "n": len(d)}


def one_seed(run: Run, base_cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    """Every arm on the world and training seed ``seed``."""
    from flallm.data import SignDataModule, load_splits
    from flallm.module import Stage1Module
    from flallm.train import (
        _stage_trainer,
        build_tokenizer,
        ensure_visual_weights,
        evaluate,
        stage2_loader,
        train_stage2,
        video_loader,
    )

    cfg = copy.deepcopy(base_cfg)
    cfg["seed"] = seed
    cfg["data"]["synthetic"]["seed"] = seed
    cfg["model"]["visual"]["weights"] = None
    runtime.setup(seed)
    splits = load_splits(cfg["data"])
    ensure_visual_weights(run, cfg)
    tok = build_tokenizer(cfg, [s["text"] for s in splits["train"]])
    out: dict[str, Any] = {"seed": seed, "constant": constant_reference(splits, tok)}

    c1 = cfg["stage1"]
    s1 = Stage1Module(cfg, tok)
    dm = SignDataModule(splits, cfg["data"], tok, int(c1["batch_size"]), int(cfg["eval_batch_size"]), seed)
    _stage_trainer(run, c1, enable_checkpointing=False, logger=False).fit(s1, dm)
    out["stage1"] = {"dev": evaluate(s1, video_loader(splits["dev"], cfg, tok), f"seed {seed} stage 1: dev")[0],
                     "test": evaluate(s1, video_loader(splits["test"], cfg, tok), f"seed {seed} stage 1: test")[0]}
    stage1_visual = {k: v.clone() for k, v in s1.visual.state_dict().items()}

    for arm in ARMS:
        acfg = copy.deepcopy(cfg)
        acfg["stage2"]["freeze_visual"] = arm != "end_to_end"
        torch.manual_seed(seed + 1)
        m, _ = train_stage2(run, acfg, tok, splits, stage1_visual if arm == "factorised" else None, f"seed {seed} {arm}", checkpoints=False)
        dev, rows = evaluate(m, stage2_loader(m, "dev", splits, acfg, tok), f"seed {seed} {arm}: dev")
        test, trows = evaluate(m, stage2_loader(m, "test", splits, acfg, tok), f"seed {seed} {arm}: test")
        out[arm] = {"dev": dev, "test": test, "best_epoch": int(getattr(m, "best_epoch", -1)),
                    "distinct_test_outputs": len({r["hyp"] for r in trows}), "examples": [r["hyp"] for r in trows[:3]]}
        run.log(f"seed {seed} {arm}: dev BLEU-4 {dev['bleu4']:.2f}, test BLEU-4 {test['bleu4']:.2f} "
                f"({out[arm]['distinct_test_outputs']} distinct test outputs)")
    return out


def run_ablation(run: Run) -> dict[str, Any]:
    """All arms over ``ablation.seeds``; writes the table (mean +- std of test BLEU-4 / ROUGE-L, paired
    differences with 95 % intervals) to ``metrics.json`` and ``ablation.png``."""
    cfg = run.config
    seeds = [int(s) for s in cfg["ablation"]["seeds"]]
    rows = [one_seed(run, cfg, s) for s in seeds]
    if not runtime.is_main_process():
        return {}
    table: dict[str, Any] = {}
    for name, get in [("constant", lambda r: r["constant"]["test"]), ("stage1", lambda r: r["stage1"]["test"]),
                      *[(a, lambda r, a=a: r[a]["test"]) for a in ARMS]]:
        table[name] = {k: mean_std([get(r)[k] for r in rows]) for k in ("bleu4", "rouge_l")}
    diffs = {f"factorised - {b}": paired_difference([r["factorised"]["test"]["bleu4"] for r in rows], [r[b]["test"]["bleu4"] for r in rows])
             for b in ("imagenet_frozen", "end_to_end")}
    diffs["end_to_end - constant"] = paired_difference([r["end_to_end"]["test"]["bleu4"] for r in rows], [r["constant"]["test"]["bleu4"] for r in rows])
    diffs["imagenet_frozen - constant"] = paired_difference([r["imagenet_frozen"]["test"]["bleu4"] for r in rows], [r["constant"]["test"]["bleu4"] for r in rows])
    for name, t in table.items():
        run.log(f"{name:>16}: test BLEU-4 {t['bleu4']['mean']:.2f} +- {t['bleu4']['std']:.2f}, ROUGE-L {t['rouge_l']['mean']:.2f} +- {t['rouge_l']['std']:.2f}")
    _plot(run, rows)
    return run.finish(metric="test_bleu4_factorised", higher_is_better=True, before=table["constant"]["bleu4"]["mean"],
                      after=table["factorised"]["bleu4"]["mean"], ablation={"seeds": seeds, "table": table, "paired_bleu4": diffs,
                                                                             "per_seed": rows})


def _plot(run: Run, rows: list[dict[str, Any]]) -> None:
    from vislab.pictures import pyplot, save_figure

    plt = pyplot()

    names = ["constant", "stage1", *ARMS]
    vals = [[(r[n]["test"] if n != "constant" else r["constant"]["test"])["bleu4"] for r in rows] for n in names]
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.bar(range(len(names)), [np.mean(v) for v in vals], color="lightsteelblue", yerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for v in vals])
    for i, v in enumerate(vals):
        ax.scatter([i] * len(v), v, color="k", s=10, zorder=3)
    ax.set_xticks(range(len(names)), ["constant\noutput", "stage 1\n(Light-T)", "factorised\n(FLa-LLM)", "ImageNet-style\nfrozen", "end to end"], fontsize=7)
    ax.set_ylabel("test BLEU-4")
    ax.set_title(f"synthetic world, {len(rows)} seeds (mean, std, seeds as dots)", fontsize=8)
    fig.tight_layout()
    save_figure(fig, run.path("ablation.png"), dpi=120)
