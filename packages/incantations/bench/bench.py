"""incantations bench: one learning iteration of the incantation (:class:`incantations.learner.IncantationLearner`:
the loss terms on p (+) P*, the straight-through projection of the hard prompt, the selection score when the
projected tokens change, AdamW on the K slots) against one step of the diffusers textual-inversion example's loop
(``examples/textual_inversion``: one image, one prompt, learning one token row), same tiny SD, interleaved in one process.

    python packages/incantations/bench/bench.py [--reps 5] [--quick] [--device cuda] [--json out.json]

Rows: the embedded default's learning settings (K = 4, hard, L_ti weight 0.8: one grad-enabled CFG UNet call,
a VAE decode and a CLIP image encoding per iteration) and the paper's (K = 8, L_ti off: the text terms only).
Both learn prompt-embedding rows through the same frozen model; ours computes more terms per step. The cached
trajectory L_ti reads is sampled again every ``ti_refresh`` (25) iterations: that happens in the untimed first
step, so the rows time the other 24 of every 25 iterations. The profiler's top 5 ops of both sides follow the rows.
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from vislab.bench import autocast, cli, compare, profile_top, quick  # noqa: E402
from vislab.bench_peers import diffusers_textual_inversion  # noqa: E402

PROMPT = "a red car and a white sheep"


def _frozen(dev: torch.device):
    from incantations.model import Frozen
    from vislab.clip import tiny_clip
    from vislab.diffusion import tiny_sd

    sd = tiny_sd().to(dev).freeze()
    clip = tiny_clip(text_width=sd.text_encoder.config.hidden_size, heads=2)
    return Frozen(sd, clip.freeze().to(dev))


def learn_row(dev: torch.device, reps: int, setting: str) -> dict:
    from incantations.guidance import probe
    from incantations.learner import IncantationLearner, LearnConfig

    fr = _frozen(dev)
    steps, k_c, k_f = (4, 1, 2) if quick() else (10, 2, 6)  # the embedded default's sampling: 10 steps, k_c 2, k_f 6
    g = probe(fr, PROMPT, 0, steps, 3.0, k_c, k_f)
    weights = {"q": 0.5, "s": 1.0, "tt": 0.6, "ti": 0.8 if setting == "default" else 0.0, "sp": 0.5}
    cfg = LearnConfig(k=4 if setting == "default" else 8, mode="hard", iters=100, weights=weights, steps=steps, cfg=3.0,
                      k_c=k_c, k_f=k_f, select_seeds=(0,) if quick() else (0, 100, 101))

    class Counted(IncantationLearner):
        """Outside a Trainer: the iteration counter the L_ti schedule reads."""

        it = 0

        @property
        def global_step(self) -> int:
            return self.it

    def ours():
        learner = Counted(fr, g, cfg).to(dev)
        opt = learner.configure_optimizers()

        def step():
            with autocast(dev):
                loss = learner.training_step(0, learner.it)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            learner.it += 1
            return loss.detach()

        return step

    size = fr.sd.image_size
    pixels = (torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(dev)

    def peer():
        return diffusers_textual_inversion(fr.sd, "<sks>", "car", pixels, ["a photo of a <sks>"])

    what = ("embedded default: K 4, hard, with L_ti" if setting == "default" else "paper: K 8, hard, L_ti off")
    row = compare(f"one learning iteration ({what}; tiny SD {size} px, {steps} DDIM steps)",
                  "diffusers examples/textual_inversion (1 image, 1 token)", ours, peer, reps=reps, dev=dev)
    if setting == "default":
        row["profile_top5_ours"] = profile_top(ours(), 5, dev)
        row["profile_top5_peer"] = profile_top(peer(), 5, dev)
    return row


def rows(dev: torch.device, reps: int) -> list[dict]:
    warnings.filterwarnings("ignore", message=".*self.log.*")
    return [learn_row(dev, reps, "default"), learn_row(dev, reps, "paper")]


if __name__ == "__main__":
    cli("incantations", rows)
