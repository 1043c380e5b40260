"""``gal4p`` training: the embedded default (toy concept) or a real run from the official data layout."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from vislab import runtime
from vislab.errors import ConfigError, VislabError
from vislab.io import load_image, write_json
from vislab.run import Run

from gal4p import data as D


def resolve_sd(cfg: dict[str, Any]) -> str:
    """The base Stable Diffusion folder (``toy`` = vislab's toy SD, pretrained once and cached)."""
    src = cfg["model"]["sd"]
    if src == "toy":
        from vislab.toy import toy_sd

        return str(toy_sd(cfg["model"]["toy_preset"]))
    from vislab.diffusion import check_sd_folder

    return str(check_sd_folder(src).resolve())


def reference_pixels(records: list[dict[str, Any]]) -> list[torch.Tensor]:
    """Init reference images in [0, 1] (3, H, W), each at its own size."""
    return [torch.from_numpy(load_image(r["instance_data_path"])).permute(2, 0, 1).float() / 255.0 for r in records]


def encode_references(scorer, refs: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([scorer.encode_images(x[None]) for x in refs])


def prepare_class_images(run: Run, cfg: dict[str, Any], base: str) -> list[Path]:
    """Class images for prior preservation: ``data.class_dir`` first; if it holds fewer than ``num_class_images``,
    the rest are generated with the base model into ``<run>/class_images`` (and the run says so)."""
    d = cfg["data"]
    num = int(d["num_class_images"])
    user = D.class_image_paths(d["class_dir"], num) if d["class_dir"] else []
    if d["class_dir"] and not Path(d["class_dir"]).is_dir():
        run.log(f"[yellow]class image folder {d['class_dir']} does not exist[/yellow]")
    D.check_images(user)
    gen_dir = run.out / "class_images"
    have = D.class_image_paths(gen_dir, num - len(user))
    missing = num - len(user) - len(have)
    if missing > 0:
        from vislab.diffusion import load_sd

        from gal4p.query import generate

        where = f"{d['class_dir']} holds {len(user)} of {num} class images" if d["class_dir"] else "no class_dir given"
        run.log(f"{where}: generating {missing} with the base model ('{d['class_prompt']}') into {gen_dir}")
        sd = load_sd(base)
        g = torch.Generator().manual_seed(int(cfg["seed"]) + 12345)
        e = cfg["eval"]
        imgs = generate(sd, [d["class_prompt"]], missing, int(e["steps"]), float(e["guidance"]), g, e["scheduler"],
                        resolution=int(d["resolution"]), max_batch=int(cfg["al"].get("query_batch", 4)))
        if runtime.is_main_process():
            for i, x in enumerate(imgs):
                D.save_png(gen_dir / f"class_{len(have) + i:04d}.png", x)
        have = D.class_image_paths(gen_dir, num - len(user)) if runtime.is_main_process() else have
    return user + have


def _save_grid(path: Path, images: torch.Tensor, captions: list[str], ncol: int, title: str) -> None:
    if not runtime.is_main_process():
        return
    from vislab.toy.world import save_captioned_grid

    path.parent.mkdir(parents=True, exist_ok=True)
    save_captioned_grid(path, images, captions, ncol=ncol, title=title)


def _plot_curves(path: Path, before: dict[str, float], runs: dict[str, dict[str, Any]]) -> None:
    if not runtime.is_main_process():
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for ax, key in zip(axes, ("image_alignment", "text_alignment", "overfitting_rate")):
        for name, evals in runs.items():
            rs = sorted(int(r) for r in evals)
            ax.plot([0, *rs], [before[key], *[evals[str(r)][key] for r in rs]], marker="o", label=name)
        ax.set_title(key)
        ax.set_xlabel("round (0 = base model)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def learned_seeds(cfg: dict[str, Any]) -> set[int]:
    """Seeds the learning side draws from: training and query noise (``seed``), the per-round data order
    (``seed + r``) and the generated class images (``seed + 12345``)."""
    s = int(cfg["seed"])
    return {s, s + 12345, *(s + r for r in range(1, int(cfg["al"]["total_rounds"]) + 1))}


def check_held_out(cfg: dict[str, Any]) -> None:
    """The evaluation images are sampled from a seed the learning never used."""
    if int(cfg["eval"]["seed"]) in learned_seeds(cfg):
        raise ConfigError(f"eval.seed {cfg['eval']['seed']} is a learned-on seed {sorted(learned_seeds(cfg))}; "
                          "evaluate on a held-out seed")


def oracle_scores(images: torch.Tensor, prompts: list[str], concepts: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The toy world's pixel oracle (no learned model) on the evaluation images: ``oracle`` = share of each prompt's
    named attributes in the image (the identifier stands for the concept's colour and shape), ``oracle_present`` =
    the concept is drawn with its colour and shape. Means plus per-image values."""
    from vislab.toy.oracle import score

    rs = score(images.detach().float().cpu().clamp(0, 1), prompts, concepts)
    align = [float(r["alignment"]) for r in rs]
    ident = next(iter(concepts))
    present = [float(any(q["present"] for q in r["requested"] if q["color"] == concepts[ident]["color"]
                         and q["shape"] == concepts[ident]["shape"])) for r in rs]
    return {"oracle": sum(align) / len(align), "oracle_present": sum(present) / len(present),
            "per_image": {"oracle": align, "oracle_present": present}}


def paired_comparisons(before: dict[str, Any], unc: dict[str, Any], rnd: dict[str, Any]) -> dict[str, Any]:
    """Paired statistics per image (same evaluation prompt, same sampling noise): uncertainty vs random selection
    (the paper's claim) and the final uncertainty model vs the base model, for the judge-CLIP metrics and, on the
    toy world, the oracle's."""
    from vislab.metrics.paired import paired_stats

    out: dict[str, Any] = {"judge": {}, "oracle": {}}
    for key in ("image_alignment", "text_alignment", "overfit", "oracle", "oracle_present"):
        if key not in unc.get("per_image", {}) or key not in rnd.get("per_image", {}):
            continue
        group = "oracle" if key.startswith("oracle") else "judge"
        out[group][key] = {"uncertainty_vs_random": paired_stats(unc["per_image"][key], rnd["per_image"][key])}
        if key in before.get("per_image", {}):
            out[group][key]["uncertainty_vs_base"] = paired_stats(unc["per_image"][key], before["per_image"][key])
    return {k: v for k, v in out.items() if v}


def train(run: Run) -> dict[str, Any]:
    from vislab.diffusion import load_sd
    from vislab.lightning import build_trainer

    from gal4p.evaluate import evaluate_model
    from gal4p.loop import GALLoop
    from gal4p.scoring import load_scorer

    cfg = run.config
    runtime.setup(int(cfg["seed"]))
    check_held_out(cfg)
    mode = cfg["mode"]
    if mode not in ("object", "style"):
        raise VislabError(f"mode must be object or style, not {mode!r}")
    d, e, al = cfg["data"], cfg["eval"], cfg["al"]
    base = resolve_sd(cfg)
    scorer = load_scorer(cfg["model"]["clip"], cfg["model"]["clip_checkpoint"], cfg["model"]["toy_preset"],
                         device=runtime.device())

    # ---------------------------------------------------------------- the concept
    toy = d["init_json"] is None
    if toy:
        t = d["toy"]
        init = run.out / "concept" / "init.json"
        if runtime.is_main_process() or not init.is_file():
            init = D.make_toy_concept(run.out / "concept", t["color"], t["shape"], t["texture"], int(t["n_images"]),
                                      int(d["resolution"]), d["identifier"], int(cfg["seed"]), t["position"])
    else:
        init = Path(d["init_json"])
    records = D.read_records(init, mode)
    D.check_images([Path(r["instance_data_path"]) for r in records])
    captions = D.reference_captions(records, mode)
    descriptor = D.concept_descriptor(records, mode, d["identifier"], d["class_word"])
    refs = reference_pixels(records)
    _save_grid(run.path("references.png"), torch.stack([torch.nn.functional.interpolate(x[None], size=(64, 64), mode="bilinear")[0] for x in refs]),
               [r["instance_prompt"] for r in records], ncol=min(6, len(refs)), title="reference images")
    ref_feats = encode_references(scorer, refs)
    prior = mode == "object" and bool(cfg["dreambooth"]["prior_preservation"])
    class_images = prepare_class_images(run, cfg, base) if prior else None

    # ---------------------------------------------------------------- evaluation prompts
    if e["prompts"]:
        plain = D.read_prompts(e["prompts"])
    elif toy:
        plain = D.toy_eval_prompts(d["toy"]["shape"])
    else:
        raise VislabError("eval.prompts is needed for a real concept (e.g. data/test_prompts/cat.txt)")
    if mode == "object":
        gen_prompts = [D.personalize_prompt(p, d["class_word"], d["identifier"]) for p in plain]
        text_prompts = plain
    else:
        gen_prompts = [f"{p} {descriptor}" for p in plain]
        text_prompts = gen_prompts

    oracle_concepts = {d["identifier"]: {"color": d["toy"]["color"], "shape": d["toy"]["shape"]}} if toy and mode == "object" else None

    def evaluate(sd, tag: str) -> dict[str, Any]:
        sd = sd.to(runtime.device())  # a round's model comes back from fit on the CPU
        res, imgs = evaluate_model(sd, scorer, gen_prompts, text_prompts, ref_feats, captions, int(e["images_per_prompt"]),
                                   int(e["steps"]), float(e["guidance"]), int(e["seed"]), e["scheduler"], int(d["resolution"]))
        n = int(e["images_per_prompt"])
        if oracle_concepts is not None:
            o = oracle_scores(imgs, [p for p in gen_prompts for _ in range(n)], oracle_concepts)
            res["per_image"].update(o.pop("per_image"))
            res.update(o)
        _save_grid(run.path("samples", f"{tag}.png"), imgs, [p for p in gen_prompts for _ in range(n)], ncol=max(2, min(8, 2 * n)),
                   title=f"{tag}: image align {res['image_alignment']:.3f}, text align {res['text_alignment']:.3f}")
        run.log(f"{tag}: " + ", ".join(f"{k} {v:.4f}" for k, v in res.items() if k != "per_image"))
        return res

    before_path = run.out / "before.json"
    if run.resume and before_path.is_file():
        import json

        before = json.loads(before_path.read_text())
    else:
        before = evaluate(load_sd(base, device=runtime.device()), "round0_base")
        if runtime.is_main_process():
            write_json(before_path, before)

    # ---------------------------------------------------------------- the active-learning loop(s)
    def make_trainer_factory(tag: str, ckpt_dir: Path):
        from pytorch_lightning.callbacks import ModelCheckpoint
        from pytorch_lightning.loggers import CSVLogger

        def make(r: int):
            tcfg = dict(cfg.get("trainer") or {})
            tcfg.setdefault("max_steps", int(al["steps_per_round"]))
            tcfg["logger"] = CSVLogger(str(run.out), name="logs", version=f"{tag}round{r}")
            tcfg["enable_checkpointing"] = True
            tcfg.setdefault("default_root_dir", str(run.out))
            ckpt = ModelCheckpoint(dirpath=str(ckpt_dir), save_last=True, save_top_k=0,
                                   every_n_train_steps=int(cfg["checkpoint_every_n_steps"]), save_on_train_epoch_end=False, enable_version_counter=False)
            return build_trainer(None, tcfg, callbacks=[ckpt])

        return make

    common = dict(base=base, records=records, captions=captions, descriptor=descriptor, scorer=scorer, class_images=class_images,
                  class_prompt=d["class_prompt"], identifier=d["identifier"], class_word=d["class_word"], resume=run.resume,
                  log=run.log)

    def round_eval(tag: str):
        return lambda r, sd: evaluate(sd, f"{tag}_round{r}")

    sel = al["selection"]
    loop = GALLoop(cfg, run.out / "al", make_trainer=make_trainer_factory("", run.checkpoints), evaluate=round_eval(sel),
                   last_ckpt=run.checkpoints / "last.ckpt", **common)
    state = loop.run()
    runs = {sel: state.evals}
    result: dict[str, Any] = {}
    if state.awaiting_human is not None:
        run.log(f"[yellow]waiting for your choice of round {state.awaiting_human}'s samples; rerun with --resume[/yellow]")
    elif al["compare_random"] and sel == "uncertainty":
        ckdir = run.checkpoints / "random"
        rloop = GALLoop(cfg, run.out / "al_random", make_trainer=make_trainer_factory("random_", ckdir), selection="random",
                        evaluate=round_eval("random"), last_ckpt=ckdir / "last.ckpt", reuse_rounds={1: loop.model_dir(1)}, **common)
        if "1" in state.evals:
            rloop.state.evals.setdefault("1", state.evals["1"])
        rstate = rloop.run()
        runs["random"] = rstate.evals
        fr = str(rstate.final_round)
        result["random"] = {"final_round": rstate.final_round, **{f"{k}_after": v for k, v in rstate.evals[fr].items() if k != "per_image"},
                            "selected": {r: q["selected"] for r, q in rstate.queries.items()}}

    final = str(state.final_round)
    after = state.evals[final]
    # the paired comparison needs the random-selection baseline run (runs["random"] is also the main run
    # when the selection itself is random)
    if "random" in result and str(result["random"]["final_round"]) in runs.get("random", {}):
        result["paired"] = paired_comparisons(before, after, runs["random"][str(result["random"]["final_round"])])
        result["eval_seed"], result["learned_seeds"] = int(e["seed"]), sorted(learned_seeds(cfg))
    if runtime.is_main_process():
        model_out = run.out / "model"
        if model_out.exists():
            shutil.rmtree(model_out)
        shutil.copytree(loop.model_dir(state.final_round), model_out)
        _plot_curves(run.path("metrics_per_round.png"), before, runs)
    return run.finish(
        metric="image_alignment", higher_is_better=True, before=before["image_alignment"], after=after["image_alignment"],
        text_alignment_before=before["text_alignment"], text_alignment_after=after["text_alignment"],
        overfitting_rate_before=before["overfitting_rate"], overfitting_rate_after=after["overfitting_rate"],
        selection=sel, learner=cfg["learner"], final_round=state.final_round, stopped_early=state.stopped,
        stop_reason=state.stop_reason, awaiting_human=state.awaiting_human, per_round=runs, openness=state.openness,
        selected={r: [state.directions[i] for i in q["selected"]] for r, q in state.queries.items()},
        uncertainty={r: q["uncertainty"] for r, q in state.queries.items()},
        model=str(run.out / "model"), **result,
    )
