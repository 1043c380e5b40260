"""compinv bench: our semantic-inversion step (textual inversion + anchor loss, :class:`compinv.semantic.CompositionalTI`)
against the diffusers textual-inversion example's loop (``examples/textual_inversion``), same tiny SD, same images,
interleaved in one process.

    python packages/compinv/bench/bench.py [--reps 5] [--quick] [--device cuda] [--json out.json]

Rows: the official release's setting (one anchor word, ``anchor_mode: single`` on the input embeddings, only the
first vector in the prompts) and the paper's several-anchor form (``multi``). Ours does more work than the peer
(the anchor term and the reference prompt's embeddings); the peer is plain textual inversion. The profiler's top 5
ops of both sides follow the rows. On CUDA the steps run under bf16 autocast.
"""

from __future__ import annotations

import copy
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from vislab.bench import autocast, cli, compare, profile_top, quick  # noqa: E402
from vislab.bench_peers import diffusers_textual_inversion  # noqa: E402

TEMPLATES = ["a photo of a {}", "a rendering of a {}", "a cropped photo of the {}", "the photo of a {}",
             "a photo of a clean {}", "a photo of a dirty {}", "a dark photo of the {}", "a photo of my {}"]
INIT, ANCHORS = "star", ["star", "pink"]


def _sizes() -> tuple[int, int]:
    return (2, 32) if quick() else (4, 32)  # batch, pixels


def _inputs(dev: torch.device, batch: int, size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(batch, 3, size, size, generator=g) * 2 - 1).to(dev)


def ti_row(dev: torch.device, reps: int, mode: str) -> dict:
    from compinv.semantic import CompositionalTI
    from vislab.diffusion import SDComponents, add_placeholder_tokens, tiny_sd

    batch, size = _sizes()
    sd = tiny_sd(image_size=size).to(dev)
    pixels = _inputs(dev, batch, size)
    prompts = [t.format("<c>") for t in TEMPLATES[:batch]]
    refs = [t.format(ANCHORS[0]) for t in TEMPLATES[:batch]]
    inv = {"placeholder_expansion": "official" if mode == "single" else "all", "anchor_mode": mode, "anchor_tau": 0.05,
           "alpha_rec": 1.0 if mode == "single" else 0.05, "alpha_anc": 0.1 if mode == "single" else 0.95,
           "lr": 5e-3, "weight_decay": 1e-2}

    def ours():
        mine = SDComponents(copy.deepcopy(sd.tokenizer), copy.deepcopy(sd.text_encoder), sd.vae, sd.unet, sd.scheduler)
        ids = add_placeholder_tokens(mine.tokenizer, mine.text_encoder, "<c>", 1, init_word=INIT)
        anchors = [mine.tokenizer.encode(w, add_special_tokens=False)[0] for w in ANCHORS[:1 if mode == "single" else 2]]
        m = CompositionalTI(mine, ids, anchors, inv).to(dev)
        opt = m.configure_optimizers()
        b = {"pixels": pixels, "prompt": prompts, "ref": refs}

        def step():
            with autocast(dev):
                loss = m.losses(b)["loss"]
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            m.on_train_batch_end(None, b, 0)
            return loss.detach()

        return step

    def peer():
        return diffusers_textual_inversion(sd, "<c>", INIT, pixels, prompts)

    what = "official: one anchor on the input embeddings" if mode == "single" else "paper: several anchors, sparse weights"
    row = compare(f"textual inversion + anchor loss ({what}; tiny SD, batch {batch}, {size} px)",
                  "diffusers examples/textual_inversion", ours, peer, reps=reps, dev=dev)
    if mode == "single":
        row["profile_top5_ours"] = profile_top(ours(), 5, dev)
        row["profile_top5_peer"] = profile_top(peer(), 5, dev)
    return row


def rows(dev: torch.device, reps: int) -> list[dict]:
    return [ti_row(dev, reps, "single"), ti_row(dev, reps, "multi")]


if __name__ == "__main__":
    cli("compinv", rows)
