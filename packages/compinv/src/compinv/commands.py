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
    p.add_argument("--embeds", required=True, nargs="+", help="learned_embeds.safetensors / .bin file(s) (diffusers or A1111 layout)")
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
    a = p.parse_args(argv)
    files = [Path(f) for f in a.embeds]
    for f in files:
        read_learned_embeds(f)  # fails fast on a bad file, before the model loads
    sd_dir = sd_folder({"sd": a.model, "toy_preset": a.toy_preset})
    runtime.setup(0)
    sd = load_sd(sd_dir, device=runtime.device()).freeze()
    names: list[str] = []
    for f in files:
        names += load_learned_embeds(f, sd.tokenizer, sd.text_encoder)
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
