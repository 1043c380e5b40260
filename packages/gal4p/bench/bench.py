"""gal4p bench: our DreamBooth step (prior preservation) and textual-inversion step against the diffusers examples'
loops (``examples/dreambooth``, ``examples/textual_inversion``), same tiny SD, same batch, interleaved in one process.

    python packages/gal4p/bench/bench.py [--reps 5] [--json out.json]

Also prints the torch-profiler top 5 ops of both DreamBooth steps. On CUDA the same rows run in bf16 autocast.
SD 1.x-size absolute numbers: ``bench/absolute.py``.
"""

from __future__ import annotations

import copy

import torch
from vislab.bench import autocast, cli, compare, profile_top
from vislab.bench_peers import diffusers_dreambooth, diffusers_textual_inversion
from vislab.diffusion import SDComponents, tiny_sd

BATCH = 4
SIZE = 32


def _inputs(dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return ((torch.rand(BATCH, 3, SIZE, SIZE, generator=g) * 2 - 1).to(dev),
            (torch.rand(BATCH, 3, SIZE, SIZE, generator=g) * 2 - 1).to(dev))


def textual_inversion_row(dev: torch.device, reps: int) -> dict:
    from gal4p.learner import TextualInversionLearner

    sd = tiny_sd().to(dev)
    pixels, _ = _inputs(dev)
    prompts = ["a photo of a <sks>", "a rendering of a <sks>", "a cropped photo of the <sks>", "the photo of a <sks>"][:BATCH]

    def ours():
        mine = SDComponents(copy.deepcopy(sd.tokenizer), copy.deepcopy(sd.text_encoder), sd.vae, sd.unet, sd.scheduler)
        learner = TextualInversionLearner(mine, placeholder="<sks>", init_word="star", lr=5e-3).to(dev)
        opt = learner.configure_optimizers()
        batch = {"pixel_values": pixels, "prompt": prompts, "weight": torch.ones(BATCH, device=dev)}

        def step():
            with autocast(dev):
                loss = learner.loss(batch)[0]
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            learner.on_train_batch_end(None, batch, 0)
            return loss.detach()

        return step

    return compare(f"textual-inversion step (tiny SD, batch {BATCH}, {SIZE} px)", "diffusers examples/textual_inversion",
                   ours, lambda: diffusers_textual_inversion(sd, "<sks>", "star", pixels, prompts), reps=reps, dev=dev)


def _dreambooth_sides(dev: torch.device):
    from gal4p.learner import DreamBoothLearner

    sd = tiny_sd().to(dev)
    pixels, class_pixels = _inputs(dev)

    def ours():
        mine = SDComponents(sd.tokenizer, sd.text_encoder, sd.vae, copy.deepcopy(sd.unet), sd.scheduler)
        learner = DreamBoothLearner(mine, lr=5e-6).to(dev)
        opt = learner.configure_optimizers()
        params = learner.trainable_parameters()
        batch = {"pixel_values": pixels, "prompt": ["a sks star"] * BATCH, "weight": torch.ones(BATCH, device=dev),
                 "class_pixel_values": class_pixels, "class_prompt": ["a star"] * BATCH}

        def step():
            with autocast(dev):
                loss = learner.loss(batch)[0]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.detach()

        return step

    def peer():
        return diffusers_dreambooth(sd, copy.deepcopy(sd.unet), pixels, class_pixels, "a sks star", "a star")

    return ours, peer


def dreambooth_row(dev: torch.device, reps: int, profile: bool = True) -> dict:
    ours, peer = _dreambooth_sides(dev)
    row = compare(f"DreamBooth step, prior preservation (tiny SD, {BATCH}+{BATCH} images, {SIZE} px)",
                  "diffusers examples/dreambooth", ours, peer, reps=reps, dev=dev)
    if profile:
        row["profile_top5_ours"] = profile_top(ours(), 5, dev)
        row["profile_top5_peer"] = profile_top(peer(), 5, dev)
    return row


def rows(dev: torch.device, reps: int) -> list[dict]:
    return [textual_inversion_row(dev, reps), dreambooth_row(dev, reps)]


if __name__ == "__main__":
    cli("gal4p", rows)
