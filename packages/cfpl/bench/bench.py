"""cfpl bench: our CFPL training step against a plain CLIP fine-tuning step (the standard FAS recipe: image tower +
linear head, cross-entropy, AdamW) on the same CLIP and the same batch, interleaved in one process.

    python packages/cfpl/bench/bench.py [--reps 5] [--device cuda] [--json out.json] [--quick]

Ours is the step ``cfpl train`` runs (``CFPLModule.training_step`` + Adam with the module's head / encoder groups
and the warm-up/cosine schedule): the image tower with its block outputs, both Q-Formers, the prompt text encoder
on the content and style prompts, prompt modulation, L_cls + L_ptm. The embedded default (tiny random CLIP,
64 px, batch 16, image encoder fine-tuned) runs on the CPU; on CUDA (bf16 autocast, TF32, SDPA) a second row
uses ViT-B/16 CLIP shapes (paper preset: frozen image encoder), batch 12. ``--quick``: batch 4, no profile.

CFPL does strictly more work than the peer (the peer is a subset of our forward), so a ratio above 1 is the
price of the prompt branches; the rows carry the torch-profiler top 5 ops of both steps.
"""

from __future__ import annotations

import copy

import torch
from vislab.bench import autocast, cli, compare, profile_top, profiling, quick
from vislab.bench_peers import clip_finetune_step

PAPER_CLIP = dict(image_size=224, patch_size=16, embed_dim=512, text_width=512, vision_width=768, text_layers=12,
                  vision_layers=12, heads=8, context_length=77)


def _ours(cfg: dict, clip, pixels: torch.Tensor, live: torch.Tensor):
    """Builder of our step: a fresh CFPL on a copy of ``clip``, its optimiser as ``CFPLModule`` configures it."""
    import math

    from cfpl.build import build_model
    from cfpl.losses import cls_loss, ptm_loss, total_loss

    def make():
        dev = pixels.device
        model = build_model(cfg, clip=copy.deepcopy(clip)).to(dev).train()
        o = cfg["optim"]
        groups = [{"params": model.head_parameters(), "lr": float(o.get("lr", 1e-4))}]
        if model.encoder_parameters():
            groups.append({"params": model.encoder_parameters(), "lr": float(o.get("encoder_lr", 1e-6))})
        opt = torch.optim.Adam(groups, weight_decay=float(o.get("weight_decay", 0.05)))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / 1000))))
        lam = float(cfg.get("lambda_ptm", 1.0))
        y = (1 - live).long()

        def step():
            with autocast(dev):
                out = model(pixels)
                l_cls = cls_loss(out["logits"].float(), y)
                l_ptm = None
                if model.cfg.ptm:
                    logits, target = model.ptm_logits(out["p_c"], y)
                    l_ptm = ptm_loss(logits.float(), target)
                loss = total_loss(l_cls, l_ptm, lam)
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            return loss.detach()

        return step

    return make


def step_row(dev: torch.device, reps: int, preset: str, clip_over: dict | None, batch: int, what: str) -> dict:
    from vislab.models import create_clip
    from vislab.run import load_preset

    cfg = load_preset("cfpl", preset)
    if clip_over is not None:
        cfg["clip"] = {"source": "tiny", "tiny": clip_over}
    clip = create_clip(cfg["clip"], pretrain=True)
    g = torch.Generator().manual_seed(0)
    pixels = torch.rand(batch, 3, clip.image_size, clip.image_size, generator=g).to(dev)
    live = (torch.arange(batch) % 2).to(dev)
    ours = _ours(cfg, clip, pixels, live)

    def peer():
        return clip_finetune_step(clip, pixels, 1 - live)

    ft = "image encoder fine-tuned" if cfg.get("finetune_image_encoder") else "image encoder frozen"
    row = compare(f"training step, {what} ({clip.image_size} px, batch {batch}, {ft})",
                  "plain CLIP fine-tuning (image tower + linear head, CE, AdamW)", ours, peer, reps=reps, dev=dev,
                  package="cfpl", target=1.0)
    if profiling():
        row["profile_top5_ours"] = profile_top(ours(), 5, dev)
        row["profile_top5_peer"] = profile_top(peer(), 5, dev)
    return row


def rows(dev: torch.device, reps: int) -> list[dict]:
    out = [step_row(dev, reps, "default", None, 4 if quick() else 16, "embedded default, tiny random CLIP")]
    if dev.type == "cuda" and not quick():
        out.append(step_row(dev, reps, "paper", PAPER_CLIP, 12, "paper preset, ViT-B/16 CLIP shapes (random weights)"))
    return out


if __name__ == "__main__":
    cli("cfpl", rows)
