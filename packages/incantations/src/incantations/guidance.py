"""Stage 1: the probe trajectory and the guidance it gives (quality direction, under-represented units)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from incantations.model import Frozen
from incantations.prompts import content_words, is_multi_object, mask_units, units
from incantations.sampling import initial_latents, sample


@dataclass
class Guidance:
    """What the probe of one prompt gives the learning stage (its tensors move to the device of what they meet
    at each use)."""

    device_follows_use = True  # vislab.devices: not a module's state

    prompt: str
    delta: torch.Tensor  # (1, D) quality direction Delta_I
    units: list[str]
    scores: list[float]  # s_u (clip) or a_u (xattn)
    under: list[str]  # U
    p_sem: str | None  # masked text, None when U is empty
    images: dict[str, torch.Tensor] = field(default_factory=dict)  # coarse, fine, final (1,3,H,W)


def encode_uncond(frozen: Frozen) -> torch.Tensor:
    emb, _ = frozen.embed("", None, 0)
    return frozen.H(emb)


def clip_grounding(frozen: Frozen, us: list[str], image: torch.Tensor, gamma: float, delta: float,
                   threshold: float | None = None) -> tuple[list[float], list[str]]:
    """s_u = cos(g(u), f(I_f)). With an absolute ``threshold`` (default rule): U = {u : s_u < threshold}, so a
    prompt whose objects are all drawn flags nothing and one whose objects are all missing flags them all.
    ``threshold=None`` is the relative rule r_u = (s_u - min s) / (max s - min s + 1e-6),
    U = {u : r_u < gamma and max s - s_u > delta}, which flags the lowest unit whenever the spread exceeds delta."""
    with torch.no_grad():
        s = (frozen.g_text(us) @ frozen.f(image).t()).squeeze(-1)
    if threshold is not None:
        return s.tolist(), [u for u, su in zip(us, s.tolist()) if su < threshold]
    r = (s - s.min()) / (s.max() - s.min() + 1e-6)
    under = [u for u, ru, su in zip(us, r.tolist(), s.tolist()) if ru < gamma and float(s.max()) - su > delta]
    return s.tolist(), under


def xattn_grounding(frozen: Frozen, prompt: str, us: list[str], maps: torch.Tensor) -> tuple[list[float], list[str]]:
    """a_u from the probe's averaged cross-attention maps (L, h, w): softmax over tokens without BOS,
    Gaussian-smoothed (3x3) map, max over the unit's content-word tokens; U = {u : a_u < 0.5 max a}."""
    tok = frozen.sd.tokenizer
    n = len(tok(prompt, add_special_tokens=False).input_ids)
    a = maps[1 : 1 + n].float()
    a = (a * 100).flatten(1).softmax(0).view_as(a)
    k = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
    a = F.conv2d(a[:, None], k[None, None].to(a), padding=1)[:, 0]
    words = prompt.lower().rstrip(".").split()
    scores = []
    for u in us:
        pos = []
        for w in content_words(u):
            # token positions of the word (one token per word assumed)
            if w in words:
                j = words.index(w)
                pos.append(len(tok(" ".join(words[:j]), add_special_tokens=False).input_ids) if j else 0)
        scores.append(max((float(a[p].max()) for p in pos if p < a.shape[0]), default=0.0))
    top = max(scores) if scores else 0.0
    return scores, [u for u, s in zip(us, scores) if s < 0.5 * top]


def probe(frozen: Frozen, prompt: str, seed: int, steps: int, cfg: float, k_c: int, k_f: int,
          source: str = "clip", gamma: float = 0.25, delta: float = 0.02, mask: str = "keep_missing",
          threshold: float | None = None) -> Guidance:
    """Generate with ``prompt`` from z_T(seed); keep the decoded clean predictions at steps k_c and k_f;
    Delta_I = norm(f(I_f) - f(I_c)); ground the units in I_f (``source`` clip | xattn) and mask p.
    A single-object prompt never has an under-represented unit (there is no other object to drop it for)."""
    from vislab.diffusion import AttentionStore, capture_cross_attention

    sd = frozen.sd
    emb, _ = frozen.embed(prompt, None, 0)
    with torch.no_grad():
        cond, uncond = frozen.H(emb), encode_uncond(frozen)
    z = initial_latents(sd, seed)
    store = AttentionStore(accumulate=True)
    if source == "xattn":
        with capture_cross_attention(sd.unet, store):
            out = sample(sd, cond, uncond, z, steps, cfg, record=(k_c, k_f))
    else:
        out = sample(sd, cond, uncond, z, steps, cfg, record=(k_c, k_f))
    i_c, i_f = out["x0"][k_c], out["x0"][k_f]
    with torch.no_grad():
        d = F.normalize(frozen.f(i_f) - frozen.f(i_c), dim=-1)
    us = units(prompt)
    if source == "xattn":
        res = int(round(max(store.resolutions()) ** 0.5))
        maps = store.aggregate(res, maps=store.average())  # (2B, L, h, w): second half = conditional
        scores, under = xattn_grounding(frozen, prompt, us, maps[maps.shape[0] // 2 :].mean(0))
    elif source == "clip":
        scores, under = clip_grounding(frozen, us, i_f, gamma, delta, threshold)
    else:
        raise ValueError(f"semantic_source must be clip or xattn, got {source!r}")
    if not is_multi_object(prompt):
        under = []
    if mask == "keep_missing":
        keep = under
    elif mask == "keep_present":
        keep = [u for u in us if u not in under]
    else:
        raise ValueError(f"semantic_mask must be keep_missing or keep_present, got {mask!r}")
    p_sem = mask_units(prompt, keep, us) if under else None
    return Guidance(prompt, d, us, scores, under, p_sem, {"coarse": i_c, "fine": i_f, "final": out["image"]})
