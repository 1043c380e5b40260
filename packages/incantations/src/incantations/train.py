"""``incantations`` run over a prompt set: probe, learn and regenerate each prompt; judge before vs after."""

from __future__ import annotations

import json
from typing import Any

import torch
from vislab import runtime
from vislab.errors import ConfigError, VislabError
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


def learned_seeds(cfg: dict[str, Any]) -> set[int]:
    """The seeds the method learns on: the probe's seed (``seed``) and the fixed selection latents'
    (``learn.select_seeds``). The evaluation never uses them."""
    return {int(cfg["seed"]), *(int(s) for s in cfg["learn"].get("select_seeds", [cfg["seed"]]))}


def check_held_out(cfg: dict[str, Any], seeds: list[int]) -> None:
    """Refuse evaluation seeds that the method learned on (probe or best-iterate selection): a headline measured on
    them would reward fitting the probe's own noise."""
    if not seeds:
        raise ConfigError("eval.seeds is empty: give held-out sampling seeds")
    overlap = sorted(set(seeds) & learned_seeds(cfg))
    if overlap:
        raise ConfigError(f"eval.seeds {overlap} are learned-on seeds (seed / learn.select_seeds "
                          f"{sorted(learned_seeds(cfg))}); evaluate on held-out seeds only")


def oracle_scores(rec: dict[str, Any], images: torch.Tensor) -> dict[str, float]:
    """The toy world's pixel oracle (no learned model): ``oracle`` = share of the prompt's named attributes that are
    in the image (colour, shape, position per object), ``oracle_present`` = share of objects drawn with their colour
    and shape."""
    from vislab.toy.oracle import score

    r = score(images.detach().float().cpu().clamp(0, 1), rec["prompt"])[0]
    return {"oracle": float(r["alignment"]), "oracle_present": float(r["objects_present"])}


def neutral_cond(frozen, learner) -> torch.Tensor:
    """Conditioning of p (+) K neutral tokens "-" (every slot at its initial projection): separates what the learned
    words add from what merely lengthening the prompt before EOT does to the frozen model."""
    with torch.no_grad():
        slots = learner.prompt.table[learner.slot_id].expand(learner.cfg.k, -1)
        emb, _ = frozen.embed(learner.guidance.prompt, slots, learner.slot_id)
        return frozen.H(emb)


JUDGE_KEYS = ("clip", "min_object", "presence")
ORACLE_KEYS = ("oracle", "oracle_present")


def paired_block(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    """Paired statistics (same prompt, same held-out seed) of the learned prompt against the original prompt and
    against the neutral control, per metric."""
    from vislab.metrics.paired import paired_stats

    out: dict[str, Any] = {}
    for k in keys:
        trip = [(r["after"][k], r["before"][k], r["neutral"][k]) for r in rows if k in r["after"]]
        if len(trip) < 2:
            continue
        a, b, n = zip(*trip)
        out[k] = {"learned_vs_original": paired_stats(a, b), "learned_vs_neutral": paired_stats(a, n),
                  "neutral_vs_original": paired_stats(n, b)}
    return out


def train(run: Run) -> dict[str, Any]:
    cfg = run.config
    runtime.setup(int(cfg["seed"]))
    seeds = [int(s) for s in cfg["eval"]["seeds"]]
    check_held_out(cfg, seeds)
    recs = load_prompt_set(cfg)  # bad prompt files fail before any model is loaded
    if not recs:
        raise VislabError("the prompt set is empty")
    frozen, judge = load_models(cfg["model"], runtime.device())
    use_oracle = cfg["model"]["sd"] == "toy"
    attributes = sorted({a for r in recs for a, _ in objects_of(r)})
    nouns = sorted({n for r in recs for _, n in objects_of(r)})
    s = cfg["sampling"]
    rows, samples, panels, summary, ablation = [], [], [], [], []
    for rec in track(recs, "learning incantations"):
        res = run_prompt(frozen, rec["prompt"], cfg, seeds, run.config.get("trainer") or None)
        ncond, uncond = neutral_cond(frozen, res.learner), encode_uncond(frozen)
        row: dict[str, Any] = {"id": rec["id"], "prompt": rec["prompt"], "incantation": res.learner.text(),
                               "under_represented": res.guidance.under, "best_score": res.learner.best_score,
                               "best_iter": res.learner.best_iter}
        for seed in seeds:
            neutral = sample(frozen.sd, ncond, uncond, initial_latents(frozen.sd, seed), s["steps"], s["cfg"])["image"]
            item: dict[str, Any] = {"id": rec["id"], "seed": seed}
            for name, img in (("before", res.before[seed]), ("after", res.after[seed]), ("neutral", neutral)):
                item[name] = judge_scores(judge, rec, img, attributes, nouns)
                if use_oracle:
                    item[name].update(oracle_scores(rec, img))
            samples.append(item)
            row[f"seed{seed}"] = {k: item[k] for k in ("before", "after", "neutral")}
        rows.append(row)
        if cfg["eval"].get("ablation_no_semantic"):
            ab = run_prompt(frozen, rec["prompt"], cfg, seeds, None, weights={**cfg["learn"]["weights"], "s": 0.0})
            for seed in seeds:
                a = {"before": judge_scores(judge, rec, ab.before[seed], attributes, nouns),
                     "after": judge_scores(judge, rec, ab.after[seed], attributes, nouns)}
                if use_oracle:
                    a["before"].update(oracle_scores(rec, ab.before[seed]))
                    a["after"].update(oracle_scores(rec, ab.after[seed]))
                ablation.append(a)
        if runtime.is_main_process():
            folder = run.path(rec["id"], "x").parent
            save_prompt_panel(folder / "panel.png", res, seeds)
            (folder / "incantation.txt").write_text(res.learner.text() + "\n")
            (folder / "units.json").write_text(json.dumps({"units": res.guidance.units, "scores": res.guidance.scores,
                                                            "under_represented": res.guidance.under, "p_sem": res.guidance.p_sem}, indent=2))
            from safetensors.torch import save_file

            tensors = {"prompt_embeds": res.learner.prompt_embeds()[:1].cpu().contiguous(),
                       "slots": res.learner.best_slots().detach().cpu().contiguous()}
            with atomic_path(run.checkpoints / f"{rec['id']}.safetensors") as tmp:
                save_file(tensors, str(tmp), metadata={"prompt": rec["prompt"], "incantation": res.learner.text(),
                                                       "mode": cfg["learn"]["mode"]})
            panels.append((rec["prompt"], res.learner.text(), res.before[seeds[0]], res.after[seeds[0]]))
        summary.append(f"{rec['id']}\t{rec['prompt']}\t{res.learner.text()}")
    if not runtime.is_main_process():
        return {}
    save_summary_grid(run.path("before_after.png"), panels)
    (run.out / "summary.tsv").write_text("id\tprompt\tincantation\n" + "\n".join(summary) + "\n")

    def means(name: str, keys: tuple[str, ...]) -> dict[str, float]:
        return {k: _mean([it[name] for it in samples], k) for k in keys}

    keys = JUDGE_KEYS + (ORACLE_KEYS if use_oracle else ())
    extra: dict[str, Any] = {
        "prompts": len(rows),
        "eval_seeds": seeds,
        "learned_seeds": sorted(learned_seeds(cfg)),
        "pairs": len(samples),
        "held_out": {name: means(name, keys) for name in ("before", "after", "neutral")},
        "paired": {"judge": paired_block(samples, JUDGE_KEYS), **({"oracle": paired_block(samples, ORACLE_KEYS)} if use_oracle else {})},
        "grounding_threshold": cfg["guidance"].get("threshold"),
        "per_prompt": rows,
    }
    if ablation:
        from vislab.metrics.paired import paired_stats

        extra["ablation_no_semantic"] = {k: paired_stats([a["after"][k] for a in ablation], [a["before"][k] for a in ablation])
                                         for k in keys if k in ablation[0]["after"]}
    return run.finish(metric="judge_clip_score_held_out", higher_is_better=True, before=extra["held_out"]["before"]["clip"],
                      after=extra["held_out"]["after"]["clip"], **extra)
