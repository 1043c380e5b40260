"""Loading the frozen models and running probe -> learn -> generate for one prompt."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from incantations.guidance import Guidance, encode_uncond, probe
from incantations.learner import IncantationLearner, LearnConfig, learn
from incantations.model import Frozen
from incantations.sampling import initial_latents, sample


def toy_vocabulary() -> list[str]:
    """The words of the toy world's captions (the hard prompt's vocabulary in the embedded default)."""
    from vislab.toy.world import COLORS, POSITION_PHRASES, SHAPES, SIZES, TEXTURES

    words = {*SHAPES, *COLORS, *TEXTURES, *SIZES, "a", "and", "-"}
    for phrase in POSITION_PHRASES.values():
        words.update(phrase.split())
    return sorted(words)


def load_models(model_cfg: dict[str, Any], device: torch.device | None = None) -> tuple[Frozen, Any]:
    """(Frozen(sd, guidance CLIP), judge CLIP) from the ``model`` config section."""
    from vislab.clip import load_clip
    from vislab.diffusion import load_sd
    from vislab.errors import VislabError

    preset = model_cfg.get("toy_preset", "default")
    if model_cfg["sd"] == "toy":
        from vislab.toy import toy_clip, toy_sd

        sd_dir = toy_sd(preset)
        guidance_dir = toy_clip(preset) if model_cfg["guidance_clip"] in ("toy", "same") else model_cfg["guidance_clip"]
    else:
        sd_dir = model_cfg["sd"]
        if model_cfg["guidance_clip"] in ("toy", "same"):
            raise VislabError("model.guidance_clip must be a local CLIP folder when model.sd is a real SD folder")
        guidance_dir = model_cfg["guidance_clip"]
    judge_spec = model_cfg["judge_clip"]
    if judge_spec == "toy_seed1":
        from vislab.toy import toy_clip

        judge_dir = toy_clip(preset, seed=1)
    else:
        judge_dir = judge_spec
    if Path(str(judge_dir)).resolve() == Path(str(guidance_dir)).resolve():
        raise VislabError("model.judge_clip must differ from the guidance CLIP (evaluating with the guidance CLIP rewards hacking it)")
    sd = load_sd(sd_dir, device=device).freeze()
    clip = load_clip(guidance_dir).freeze().to(sd.device)
    judge = load_clip(judge_dir).freeze().to(sd.device)
    width = sd.text_encoder.get_input_embeddings().weight.shape[1]
    if clip.text_width != width:
        raise VislabError(f"{guidance_dir}: the guidance CLIP's text width {clip.text_width} differs from the SD text encoder's "
                          f"{width}; use the CLIP whose text tower is the SD text encoder (ViT-L/14 for SD v1)")
    return Frozen(sd, clip), judge


def learn_config(cfg: dict[str, Any], **overrides: Any) -> LearnConfig:
    l, s = cfg["learn"], cfg["sampling"]
    kw = dict(k=l["k"], mode=l["mode"], iters=l["iters"], lr=l["lr"], weight_decay=l["weight_decay"],
              weights=dict(l["weights"]), vocab_words=toy_vocabulary() if l.get("vocab", "all") == "toy" else None,
              ti_refresh=l["ti_refresh"], steps=s["steps"], cfg=s["cfg"], k_c=s["k_c"], k_f=s["k_f"], seed=int(cfg["seed"]),
              select_seeds=tuple(int(x) for x in l.get("select_seeds", [cfg["seed"]])),
              select_step=None if l.get("select_step") is None else int(l["select_step"]),
              select_every=int(l.get("select_every", 1)))
    kw.update(overrides)
    return LearnConfig(**kw)


@dataclass
class Result:
    guidance: Guidance
    learner: IncantationLearner
    before: dict[int, torch.Tensor]  # seed -> image (1,3,H,W) from p
    after: dict[int, torch.Tensor]  # seed -> image from p (+) P*


def run_prompt(frozen: Frozen, prompt: str, cfg: dict[str, Any], seeds: list[int], trainer_kwargs: dict | None = None,
               **learn_overrides: Any) -> Result:
    """Probe on ``cfg['seed']``, learn P*, and generate with p and p (+) P* from the same z_T for every seed."""
    s, g = cfg["sampling"], cfg["guidance"]
    guide = probe(frozen, prompt, int(cfg["seed"]), s["steps"], s["cfg"], s["k_c"], s["k_f"], g["semantic_source"],
                  g["gamma"], g["delta"], g["semantic_mask"], g.get("threshold"))
    learner = learn(frozen, guide, learn_config(cfg, **learn_overrides), trainer_kwargs)
    with torch.no_grad():
        emb, _ = frozen.embed(prompt, None, 0)
        cond, uncond, learned = frozen.H(emb), encode_uncond(frozen), learner.prompt_embeds()
    before, after = {}, {}
    for seed in seeds:
        z = initial_latents(frozen.sd, seed)
        before[seed] = sample(frozen.sd, cond, uncond, z, s["steps"], s["cfg"])["image"]
        after[seed] = sample(frozen.sd, learned, uncond, z, s["steps"], s["cfg"])["image"]
    return Result(guide, learner, before, after)


@torch.no_grad()
def attention_maps(frozen: Frozen, cond: torch.Tensor, seed: int, steps: int, cfg: float, token_positions: list[int]) -> torch.Tensor:
    """Average cross-attention maps (T, h, w) of the given token positions over a generation."""
    from vislab.diffusion import AttentionStore, capture_cross_attention

    store = AttentionStore(accumulate=True)
    with capture_cross_attention(frozen.sd.unet, store):
        sample(frozen.sd, cond, encode_uncond(frozen), initial_latents(frozen.sd, seed), steps, cfg)
    res = int(round(max(store.resolutions()) ** 0.5))
    maps = store.aggregate(res, maps=store.average())
    cond_maps = maps[maps.shape[0] // 2 :].mean(0)
    return cond_maps[token_positions]
