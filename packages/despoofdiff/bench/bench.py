"""despoofdiff bench: our two training steps against a plain CLIP fine-tuning step (the standard FAS recipe: image
tower + linear head, cross-entropy, AdamW) on the same batch of face crops, interleaved in one process.

    python packages/despoofdiff/bench/bench.py [--reps 5] [--device cuda] [--json out.json] [--quick]

Rows (ours / peer, min over min):

- classifier step: what ``despoofdiff train`` runs for every batch after the first epoch (the spoof noise N read
  from the cache): the two-stream DepthNet on (x, standardised N), MSE + contrastive depth loss, Adam;
- diffusion-model step: one stage-1 step of a de-spoofing DM (eps_G): x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps,
  the UNet, the simple loss, AdamW.

The peer is a tiny random CLIP ViT (width 64, 2 layers, 4-px patches) fine-tuned on the same images; CLIP plays no
part in DespoofDiff, so this row answers "is our step cheaper than the standard CLIP recipe on the same data".
The embedded default's sizes (32 px, batch 32, width-16 DepthNet, tiny UNet) run on the CPU; on CUDA (bf16 autocast,
TF32, SDPA) the paper sizes are added (256 px, batch 16, width-64 3-block DepthNet and the 114 M ADM UNet against
ViT-B/16 CLIP shapes). ``--quick``: batch 4, no profile. Absolute timings and the bridge / cache figures:
``bench/absolute.py``.
"""

from __future__ import annotations

import torch
from vislab.bench import autocast, cli, compare, profile_top, profiling, quick
from vislab.bench_peers import clip_finetune_step

TINY_CLIP = dict(embed_dim=32, text_width=64, vision_width=64, text_layers=2, vision_layers=2, heads=2, patch_size=4)
PAPER_CLIP = dict(patch_size=16, embed_dim=512, text_width=512, vision_width=768, text_layers=12, vision_layers=12,
                  heads=8, context_length=77)


def _batch(dev: torch.device, batch: int, res: int, blocks: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    live = (torch.arange(batch) % 2)
    h = res // 2 ** blocks
    depth = torch.rand(batch, 1, h, h, generator=g) * live.view(-1, 1, 1, 1)
    return {"x": (torch.rand(batch, 3, res, res, generator=g) * 2 - 1).to(dev),
            "noise": (torch.randn(batch, 3, res, res, generator=g) * 0.1).to(dev), "depth": depth.to(dev),
            "live": live.to(dev)}


def _peer(clip, b: dict[str, torch.Tensor]):
    return lambda: clip_finetune_step(clip, (b["x"] + 1) / 2, 1 - b["live"])


def classifier_row(dev: torch.device, reps: int, cfg: dict, b: dict[str, torch.Tensor], clip, what: str) -> dict:
    from despoofdiff.losses import depth_loss
    from despoofdiff.model import NoiseStandardizer, TwoStreamDepthNet

    c = cfg["classifier"]

    def ours():
        net = TwoStreamDepthNet(width=int(c["width"]), blocks=int(c["blocks"]), streams=c["streams"],
                                image_input=c["image_input"], theta=float(c["theta"]), head_width=int(c["head_width"])).to(dev).train()
        std = NoiseStandardizer(3, c["noise_mode"]).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=float(c["lr"]), weight_decay=float(c["weight_decay"]))

        def step():
            with autocast(dev):
                d = net(b["x"], std(b["noise"]))
                loss = depth_loss(d.float(), b["depth"], float(c["cdl_weight"]))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.detach()

        return step

    peer = _peer(clip, b)
    row = compare(f"classifier training step (two-stream DepthNet, cached N), {what}", "plain CLIP fine-tuning "
                  f"(ViT {clip.vision_width}-wide, {clip.image_size} px, linear head, CE, AdamW)", ours, peer, reps=reps,
                  dev=dev, package="despoofdiff", target=1.0)
    if profiling():
        row["profile_top5_ours"] = profile_top(ours(), 5, dev)
        row["profile_top5_peer"] = profile_top(peer(), 5, dev)
    return row


def diffusion_row(dev: torch.device, reps: int, cfg: dict, b: dict[str, torch.Tensor], clip, what: str) -> dict:
    from despoofdiff.losses import diffusion_loss
    from despoofdiff.model import build_unet, make_scheduler, unet_config

    d = cfg["diffusion"]
    res = b["x"].shape[-1]

    def ours():
        unet = build_unet(unet_config(d["unet"], res)).to(dev).train()
        if d.get("gradient_checkpointing"):
            unet.enable_gradient_checkpointing()
        sched = make_scheduler(int(d["num_train_timesteps"]), d["beta_schedule"])
        ac = sched.alphas_cumprod.to(dev)
        opt = torch.optim.AdamW(unet.parameters(), lr=float(d["lr"]), weight_decay=float(d["weight_decay"]))
        x0 = b["x"]

        def step():
            noise = torch.randn_like(x0)
            t = torch.randint(0, len(ac), (x0.shape[0],), device=dev)
            a = ac[t].view(-1, 1, 1, 1)
            with autocast(dev):
                loss = diffusion_loss(unet(a.sqrt() * x0 + (1 - a).sqrt() * noise, t).sample.float(), noise)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.detach()

        return step

    peer = _peer(clip, b)
    row = compare(f"diffusion-model training step ({d['unet']} UNet), {what}", "plain CLIP fine-tuning "
                  f"(ViT {clip.vision_width}-wide, {clip.image_size} px, linear head, CE, AdamW)", ours, peer, reps=reps,
                  dev=dev, package="despoofdiff", target=1.0)
    if profiling():
        row["profile_top5_ours"] = profile_top(ours(), 5, dev)
        row["profile_top5_peer"] = profile_top(peer(), 5, dev)
    return row


def _size_rows(dev: torch.device, reps: int, preset: str, clip_over: dict, batch: int) -> list[dict]:
    from vislab.clip import tiny_clip
    from vislab.run import load_preset

    cfg = load_preset("despoofdiff", preset)
    res = int(cfg["data"]["resolution"])
    clip = tiny_clip(image_size=res, **clip_over)
    b = _batch(dev, batch, res, int(cfg["classifier"]["blocks"]))
    what = f"{preset} preset sizes ({res} px, batch {batch})"
    return [classifier_row(dev, reps, cfg, b, clip, what), diffusion_row(dev, reps, cfg, b, clip, what)]


def rows(dev: torch.device, reps: int) -> list[dict]:
    out = _size_rows(dev, reps, "default", TINY_CLIP, 4 if quick() else 32)
    if dev.type == "cuda" and not quick():
        out += _size_rows(dev, reps, "paper", PAPER_CLIP, 16)
    return out


if __name__ == "__main__":
    cli("despoofdiff", rows)
