"""Spatial inversion: layout-guided sampling on the concept tokens' cross-attention maps.

For each object i with boxes B_i and token positions P_i, on every selected cross-attention map A
(heads, H*W, L):

    a_p   = sum_hw A[:, hw, p] * M_i / sum_hw A[:, hw, p]            (per head)
    l_i   = 1/|P_i| sum_{p in P_i} mean_heads (1 - a_p)^2
    L     = 30 * sum_A sum_i l_i / (N_obj * N_maps)

During the first ``guide_steps`` denoising steps, while L/30 > ``threshold`` and fewer than
``max_iters`` updates were made at this step, the latent moves z <- z - grad_z L * sigma_k^2
(LMS sampler; L starts large once per image and is never reset, as in the official code).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from vislab.errors import VislabError

DEFAULT_LAYOUT = [[[0.1, 0.2, 0.5, 0.8]], [[0.6, 0.2, 0.95, 0.8]]]
"""Default two-slot layout: the inverted concept left, the other object right (official reproduction runs)."""


def box_mask(boxes: list[list[float]], h: int, w: int, device=None) -> torch.Tensor:
    """M (h, w): ones in rows int(y0*h):int(y1*h), cols int(x0*w):int(x1*w), union over ``boxes``."""
    m = torch.zeros(h, w, device=device)
    for x0, y0, x1, y1 in boxes:
        m[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)] = 1.0
    return m


def select_heads(A: torch.Tensor, heads: str) -> torch.Tensor:
    """A (heads, HW, L) -> the heads used by the loss: ``all`` or ``official`` (the second half of the
    stacked axis, which for batch 1 is the last half of the heads: the official code's quirk)."""
    if heads == "all":
        return A
    if heads == "official":
        return A[A.shape[0] // 2:]
    raise VislabError(f"heads must be 'all' or 'official', got {heads!r}")


def layout_loss(maps: list[torch.Tensor], boxes: list[list[list[float]]], token_groups: list[list[int]],
                heads: str = "official", scale: float = 30.0) -> torch.Tensor:
    """The layout loss L above. ``maps``: list of (heads, H*W, L) square maps; ``boxes[i]``: boxes of
    object i (normalised [x0, y0, x1, y1]); ``token_groups[i]``: its token positions."""
    if len(boxes) != len(token_groups):
        raise VislabError(f"{len(boxes)} box groups for {len(token_groups)} token groups")
    if not maps:
        raise VislabError("no cross-attention maps to guide")
    total = maps[0].new_zeros(())
    for A in maps:
        A = select_heads(A, heads)
        side = int(round(math.sqrt(A.shape[1])))
        for bx, toks in zip(boxes, token_groups):
            M = box_mask(bx, side, side, A.device).view(-1)
            a = A[:, :, toks]  # (heads, HW, P)
            a_p = (a * M[None, :, None]).sum(1) / a.sum(1)  # (heads, P)
            total = total + ((1 - a_p) ** 2).mean(0).mean()
    return scale * total / (len(token_groups) * len(maps))


def guided_layers(unet) -> list[str]:
    """The cross-attention layers the loss uses: the mid block's and those of the first up block with
    cross-attention (SD 1.x: 8x8 mid + 16x16 up_blocks.1)."""
    from vislab.diffusion import cross_attention_layers

    names = cross_attention_layers(unet)
    ups = sorted({int(n.split(".")[1]) for n in names if n.startswith("up_blocks.")})
    picked = [n for n in names if n.startswith("mid_block.")]
    if ups:
        picked += [n for n in names if n.startswith(f"up_blocks.{ups[0]}.")]
    if not picked:
        raise VislabError("the UNet has no mid-block or up-block cross-attention to guide")
    return picked


def token_positions(tokenizer, prompt: str, phrase: str) -> list[int]:
    """Positions (BOS = 0) of the tokens of ``phrase``'s words in the tokenised ``prompt`` (first occurrence
    of each word's token run). Raises when a word is missing. Multi-token words are handled (the official
    word-index rule assumes one token per word)."""
    ids = tokenizer(prompt, truncation=True, max_length=tokenizer.model_max_length).input_ids
    out: list[int] = []
    for word in phrase.replace(",", " ").split():
        w = tokenizer.encode(word, add_special_tokens=False)
        for s in range(1, len(ids) - len(w) + 1):
            if ids[s:s + len(w)] == w:
                out += list(range(s, s + len(w)))
                break
        else:
            raise VislabError(f"the phrase word {word!r} does not occur in the prompt {prompt!r}")
    return out


@dataclass
class SampleResult:
    image: torch.Tensor  # (1, 3, H, W) in [0, 1]
    attention: torch.Tensor  # (n_groups, h, w) mean conditional cross-attention of each token group
    losses: list[float] = field(default_factory=list)  # layout loss after every latent update
    updates: int = 0


def lms_scheduler(sd):
    from diffusers import LMSDiscreteScheduler

    cfg = dict(sd.scheduler.config)
    return LMSDiscreteScheduler.from_config(cfg)


def sample(sd, prompt: str, *, seed: int = 0, steps: int = 50, cfg_scale: float = 7.5,
           boxes: list[list[list[float]]] | None = None, token_groups: list[list[int]] | None = None,
           guide: dict[str, Any] | None = None, vis_groups: list[list[int]] | None = None) -> SampleResult:
    """One image with the LMS sampler; latent guidance when ``guide`` and ``boxes`` are given.

    ``guide``: {steps (10), max_iters (5), threshold (0.2), scale (30), heads, step_scale (1.0)}.
    ``vis_groups``: token groups whose mean cross-attention (all layers at the largest captured
    resolution, conditional half, every step) is returned for pictures (default: ``token_groups``).
    """
    from vislab.diffusion import AttentionStore, capture_cross_attention

    dev = sd.device
    sched = lms_scheduler(sd)
    sched.set_timesteps(steps, device=dev)
    g = torch.Generator().manual_seed(int(seed))
    c = sd.unet.config.in_channels
    z = torch.randn(1, c, sd.latent_size, sd.latent_size, generator=g).to(dev) * sched.init_noise_sigma
    with torch.no_grad():
        cond = sd.encode_prompt([prompt])
        uncond = sd.encode_prompt([""])
    guided = guide is not None and boxes is not None and token_groups is not None
    layers = guided_layers(sd.unet) if guided else []
    vis = vis_groups if vis_groups is not None else (token_groups or [])
    vis_store = AttentionStore(accumulate=True)
    losses: list[float] = []
    updates = 0
    loss_value = 1e4  # "large once per image, never reset"
    gs = {"steps": 10, "max_iters": 5, "threshold": 0.2, "scale": 30.0, "heads": "official", "step_scale": 1.0, **(guide or {})}
    for k, t in enumerate(sched.timesteps):
        if guided and k < int(gs["steps"]):
            it = 0
            while loss_value / float(gs["scale"]) > float(gs["threshold"]) and it < int(gs["max_iters"]):
                store = AttentionStore(keep_grad=True, layers=layers)
                zg = z.detach().requires_grad_(True)
                with torch.enable_grad(), capture_cross_attention(sd.unet, store):
                    sd.unet(sched.scale_model_input(zg, t), t, encoder_hidden_states=cond)
                    maps = [store.maps[n][0] for n in layers if n in store.maps]
                    loss = layout_loss(maps, boxes, token_groups, heads=gs["heads"], scale=float(gs["scale"]))
                    grad = torch.autograd.grad(loss, zg)[0]
                sigma = float(sched.sigmas[k])
                z = (zg - grad * sigma ** 2 * float(gs["step_scale"])).detach()
                loss_value = float(loss.detach())
                losses.append(loss_value)
                updates += 1
                it += 1
        with torch.no_grad(), capture_cross_attention(sd.unet, vis_store):
            zin = sched.scale_model_input(torch.cat([z, z]), t)
            eps_u, eps_c = sd.unet(zin, t, encoder_hidden_states=torch.cat([uncond, cond])).sample.chunk(2)
            eps = eps_u + cfg_scale * (eps_c - eps_u)
            z = sched.step(eps, t, z).prev_sample
    with torch.no_grad():
        image = sd.decode_latents(z)
        att = _group_attention(vis_store, vis)
    return SampleResult(image=image.cpu(), attention=att, losses=losses, updates=updates)


def _group_attention(store, groups: list[list[int]]) -> torch.Tensor:
    if not groups or not store.summed:
        return torch.zeros(0, 1, 1)
    avg = store.average()
    res = max(m.shape[2] for m in avg.values())
    side = int(round(math.sqrt(res)))
    m = store.aggregate(side, maps=avg)[1]  # conditional half: (L, h, w)
    return torch.stack([m[g].mean(0) for g in groups]).cpu()
