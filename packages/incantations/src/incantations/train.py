"""``incantations`` run over a prompt set: probe, learn and regenerate each prompt; judge before vs after."""

from __future__ import annotations

import json
from typing import Any

import torch
from vislab import runtime
from vislab.errors import VislabError
from vislab.io import atomic_path
from vislab.run import Run, track

from incantations.guidance import encode_uncond
from incantations.metrics import clip_score, min_object_score, object_presence
from incantations.pipeline import load_models, run_prompt
from incantations.plots import save_prompt_panel, save_summary_grid
from incantations.prompts import read_prompts, shipped, units
from incantations.sampling import initial_latents, sample


def load_prompt_set(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    src = cfg["prompts"]["source"]
    recs = shipped(src) if src in ("toy", "compbench") else read_prompts(src)
    limit = cfg["prompts"].get("limit")
    return recs[: int(limit)] if limit else recs


def objects_of(rec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(a, n) for a, n in rec.get("objects") or [] if a]


def judge_scores(judge, rec: dict[str, Any], images: torch.Tensor, attributes: list[str], nouns: list[str]) -> dict[str, float]:
    """CLIP score of the *original* text, min per-object score and per-object presence for one image."""
    p = rec["prompt"]
    out = {"clip": float(clip_score(judge, images, [p])[0]), "min_object": float(min_object_score(judge, images, [units(p)])[0])}
    objs = objects_of(rec)
    if objs:
        out["presence"] = float(object_presence(judge, images, [objs], attributes, nouns)[0])
    return out


def _mean(rows: list[dict[str, float]], key: str) -> float:
    vals = [r[key] for r in rows if key in r]
    return float(sum(vals) / len(vals)) if vals else float("nan")


def neutral_control(frozen, judge, rec: dict[str, Any], res, cfg: dict[str, Any], seeds: list[int], attributes: list[str],
                    nouns: list[str]) -> dict[int, dict[str, float]]:
    """Judge scores of p (+) K neutral tokens "-" (every slot at its initial projection): separates what the learned
    words add from what merely lengthening the prompt before EOT does to the frozen model."""
    s, learner = cfg["sampling"], res.learner
    with torch.no_grad():
        slots = learner.prompt.table[learner.slot_id].expand(learner.cfg.k, -1)
        emb, _ = frozen.embed(rec["prompt"], slots, learner.slot_id)
        cond = frozen.H(emb)
        uncond = encode_uncond(frozen)
    out = {}
    for seed in seeds:
        img = sample(frozen.sd, cond, uncond, initial_latents(frozen.sd, seed), s["steps"], s["cfg"])["image"]
        out[seed] = judge_scores(judge, rec, img, attributes, nouns)
    return out


def train(run: Run) -> dict[str, Any]:
    cfg = run.config
    runtime.setup(int(cfg["seed"]))
    recs = load_prompt_set(cfg)  # bad prompt files fail before any model is loaded
    if not recs:
        raise VislabError("the prompt set is empty")
    frozen, judge = load_models(cfg["model"], runtime.device())
    seeds = [int(s) for s in cfg["eval"]["seeds"]]
    same, fresh = seeds[:1], seeds[1:]
    attributes = sorted({a for r in recs for a, _ in objects_of(r)})
    nouns = sorted({n for r in recs for _, n in objects_of(r)})
    rows, panels, summary = [], [], []
    ablation_rows, neutral_rows = [], []
    for rec in track(recs, "learning incantations"):
        res = run_prompt(frozen, rec["prompt"], cfg, seeds, run.config.get("trainer") or None)
        row: dict[str, Any] = {"id": rec["id"], "prompt": rec["prompt"], "incantation": res.learner.text(),
                               "under_represented": res.guidance.under, "best_score": res.learner.best_score, "best_iter": res.learner.best_iter}
        for seed in seeds:
            row[f"before_seed{seed}"] = judge_scores(judge, rec, res.before[seed], attributes, nouns)
            row[f"after_seed{seed}"] = judge_scores(judge, rec, res.after[seed], attributes, nouns)
        rows.append(row)
        if cfg["eval"].get("neutral_control"):
            neutral_rows.append(neutral_control(frozen, judge, rec, res, cfg, seeds, attributes, nouns))
        if cfg["eval"].get("ablation_no_semantic"):
            ab = run_prompt(frozen, rec["prompt"], cfg, same, None, weights={**cfg["learn"]["weights"], "s": 0.0})
            ablation_rows.append({"before": judge_scores(judge, rec, ab.before[same[0]], attributes, nouns),
                                  "after": judge_scores(judge, rec, ab.after[same[0]], attributes, nouns)})
        if runtime.is_main_process():
            folder = run.path(rec["id"], "x").parent
            save_prompt_panel(folder / "panel.png", res, seeds)
            (folder / "incantation.txt").write_text(res.learner.text() + "\n")
            (folder / "units.json").write_text(json.dumps({"units": res.guidance.units, "scores": res.guidance.scores,
                                                            "under_represented": res.guidance.under, "p_sem": res.guidance.p_sem}, indent=2))
            from safetensors.torch import save_file

            tensors = {"prompt_embeds": res.learner.prompt_embeds()[0].cpu().contiguous(),
                       "slots": res.learner.best_slots().detach().cpu().contiguous()}
            with atomic_path(run.checkpoints / f"{rec['id']}.safetensors") as tmp:
                save_file(tensors, str(tmp), metadata={"prompt": rec["prompt"], "incantation": res.learner.text(),
                                                       "mode": cfg["learn"]["mode"]})
            panels.append((rec["prompt"], res.learner.text(), res.before[same[0]], res.after[same[0]]))
        summary.append(f"{rec['id']}\t{rec['prompt']}\t{res.learner.text()}")
    if not runtime.is_main_process():
        return {}
    save_summary_grid(run.path("before_after.png"), panels)
    (run.out / "summary.tsv").write_text("id\tprompt\tincantation\n" + "\n".join(summary) + "\n")

    def agg(prefix: str, seedset: list[int], key: str) -> float:
        return _mean([r[f"{prefix}_seed{s}"] for r in rows for s in seedset], key)

    extra = {
        "prompts": len(rows),
        "same_seed": {k: {"before": agg("before", same, k), "after": agg("after", same, k)} for k in ("clip", "min_object", "presence")},
        "fresh_seeds": {k: {"before": agg("before", fresh, k), "after": agg("after", fresh, k)} for k in ("clip", "min_object", "presence")},
        "per_prompt": rows,
    }
    if neutral_rows:
        extra["neutral_control"] = {
            sname: {k: _mean([r[s] for r in neutral_rows for s in sset], k) for k in ("clip", "min_object", "presence")}
            for sname, sset in (("same_seed", same), ("fresh_seeds", fresh))}
    if ablation_rows:
        extra["ablation_no_semantic_same_seed"] = {k: {"before": _mean([a["before"] for a in ablation_rows], k),
                                                       "after": _mean([a["after"] for a in ablation_rows], k)}
                                                   for k in ("clip", "min_object", "presence")}
    return run.finish(metric="judge_clip_score_same_seed", higher_is_better=True, before=agg("before", same, "clip"),
                      after=agg("after", same, "clip"), **extra)
