"""Semantic inversion as a plug-in of DreamBooth (as in the official compositional DreamBooth script).

DreamBooth fine-tunes the whole UNet (text encoder and VAE frozen) with prior preservation on class
images; the concept's identifier is one new "modifier" token whose embedding row trains too (official:
initialised from the first BPE token of "ktn"; only the first modifier id gets gradient). The anchor
regulariser acts on that token, on the instance half of the (instance || class) batch only:

    L = alpha_rec * L_rec(instance) + lambda_prior * L_prior(class) + alpha_anc * L_anchor

with the official weights alpha_rec 0.6, alpha_anc 0.4, lambda_prior 1.0 (not multiplied by alpha_rec).
:class:`CompositionalDreamBooth` subclasses vislab's :class:`vislab.diffusion.DreamBoothLearner` and reuses
its noising/prediction pass (:meth:`~vislab.diffusion.PersonalizationLearner.denoise`).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from vislab.diffusion.learners import DreamBoothLearner, weighted_mse
from vislab.errors import VislabError

from compinv.images import load_concept_images
from compinv.semantic import anchor_loss, input_embeddings, multi_anchor_loss

MODEL_FILE = "compinv_model.json"


class CompositionalDreamBooth(DreamBoothLearner):
    """DreamBooth (UNet + the identifier's embedding row) with the anchor regulariser.

    ``anchor_mode``: ``multi`` (sparse weights over several anchors; equals ``single`` with one anchor),
    ``single`` (official L_anchor on E(ids) vs E(ref)), ``none`` (plain DreamBooth: alpha_rec 1, alpha_anc 0).
    Batches: ``pixel_values``, ``prompt``, ``ref`` (the prompt with the identifier replaced by the anchor word),
    ``weight`` and, with prior preservation, ``class_pixel_values`` / ``class_prompt``.
    """

    def __init__(self, sd, placeholder_ids: list[int], anchor_ids: list[int], anchor_mode: str = "single",
                 alpha_rec: float = 0.6, alpha_anc: float = 0.4, anchor_tau: float = 0.05, max_grad_norm: float | None = 1.0,
                 **kw: Any):
        kw.setdefault("model_file", MODEL_FILE)
        kw.setdefault("checkpoint_key", "compinv")
        super().__init__(sd, **kw)
        if anchor_mode not in ("multi", "single", "none"):
            raise VislabError(f"anchor_mode must be multi | single | none, got {anchor_mode!r}")
        from vislab.diffusion import TokenRowsGuard

        self.placeholder_ids, self.anchor_ids = list(placeholder_ids), list(anchor_ids)
        self.anchor_mode, self.anchor_tau = anchor_mode, float(anchor_tau)
        self.alpha_rec, self.alpha_anc = (1.0, 0.0) if anchor_mode == "none" else (float(alpha_rec), float(alpha_anc))
        self.max_grad_norm = max_grad_norm
        # official: the embedding gradient is zeroed except for the first modifier id
        self.guard = TokenRowsGuard(self.text_encoder, self.placeholder_ids[:1])
        self.history: list[dict[str, float]] = []

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(ids)[0]  # with gradient: the identifier row trains

    def anchor_term(self, ids: torch.Tensor, ref_prompts: list[str]) -> torch.Tensor:
        if self.anchor_mode == "single":
            ref = self.tokenize(ref_prompts)
            return anchor_loss(input_embeddings(self.text_encoder, ids), input_embeddings(self.text_encoder, ref))
        w = self.text_encoder.get_input_embeddings().weight
        anchors = w[torch.as_tensor(self.anchor_ids, device=w.device)].detach()
        return multi_anchor_loss(w[torch.as_tensor(self.placeholder_ids[:1], device=w.device)], anchors, ids.shape[1], tau=self.anchor_tau)

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        d = self.denoise(batch)
        rec = weighted_mse(d["pred"], d["target"], d["weights"])
        loss = self.alpha_rec * rec
        parts = {"rec": rec.detach()}
        if d["prior_pred"] is not None:
            prior = weighted_mse(d["prior_pred"], d["prior_target"], d["weights"])
            loss = loss + self.prior_loss_weight * prior
            parts["prior"] = prior.detach()
        if self.alpha_anc > 0:
            anc = self.anchor_term(d["ids"], list(batch["ref"]))
            loss = loss + self.alpha_anc * anc
            parts["anchor"] = anc.detach()
        self.history.append({"loss": float(loss.detach()), **{k: float(v) for k, v in parts.items()}})  # one call per training step
        return loss, parts

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        val = gradient_clip_val if gradient_clip_val is not None else self.max_grad_norm
        if val:
            self.clip_gradients(optimizer, gradient_clip_val=float(val), gradient_clip_algorithm=gradient_clip_algorithm or "norm")

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.guard.restore()

    def _save_weights(self, folder: Path) -> None:
        from vislab.diffusion import save_learned_embeds

        super()._save_weights(folder)  # unet/
        save_learned_embeds(folder / "learned_embeds.safetensors", self.tokenizer, self.text_encoder, self.placeholder_ids)


class DreamBoothPairs(Dataset):
    """``repeats`` passes over the concept images, each paired with a class image (prior preservation).

    Items: ``pixel_values`` in [-1, 1] (hflip), ``prompt`` = template("<id> noun"), ``ref`` = template("anchor noun"),
    ``weight`` 1, and ``class_pixel_values`` / ``class_prompt`` = template("noun") when class images are given.
    """

    def __init__(self, images: torch.Tensor, class_images: torch.Tensor | None, identifier: str, anchor: str, noun: str,
                 template_set: list[str], repeats: int = 100, flip_p: float = 0.5, seed: int = 0):
        if len(images) == 0:
            raise VislabError("the concept has no images")
        if class_images is not None and len(class_images) == 0:
            raise VislabError("prior preservation needs at least one class image")
        self.images, self.class_images = images, class_images
        self.identifier, self.anchor, self.noun = identifier, anchor, noun
        self.templates, self.repeats, self.flip_p, self.seed = template_set, repeats, flip_p, seed

    def __len__(self) -> int:
        return len(self.images) * self.repeats

    def __getitem__(self, i: int) -> dict[str, Any]:
        rng = random.Random(self.seed * 1_000_003 + i)
        flip = lambda x: x.flip(-1) if rng.random() < self.flip_p else x  # noqa: E731
        t = self.templates[rng.randrange(len(self.templates))]
        word = lambda w: f"{w} {self.noun}".strip()  # noqa: E731
        item = {"pixel_values": flip(self.images[i % len(self.images)] * 2 - 1), "prompt": t.format(word(self.identifier)),
                "ref": t.format(word(self.anchor)), "weight": torch.tensor(1.0)}
        if self.class_images is not None:
            item["class_pixel_values"] = flip(self.class_images[rng.randrange(len(self.class_images))] * 2 - 1)
            item["class_prompt"] = t.format(self.noun or self.anchor)
        return item


def toy_class_images(noun: str, n: int, size: int, seed: int = 0, exclude: str | None = None) -> torch.Tensor:
    """``n`` single-object toy images of the class ``noun`` in other colours (the toy stand-in of the official
    real LAION class images); ``exclude`` ("pink star") is never among them."""
    from vislab.toy.world import ToyDataset

    ds = ToyDataset(400, resolution=size, seed=seed + 101, split="pretrain", max_objects=1)
    out = []
    for i in range(len(ds)):
        o = ds.spec(i)["objects"][0]
        if o["shape"] == noun and f"{o['color']} {o['shape']}" != exclude:
            out.append(ds[i]["image"])
            if len(out) == n:
                break
    if not out:
        raise VislabError(f"the toy world has no class images of {noun!r}")
    return torch.stack(out)


def class_images_for(db: dict[str, Any], concept: dict[str, Any], size: int) -> torch.Tensor | None:
    """Class images for prior preservation: ``none``, ``toy`` (toy images of the noun) or a folder."""
    src = db["class_images"]
    if src in (None, "none") or not db.get("prior_preservation", True):
        return None
    if src == "toy":
        return toy_class_images(concept.get("noun") or concept["anchors"][0], int(db["n_class_images"]), size,
                                seed=int(concept.get("toy_seed", 0)), exclude=concept.get("toy_concept"))
    return load_concept_images({"images": src}, size)


def prepare_modifier(sd, placeholder: str, initializer: str) -> list[int]:
    """Add the identifier (one modifier token) initialised from the first BPE token of ``initializer``
    (official: the script takes ``encode("ktn")[0]``)."""
    from vislab.diffusion import add_placeholder_tokens

    init = sd.tokenizer.encode(initializer, add_special_tokens=False)
    if not init:
        raise VislabError(f"the initializer {initializer!r} has no tokens")
    ids = add_placeholder_tokens(sd.tokenizer, sd.text_encoder, placeholder, 1)
    with torch.no_grad():
        w = sd.text_encoder.get_input_embeddings().weight
        w[ids] = w[init[0]].clone().unsqueeze(0)
    return ids


def finetune(sd, placeholder_ids: list[int], anchor_ids: list[int], images: torch.Tensor, class_images: torch.Tensor | None,
             concept: dict[str, Any], inv: dict[str, Any], db: dict[str, Any], trainer, seed: int = 0, ckpt_path=None,
             anchor_mode: str | None = None) -> CompositionalDreamBooth:
    """Fit :class:`CompositionalDreamBooth` on the concept (and class) images; ``sd``'s UNet and identifier row
    are updated in place. ``anchor_mode`` overrides ``inv['anchor_mode']`` (``none`` = plain DreamBooth)."""
    from compinv.semantic import templates

    mode = anchor_mode or inv["anchor_mode"]
    ds = DreamBoothPairs(images, class_images, concept["placeholder"], concept["anchors"][0], concept.get("noun") or "",
                         templates(inv["templates"]), repeats=int(inv["repeats"]), flip_p=float(inv["flip_p"]), seed=seed)
    learner = CompositionalDreamBooth(
        sd, placeholder_ids, anchor_ids if mode != "single" else anchor_ids[:1], anchor_mode=mode,
        alpha_rec=float(db["alpha_rec"]), alpha_anc=float(db["alpha_anc"]), anchor_tau=float(inv["anchor_tau"]),
        max_grad_norm=db.get("max_grad_norm"), lr=float(db["lr"]), weight_decay=float(inv["weight_decay"]),
        prior_loss_weight=float(db["prior_loss_weight"]), latents=str(db.get("latents", "mode")))
    loader = DataLoader(ds, batch_size=int(db["batch_size"]), shuffle=True, generator=torch.Generator().manual_seed(seed))
    device = sd.device
    trainer.fit(learner, train_dataloaders=loader, ckpt_path=ckpt_path)
    learner.to(device)  # Lightning leaves the learner (and the SD it holds) on the CPU after fit
    learner.guard.restore()
    learner.guard.remove()
    sd.freeze()
    return learner


def prepare_dreambooth(sd_dir: Path, concept: dict[str, Any], db: dict[str, Any], device=None):
    """Load SD for DreamBooth: one identifier (modifier) token initialised from ``db['initializer']``'s first
    BPE token; returns (sd, [identifier id], anchor ids)."""
    from vislab.diffusion import load_sd

    from compinv.semantic import single_token_id

    sd = load_sd(sd_dir, device=device).freeze()
    anchors = [single_token_id(sd.tokenizer, a, "anchor word") for a in concept["anchors"]]
    if not anchors:
        raise VislabError("concept.anchors needs at least one anchor word")
    return sd, prepare_modifier(sd, concept["placeholder"], db["initializer"]), anchors
