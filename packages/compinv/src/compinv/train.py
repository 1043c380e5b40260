"""The ``compinv`` run: learn a concept by plain textual inversion and by compositional inversion, then
generate composition prompts and judge them (text alignment headline, image alignment beside)."""

from __future__ import annotations

from typing import Any

import torch
from vislab import runtime
from vislab.errors import ConfigError, VislabError
from vislab.run import Run, track

from compinv.dreambooth import prepare_dreambooth
from compinv.evaluate import (
    composition_prompts,
    image_alignment,
    read_objects,
    strip_identifiers,
    text_alignment,
)
from compinv.images import load_concept_images
from compinv.pipeline import (
    invert,
    judge_folder,
    load_judge,
    parse_layout,
    prepare_sd,
    prompt_for_sampling,
    sd_folder,
)
from compinv.spatial import sample, token_positions


def spatial_groups(tokenizer, prompt: str, concept_phrase: str, other_phrase: str) -> list[list[int]]:
    return [token_positions(tokenizer, prompt, concept_phrase), token_positions(tokenizer, prompt, other_phrase)]


def generate_compositions(sd, cfg: dict[str, Any], objects: list[str], placeholder_names: list[str], spatial: bool,
                          seeds: list[int], desc: str) -> list[dict[str, Any]]:
    """Sample every composition prompt for every seed; returns rows with the image and its texts."""
    concept = cfg["concept"]
    s, sp = cfg["sampling"], cfg["spatial"]
    n_vec = int(cfg["inversion"]["num_vectors"])
    concept_text = f"{concept['placeholder']} {concept.get('noun') or ''}".strip()
    prompts = composition_prompts(objects, concept_text, cfg["eval"]["template"])
    boxes = parse_layout(sp["layout"])
    rows = []
    jobs = [(o, p, seed) for o, p in zip(objects, prompts) for seed in seeds]
    for obj, prompt, seed in track(jobs, desc):
        full = prompt_for_sampling(prompt, concept["placeholder"], n_vec, bool(s["expand_placeholder"]))
        c_words = " ".join(w for w in full.split() if w in placeholder_names)
        groups = spatial_groups(sd.tokenizer, full, c_words, obj)
        guide = {k: sp[k] for k in ("steps", "max_iters", "threshold", "scale", "heads", "step_scale")} if spatial else None
        res = sample(sd, full, seed=seed, steps=int(s["steps"]), cfg_scale=float(s["cfg"]), boxes=boxes if spatial else None,
                     token_groups=groups if spatial else None, guide=guide, vis_groups=groups)
        rows.append({"prompt": prompt, "object": obj, "seed": seed, "text": strip_identifiers(prompt, [concept["placeholder"]]),
                     "image": res.image, "attention": res.attention, "updates": res.updates,
                     "final_layout_loss": res.losses[-1] if res.losses else None})
    return rows


def score(judge, rows: list[dict[str, Any]], refs: torch.Tensor, detector=None, coi_threshold: float = 0.8) -> dict[str, float]:
    """Judge-CLIP text and image alignment; CoI too when a detector is given."""
    imgs = torch.cat([r["image"] for r in rows])
    ta = text_alignment(judge, imgs, [r["text"] for r in rows])
    ia = image_alignment(judge, imgs, refs)
    for r, t, i in zip(rows, ta, ia):
        r["text_alignment"], r["image_alignment"] = float(t), float(i)
    out = {"text_alignment": float(ta.mean()), "image_alignment": float(ia.mean())}
    if detector is not None:
        from compinv.coi import coi_score, composed_object

        objs = [composed_object(r["text"]) if "{concept}" in r["object"] else r["object"] for r in rows]
        out["coi"], hits = coi_score(detector, imgs, objs, coi_threshold)
        for r, h in zip(rows, hits):
            r["coi_hit"] = bool(h)
    return out


def check_held_out(cfg: dict[str, Any], seeds: list[int]) -> None:
    """The composition images are sampled from seeds the inversion never drew its noise from (``seed``)."""
    if not seeds:
        raise ConfigError("eval.seeds is empty: give held-out sampling seeds")
    if int(cfg["seed"]) in seeds:
        raise ConfigError(f"eval.seeds contains the training seed {cfg['seed']}; evaluate on held-out sampling seeds")


def oracle_scores(rows: list[dict[str, Any]], concept: dict[str, Any]) -> dict[str, float]:
    """The toy world's pixel oracle (no learned model) on each composition image, with the placeholder standing for
    the held-out concept's colour and shape: ``oracle`` = share of the prompt's named attributes in the image,
    ``oracle_composition`` = 1 when the concept and the other object are both drawn with their colour and shape."""
    from vislab.toy.oracle import score

    color, shape = concept["toy_concept"].split()
    concepts = {concept["placeholder"]: {"color": color, "shape": shape}}
    res = score(torch.cat([r["image"] for r in rows]).float().clamp(0, 1), [r["prompt"] for r in rows], concepts)
    for r, o in zip(rows, res):
        r["oracle"], r["oracle_composition"] = float(o["alignment"]), float(o["all_present"])
    return {k: sum(r[k] for r in rows) / len(rows) for k in ("oracle", "oracle_composition")}


def paired_comparisons(plain: list[dict[str, Any]], sem: list[dict[str, Any]], full: list[dict[str, Any]]) -> dict[str, Any]:
    """Paired statistics per composition image (same object, same held-out seed): compositional inversion (semantic
    + spatial) and semantic only, each against plain inversion."""
    from vislab.metrics.paired import paired_stats

    assert [(r["object"], r["seed"]) for r in plain] == [(r["object"], r["seed"]) for r in full] == [(r["object"], r["seed"]) for r in sem]
    out: dict[str, Any] = {"judge": {}, "oracle": {}}
    for key in ("text_alignment", "image_alignment", "coi_hit", "oracle", "oracle_composition"):
        if key not in plain[0]:
            continue
        group = "oracle" if key.startswith("oracle") else "judge"
        b = [float(r[key]) for r in plain]
        out[group][key] = {"compositional_vs_plain": paired_stats([float(r[key]) for r in full], b),
                           "semantic_only_vs_plain": paired_stats([float(r[key]) for r in sem], b)}
    return {k: v for k, v in out.items() if v}


def train(run: Run) -> dict[str, Any]:
    cfg = run.config
    seed = int(cfg["seed"])
    runtime.setup(seed)
    check_held_out(cfg, [int(x) for x in cfg["eval"]["seeds"]])
    objects = read_objects(cfg["eval"]["objects"])  # bad lists fail before models load
    if cfg["eval"].get("limit"):
        objects = objects[: int(cfg["eval"]["limit"])]
    if cfg["inversion"]["anchor_mode"] == "none":
        raise VislabError("inversion.anchor_mode 'none' is the plain-TI baseline, which this run trains anyway; use multi or single")
    sd_dir = sd_folder(cfg["model"])
    jdir = judge_folder(cfg["model"], sd_dir)
    dev = runtime.device()
    concept = cfg["concept"]
    inv = cfg["inversion"]
    seeds = [int(x) for x in cfg["eval"]["seeds"]]
    judge = load_judge(jdir, dev)
    detector = None
    if cfg["eval"].get("detector"):
        from compinv.coi import load_detector

        detector = load_detector(cfg["eval"]["detector"], dev)
    thr = float(cfg["eval"].get("coi_threshold", 0.8))

    method = inv.get("method", "ti")
    if method not in ("ti", "dreambooth"):
        raise VislabError(f"inversion.method must be ti or dreambooth, got {method!r}")
    from vislab.diffusion import placeholder_names, save_learned_embeds
    from vislab.lightning import build_trainer

    trainer_cfg = dict(cfg.get("trainer") or {})
    base_cfg = {k: v for k, v in trainer_cfg.items() if k not in ("checkpoint",)}
    if method == "ti":
        # 1. plain textual inversion (the baseline) ---------------------------------------------
        sd0, ids0, anc0 = prepare_sd(sd_dir, concept, inv, dev)
        images = load_concept_images(concept, sd0.image_size)
        run.log(f"concept: {len(images)} images of {concept['images'] if concept['images'] != 'toy' else concept['toy_concept']}")
        plain = invert(sd0, ids0, anc0, images, concept, {**inv, "anchor_mode": "none"}, build_trainer(None, base_cfg), seed)
        # 2. compositional (semantic) inversion ---------------------------------------------------
        sd1, ids1, anc1 = prepare_sd(sd_dir, concept, inv, dev)
        comp = invert(sd1, ids1, anc1, images, concept, inv, run.trainer(), seed, ckpt_path=run.resume_checkpoint())
        names = placeholder_names(concept["placeholder"], int(inv["num_vectors"]))
        labels = ("plain textual inversion", "compositional inversion (semantic + spatial)", "plain TI")
    else:
        # DreamBooth (UNet + identifier row, prior preservation) without / with the anchor regulariser
        from compinv.dreambooth import class_images_for, finetune

        db = cfg["dreambooth"]
        sd0, ids0, anc0 = prepare_dreambooth(sd_dir, concept, db, dev)
        images = load_concept_images(concept, sd0.image_size)
        cls = class_images_for(db, concept, sd0.image_size)
        run.log(f"concept: {len(images)} images; prior preservation: {0 if cls is None else len(cls)} class images")
        plain = finetune(sd0, ids0, anc0, images, cls, concept, inv, db, build_trainer(None, base_cfg), seed, anchor_mode="none")
        sd1, ids1, anc1 = prepare_dreambooth(sd_dir, concept, db, dev)
        comp = finetune(sd1, ids1, anc1, images, cls, concept, inv, db, run.trainer(), seed, ckpt_path=run.resume_checkpoint())
        names = [concept["placeholder"]]
        cfg = {**cfg, "inversion": {**inv, "num_vectors": 1}}
        labels = ("plain DreamBooth", "compositional DreamBooth (semantic + spatial)", "plain DreamBooth")
    pkey = "plain_ti" if method == "ti" else "plain_dreambooth"
    if not runtime.is_main_process():
        return {}
    save_learned_embeds(run.path(pkey, "learned_embeds.safetensors"), sd0.tokenizer, sd0.text_encoder, ids0, concept["placeholder"])
    save_learned_embeds(run.path("learned_embeds.safetensors"), sd1.tokenizer, sd1.text_encoder, ids1, concept["placeholder"])
    if method == "dreambooth":
        comp.save_model(run.path("dreambooth_model"), str(sd_dir), {"placeholder": concept["placeholder"], "anchors": concept["anchors"]})

    # 3. compositions -------------------------------------------------------------------------------
    rows_plain = generate_compositions(sd0, cfg, objects, names, False, seeds, f"{labels[2]} compositions")
    rows_sem = generate_compositions(sd1, cfg, objects, names, False, seeds, "semantic inversion compositions")
    rows_full = generate_compositions(sd1, cfg, objects, names, bool(cfg["spatial"]["enabled"]), seeds,
                                      "semantic + spatial compositions")
    s_plain, s_sem, s_full = (score(judge, rows, images, detector, thr) for rows in (rows_plain, rows_sem, rows_full))
    if concept["images"] == "toy" and cfg["model"]["sd"] == "toy":
        for rows, sc in ((rows_plain, s_plain), (rows_sem, s_sem), (rows_full, s_full)):
            sc.update(oracle_scores(rows, concept))
    paired = paired_comparisons(rows_plain, rows_sem, rows_full)
    # anchor distance: how far the learned vector sits from the anchor word (core distribution)
    def dist(sd, ids):
        w = sd.text_encoder.get_input_embeddings().weight.detach()
        return float((w[ids] - w[anc0[0]]).norm(dim=-1).mean())

    from compinv.plots import save_attention, save_compositions, save_concept, save_losses

    save_concept(run.path("concept_images.png"), images)
    save_compositions(run.path("compositions.png"), [(labels[2], rows_plain), ("semantic", rows_sem), ("semantic + spatial", rows_full)])
    save_attention(run.path("attention_maps.png"), [(labels[2], rows_plain), ("semantic + spatial", rows_full)])
    save_losses(run.path("training_losses.png"), {labels[2]: plain.history, "compositional": comp.history})
    per = [{k: v for k, v in r.items() if k not in ("image", "attention")} | {"method": m}
           for m, rows in ((pkey, rows_plain), ("semantic", rows_sem), ("semantic_spatial", rows_full)) for r in rows]
    return run.finish(
        metric="text_alignment", higher_is_better=True, before=s_plain["text_alignment"], after=s_full["text_alignment"],
        method=method, before_method=labels[0], after_method=labels[1],
        image_alignment={"before": s_plain["image_alignment"], "after": s_full["image_alignment"]},
        **({"oracle": {k: {"before": s_plain[k], "after": s_full[k], "semantic_only": s_sem[k]} for k in ("oracle", "oracle_composition")}}
           if "oracle" in s_plain else {}),
        paired=paired, learned_seeds=[seed],
        semantic_only=s_sem, judge_clip=str(jdir), sd=str(sd_dir),
        **({"coi": {"before": s_plain["coi"], "after": s_full["coi"], "semantic_only": s_sem["coi"], "threshold": thr,
                    "detector": str(cfg["eval"]["detector"])}} if detector is not None else {}),
        anchor_distance={pkey: dist(sd0, ids0), "compositional": dist(sd1, ids1)},
        train_loss={pkey: {"first": plain.history[0]["loss"], "last": plain.history[-1]["loss"]} if plain.history else None,
                    "compositional": {"first": comp.history[0]["loss"], "last": comp.history[-1]["loss"]} if comp.history else None},
        prompts=len(objects), seeds=seeds, per_image=per,
    )
