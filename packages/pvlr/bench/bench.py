"""pvlr bench: our training step (:class:`pvlr.model.PVLR`: visual encoder, knowledge-aware and context-aware
prompting through the frozen CLIP text tower, interaction-and-fusion, dual-modal attention, asymmetric loss, AdamW
with the package's parameter groups) against a plain CLIP linear-probe step (frozen CLIP image features, a linear
head over the classes, binary cross-entropy, AdamW), same images and labels, interleaved in one process.

    python packages/pvlr/bench/bench.py [--reps 5] [--quick] [--device cuda] [--json out.json]

Work: the embedded default's model (tiny CNN visual encoder at 32 px, 14 labels, CAP with 4 context vectors,
batch 32) on a random-init tiny CLIP. The probe's CLIP image tower runs without gradient; ours back-propagates
through the CAP context (the text tower) and the visual encoder, so it does more per step. The profiler's
top 5 ops of both sides follow the row. On CUDA the steps run under bf16 autocast.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from vislab.bench import autocast, cli, compare, profile_top, quick  # noqa: E402


def step_row(dev: torch.device, reps: int) -> dict:
    from pvlr.losses import asymmetric_loss
    from pvlr.model import PVLR, PVLRConfig
    from pvlr.module import adamw
    from vislab.clip import tiny_clip

    batch, size, n_cls = (8 if quick() else 32), 32, 14
    names = [f"class {i}" for i in range(n_cls)]
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=g).to(dev)
    y = (torch.rand(batch, n_cls, generator=g) < 0.2).float().to(dev)
    clip = tiny_clip().to(dev).eval()
    clip.requires_grad_(False)
    cfg = PVLRConfig(visual="cnn", image_size=size, n_ctx=4, label_heads=2, label_ffn=256, ifm_heads=2)
    loss_kw = {"gamma_pos": 0.0, "gamma_neg": 4.0, "margin": 0.05}

    def ours():
        import copy

        model = PVLR(copy.deepcopy(clip), names, cfg).to(dev).train()
        groups = model.trainable_groups()
        opt = adamw([{"params": groups["decay"], "lr": 3e-3, "weight_decay": 1e-2},
                     {"params": groups["no_decay"], "lr": 3e-3, "weight_decay": 0.0}])  # PVLRModule's optimiser

        def step():
            with autocast(dev):
                loss = asymmetric_loss(model(x), y, **loss_kw)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.detach()

        return step

    def peer():
        head = torch.nn.Linear(clip.embed_dim, n_cls).to(dev)
        opt = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=1e-2)

        def step():
            with autocast(dev):
                with torch.no_grad():
                    feats = clip.encode_image(clip.preprocess(x), normalize=True)
                loss = F.binary_cross_entropy_with_logits(head(feats.float()).float(), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss.detach()

        return step

    row = compare(f"training step (embedded default: tiny CNN, {size} px, {n_cls} labels, CAP 4 ctx, batch {batch})",
                  "CLIP linear probe (frozen image tower + linear head, BCE)", ours, peer, reps=reps, dev=dev)
    row["profile_top5_ours"] = profile_top(ours(), 5, dev)
    row["profile_top5_peer"] = profile_top(peer(), 5, dev)
    return row


def rows(dev: torch.device, reps: int) -> list[dict]:
    return [step_row(dev, reps)]


if __name__ == "__main__":
    cli("pvlr", rows)
