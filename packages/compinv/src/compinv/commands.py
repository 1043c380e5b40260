"""``compinv generate --embeds FILE --prompt "..." [--layout ...]``: images + cross-attention maps."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def generate_main(argv: list[str]) -> int:
    import torch
    from vislab import runtime
    from vislab.diffusion import load_learned_embeds, load_sd, read_learned_embeds
    from vislab.errors import VislabError
    from vislab.io import atomic_path

    from compinv.pipeline import parse_layout, sd_folder
    from compinv.plots import _plt
    from compinv.spatial import sample, token_positions

    p = argparse.ArgumentParser(prog="compinv generate",
                                description="Generate with learned embeddings, optionally with spatial inversion (layout guidance).")
    p.add_argument("--model", default="toy", help="a local diffusers SD folder, or 'toy' (the toy SD)")
    p.add_argument("--toy-preset", default="default")
    p.add_argument("--embeds", nargs="+", default=[], help="learned_embeds.safetensors / .bin file(s) (diffusers or A1111 layout)")
    p.add_argument("--token", nargs="+", default=None,
                   help="the prompt word of each --embeds file, in the same order (default: the file's own key; an A1111 "
                        ".safetensors/.pt embedding is named by its file name, as in A1111; a bare tensor needs one)")
    p.add_argument("--dreambooth", default=None,
                   help="a DreamBooth model folder written by a run with inversion.method dreambooth (<run>/dreambooth_model): "
                        "its UNet and identifier on top of --model")
    p.add_argument("--prompt", required=True, help='e.g. "a <pink-star> star on the left and a red circle on the right"')
    p.add_argument("--phrases", default=None,
                   help='";"-separated phrases, one per box group (default: the placeholder tokens; the words after " and ")')
    p.add_argument("--layout", default=None, help='"x0,y0,x1,y1;x0,y0,x1,y1" (default two-slot layout); "none": plain sampling')
    p.add_argument("--out", type=Path, default=Path("compinv_out"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--cfg", type=float, default=7.5)
    p.add_argument("--guide-steps", type=int, default=10)
    p.add_argument("--heads", default="official", choices=["official", "all"])
    p.add_argument("--first-vector-only", action="store_true", help="official spatial path: only the first learned vector")
    runtime.add_device_argument(p)
    a = p.parse_args(argv)
    device = runtime.pick_device(a.device)
    if not a.embeds and not a.dreambooth:
        p.error("give --embeds FILE(s) and/or --dreambooth DIR")
    files = [Path(f) for f in a.embeds]
    if a.token is not None and len(a.token) != len(files):
        raise VislabError(f"--token needs one word per --embeds file ({len(files)} files, {len(a.token)} tokens)")
    tokens = a.token or [None] * len(files)
    for f, t in zip(files, tokens):
        read_learned_embeds(f, token=t)  # fails fast on a bad file, before the model loads
    sd_dir = sd_folder({"sd": a.model, "toy_preset": a.toy_preset})
    runtime.setup(0)
    names: list[str] = []
    if a.dreambooth:
        from vislab.diffusion import load_personalized

        from compinv.dreambooth import MODEL_FILE

        emb = Path(a.dreambooth) / "learned_embeds.safetensors"
        sd, _ = load_personalized(a.dreambooth, base=sd_dir, device=device, model_file=MODEL_FILE, what="compinv DreamBooth")
        names += [n for n in read_learned_embeds(emb)] if emb.is_file() else []
        sd.freeze()
    else:
        sd = load_sd(sd_dir, device=device).freeze()
    for f, t in zip(files, tokens):
        names += load_learned_embeds(f, sd.tokenizer, sd.text_encoder, token=t)
    prompt = a.prompt
    if not a.first_vector_only:
        for key in {n.rsplit("_", 1)[0] if n.rsplit("_", 1)[-1].isdigit() else n for n in names}:
            extra = [n for n in names if n.startswith(key + "_")]
            if extra and key in prompt and (key + "_1") not in prompt:
                prompt = prompt.replace(key, " ".join([key, *extra]))
    layout = None if a.layout == "none" else parse_layout(a.layout or "default")
    if a.phrases:
        phrases = [x.strip() for x in a.phrases.split(";") if x.strip()]
    else:
        concept = " ".join(w for w in prompt.split() if w in names)
        if not concept:
            raise VislabError(f"the prompt {a.prompt!r} names none of the learned tokens {names}")
        rest = prompt.split(" and ", 1)[1] if " and " in prompt else ""
        rest = rest.replace("a ", " ", 1).replace("on the right", "").replace("on the left", "").strip()
        phrases = [concept] + ([rest] if rest else [])
    groups = [token_positions(sd.tokenizer, prompt, ph) for ph in phrases]
    if layout is not None and len(layout) != len(groups):
        raise VislabError(f"{len(layout)} layout boxes for {len(groups)} phrases {phrases}; give --phrases or --layout to match")
    out = a.out
    out.mkdir(parents=True, exist_ok=True)
    guide = {"steps": a.guide_steps, "heads": a.heads} if layout is not None else None
    plt = _plt()
    for seed in a.seeds:
        r = sample(sd, prompt, seed=seed, steps=a.steps, cfg_scale=a.cfg, boxes=layout, token_groups=groups if layout else None,
                   guide=guide, vis_groups=groups)
        img = (r.image[0].permute(1, 2, 0).numpy() * 255).round().astype("uint8")
        from PIL import Image

        with atomic_path(out / f"seed{seed}.png") as tmp:
            Image.fromarray(img).save(tmp, format="PNG")
        fig, axes = plt.subplots(1, 1 + len(groups), figsize=(2.2 * (1 + len(groups)), 2.4), squeeze=False)
        axes[0][0].imshow(img)
        axes[0][0].set_title(f"seed {seed}", fontsize=7)
        for j, ph in enumerate(phrases):
            axes[0][j + 1].imshow(r.attention[j].numpy(), cmap="viridis")
            axes[0][j + 1].set_title(ph, fontsize=7)
        for ax in axes[0]:
            ax.axis("off")
        with atomic_path(out / f"seed{seed}_attention.png") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
        plt.close(fig)
        torch.save(r.attention, out / f"seed{seed}_attention.pt")
    (out / "generate.json").write_text(json.dumps({"prompt": prompt, "phrases": phrases, "layout": layout, "seeds": a.seeds,
                                                    "tokens": groups}, indent=2))
    print(f"images and attention maps in {out}", file=sys.stderr)
    return 0


def regularize_main(argv: list[str]) -> int:
    """``compinv regularize``: the post-training plug-in of semantic inversion on an existing embedding.

    Loads a textual-inversion file (diffusers ``learned_embeds.safetensors``/``.bin`` or A1111), continues
    training its vectors on the concept images with the anchor regulariser
    ``L = alpha_rec * L_rec + alpha_anc * L_anchor`` (anchor = the class word, plus ``--anchors``), writes a new
    ``learned_embeds.safetensors`` and ``metrics.json`` with the anchor distance and the denoising loss
    on the concept images, before -> after.
    """
    from vislab import runtime
    from vislab.diffusion import (
        load_learned_embeds,
        load_sd,
        placeholder_names,
        read_learned_embeds,
        save_learned_embeds,
    )
    from vislab.errors import InputError, VislabError
    from vislab.io import write_json
    from vislab.lightning import build_trainer
    from vislab.run import load_preset

    from compinv.images import load_concept_images
    from compinv.pipeline import fixed_denoising_loss, invert, sd_folder
    from compinv.semantic import single_token_id, templates

    p = argparse.ArgumentParser(prog="compinv regularize",
                                description="Apply the anchor (semantic-inversion) regulariser to an existing textual-inversion embedding.")
    p.add_argument("--embeds", required=True, help="existing learned_embeds.safetensors / .bin (diffusers or A1111 layout)")
    p.add_argument("--images", required=True, help="folder with the concept images ('toy': the toy held-out concept, with --sd toy)")
    p.add_argument("--class-word", required=True, help="the concept's class word: the anchor and the noun after the placeholder")
    p.add_argument("--anchors", nargs="*", default=[], help="more anchor words (sparse multi-anchor weighting)")
    p.add_argument("--noun", default=None, help="word written after the placeholder in the prompts (default: the class word; '' for none)")
    p.add_argument("--token", default=None,
                   help="which placeholder of a multi-placeholder file to regularise, or the word that names a single "
                        "embedding (default: the file's own key; an A1111 .safetensors/.pt embedding is named by its file name)")
    p.add_argument("--sd", default="toy", help="a local diffusers SD folder, or 'toy' (the toy SD)")
    p.add_argument("--toy-preset", default="default")
    p.add_argument("--toy-concept", default="pink star", help="the held-out toy concept for --images toy")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--alpha-rec", type=float, default=0.05)
    p.add_argument("--alpha-anc", type=float, default=0.95)
    p.add_argument("--anchor-mode", default="multi", choices=["multi", "single"],
                   help="multi: sparse weights over the anchors (equals single with one anchor); single: official L_anchor")
    p.add_argument("--templates", default=None, choices=["toy", "imagenet"], help="prompt templates (default: toy for the toy SD, else imagenet)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("compinv_regularized"))
    runtime.add_device_argument(p)
    a = p.parse_args(argv)
    device = runtime.pick_device(a.device)
    if a.steps < 1:
        raise VislabError("--steps must be at least 1")
    try:
        stored = read_learned_embeds(a.embeds)  # missing / unreadable file: InputError before the model loads
    except InputError:
        if a.token is None:
            raise
        stored = {}  # e.g. a bare tensor: named by --token below
    rename = a.token is not None and a.token not in stored
    if rename:  # a single embedding (A1111, bare tensor or diffusers) used under the word the user gives
        stored = read_learned_embeds(a.embeds, token=a.token)
    if a.token is None and len(stored) != 1:
        raise InputError(a.embeds, f"holds {len(stored)} placeholders {sorted(stored)}; choose one with --token")
    key = a.token if a.token is not None else next(iter(stored))
    if key not in stored:
        raise InputError(a.embeds, f"has no placeholder {key!r} (it holds {sorted(stored)})")
    n_vec = int(stored[key].shape[0])
    runtime.setup(a.seed)
    sd_dir = sd_folder({"sd": a.sd, "toy_preset": a.toy_preset})
    sd = load_sd(sd_dir, device=device).freeze()
    load_learned_embeds(a.embeds, sd.tokenizer, sd.text_encoder, token=a.token if rename else None)  # width mismatch: InputError
    ids = sd.tokenizer.convert_tokens_to_ids(placeholder_names(key, n_vec))
    anchors = [a.class_word, *[w for w in a.anchors if w != a.class_word]]
    anchor_ids = [single_token_id(sd.tokenizer, w, "anchor word") for w in anchors]
    noun = a.class_word if a.noun is None else a.noun
    concept = {"images": a.images, "toy_concept": a.toy_concept, "n_images": 4, "placeholder": key, "noun": noun,
               "initializer": a.class_word, "anchors": anchors}
    images = load_concept_images(concept, sd.image_size)
    inv = load_preset("compinv")["inversion"]
    inv.update(num_vectors=n_vec, placeholder_expansion="all", anchor_mode=a.anchor_mode, alpha_rec=a.alpha_rec,
               alpha_anc=a.alpha_anc, lr=a.lr, scale_lr=False, batch_size=a.batch_size,
               templates=a.templates or ("toy" if a.sd == "toy" else "imagenet"))
    prompt = templates(inv["templates"])[0].format(f"{' '.join(placeholder_names(key, n_vec))} {noun}".strip())
    w = sd.text_encoder.get_input_embeddings().weight

    def measure() -> dict[str, float]:
        rows = w.detach()[ids]
        return {"anchor_distance": float((rows - w.detach()[anchor_ids[0]]).norm(dim=-1).mean()),
                "denoising_loss": fixed_denoising_loss(sd, [prompt] * len(images), images, seed=a.seed)}

    before = measure()
    mod = invert(sd, ids, anchor_ids, images, concept, inv,
                 build_trainer(None, {"max_steps": a.steps, "enable_progress_bar": sys.stderr.isatty()}), a.seed)
    after = measure()
    out = a.out
    out.mkdir(parents=True, exist_ok=True)
    save_learned_embeds(out / "learned_embeds.safetensors", sd.tokenizer, sd.text_encoder, ids, key)
    hist = mod.history
    write_json(out / "metrics.json", {
        "package": "compinv", "command": "regularize", "embeds_in": str(a.embeds), "placeholder": key, "num_vectors": n_vec,
        "anchors": anchors, "steps": a.steps, "sd": str(sd_dir), "images": len(images),
        "metric": "anchor_distance", "higher_is_better": False, "before": before["anchor_distance"], "after": after["anchor_distance"],
        "denoising_loss": {"before": before["denoising_loss"], "after": after["denoising_loss"], "prompt": prompt},
        "train_loss": {"first": hist[0]["loss"], "last": hist[-1]["loss"]} if hist else None,
        "anchor_term": {"first": hist[0].get("anchor"), "last": hist[-1].get("anchor")} if hist else None,
    })
    print(f"anchor distance {before['anchor_distance']:.4f} -> {after['anchor_distance']:.4f}, denoising loss "
          f"{before['denoising_loss']:.4f} -> {after['denoising_loss']:.4f}; wrote {out / 'learned_embeds.safetensors'}",
          file=sys.stderr)
    return 0
