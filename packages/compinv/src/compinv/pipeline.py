"""Loading models and concept images, running one inversion, and sampling compositions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from vislab.errors import InputError, VislabError


def sd_folder(model_cfg: dict[str, Any]) -> Path:
    if model_cfg["sd"] == "toy":
        from vislab.toy import toy_sd

        return toy_sd(model_cfg.get("toy_preset", "default"))
    from vislab.diffusion import check_sd_folder

    return check_sd_folder(model_cfg["sd"])


def judge_folder(model_cfg: dict[str, Any], sd_dir: Path) -> Path:
    """The judge CLIP folder; it must not be the SD's text CLIP."""
    spec = model_cfg["judge_clip"]
    if spec == "toy_seed1":
        from vislab.toy import toy_clip

        path = Path(toy_clip(model_cfg.get("toy_preset", "default"), seed=1))
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise InputError(path, "judge CLIP not found")
    if path.resolve() in (sd_dir.resolve(), (sd_dir / "text_encoder").resolve()):
        raise VislabError("model.judge_clip must differ from the Stable Diffusion text encoder's CLIP")
    return path


def load_judge(path: Path, device=None):
    from vislab.clip import load_clip

    return load_clip(path).freeze().to(device or "cpu")


def prepare_sd(sd_dir: Path, concept: dict[str, Any], inv: dict[str, Any], device=None):
    """Load SD, add the placeholder vectors (initialised from the initializer word); returns
    (sd, placeholder ids, anchor ids)."""
    from vislab.diffusion import add_placeholder_tokens, load_sd

    from compinv.semantic import single_token_id

    sd = load_sd(sd_dir, device=device).freeze()
    anchors = [single_token_id(sd.tokenizer, a, "anchor word") for a in concept["anchors"]]
    if not anchors:
        raise VislabError("concept.anchors needs at least one anchor word")
    ids = add_placeholder_tokens(sd.tokenizer, sd.text_encoder, concept["placeholder"], int(inv["num_vectors"]),
                                 init_word=concept["initializer"])
    return sd, ids, anchors


def invert(sd, placeholder_ids: list[int], anchor_ids: list[int], images: torch.Tensor, concept: dict[str, Any],
           inv: dict[str, Any], trainer, seed: int = 0, ckpt_path=None):
    """Fit :class:`CompositionalTI` on the concept images; returns the module (rows updated in place)."""
    from compinv.semantic import (
        CompositionalTI,
        ConceptDataModule,
        ConceptImages,
        placeholder_prompt_text,
        templates,
    )

    n = int(inv["num_vectors"])
    exp = inv["placeholder_expansion"]
    ph_text = placeholder_prompt_text(concept["placeholder"], n, exp)
    mode = inv["anchor_mode"]
    ref_text = " ".join([concept["anchors"][0]] * (n if exp == "all" else 1))
    ds = ConceptImages(images, ph_text, ref_text, concept.get("noun") or "", templates(inv["templates"]),
                       repeats=int(inv["repeats"]), flip_p=float(inv["flip_p"]), seed=seed)
    module = CompositionalTI(sd, placeholder_ids, anchor_ids if mode != "single" else anchor_ids[:1], inv)
    device = sd.device
    trainer.fit(module, datamodule=ConceptDataModule(ds, int(inv["batch_size"])), ckpt_path=ckpt_path)
    module.to(device)  # Lightning leaves the module on the CPU after fit; the whole SD goes back together
    module.token_rows.remove()  # rows synced into the matrix, hook removed
    sd.text_encoder.requires_grad_(False)
    return module


def prompt_for_sampling(prompt: str, placeholder: str, num_vectors: int, expand: bool) -> str:
    """Expand "<p>" to "<p> <p>_1 .." (diffusers' multi-vector convention) unless ``expand`` is off
    (official spatial path: only the first vector)."""
    from vislab.diffusion import expand_placeholder

    return expand_placeholder(prompt, placeholder, num_vectors) if expand and num_vectors > 1 else prompt


def parse_layout(spec: Any) -> list[list[list[float]]]:
    """``default``, a list of box groups, or a string "x0,y0,x1,y1;x0,y0,x1,y1" (one box per group)."""
    from compinv.spatial import DEFAULT_LAYOUT

    if spec in (None, "default"):
        return DEFAULT_LAYOUT
    if isinstance(spec, str):
        try:
            groups = [[[float(v) for v in part.split(",")]] for part in spec.split(";") if part.strip()]
        except ValueError:
            raise VislabError(f"cannot parse the layout {spec!r}: expected 'x0,y0,x1,y1;x0,y0,x1,y1'") from None
    else:
        groups = [[list(map(float, b)) for b in (g if isinstance(g[0], (list, tuple)) else [g])] for g in spec]
    for g in groups:
        for b in g:
            if len(b) != 4 or not (0 <= b[0] < b[2] <= 1 and 0 <= b[1] < b[3] <= 1):
                raise VislabError(f"bad box {b}: need 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
    return groups


@torch.no_grad()
def fixed_denoising_loss(sd, prompts: list[str], images: torch.Tensor, draws: int = 8, seed: int = 0) -> float:
    """Mean eps-MSE of the UNet on ``images`` (in [0, 1]) with ``prompts`` (one per image), over ``draws`` fixed
    (noise, timestep) pairs per image: the same numbers before and after training, so the values compare."""
    g = torch.Generator().manual_seed(seed)
    sched = sd.noise_scheduler()
    n_t = sched.config.num_train_timesteps
    lat = sd.encode_images((images * 2 - 1).to(sd.device))  # posterior mode: deterministic
    total = 0.0
    cond = sd.encode_prompt(list(prompts))
    for _ in range(draws):
        noise = torch.randn(lat.shape, generator=g).to(lat)
        t = torch.randint(0, n_t, (lat.shape[0],), generator=g).to(lat.device)
        noisy = sched.add_noise(lat, noise, t)
        pred = sd.unet(noisy, t, encoder_hidden_states=cond).sample
        target = sched.get_velocity(lat, noise, t) if sched.config.prediction_type == "v_prediction" else noise
        total += float(((pred.float() - target.float()) ** 2).mean())
    return total / draws
