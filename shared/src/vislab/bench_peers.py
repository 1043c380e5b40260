"""Peers' training steps, reimplemented minimally for :func:`vislab.bench.compare` (written from the published
scripts' logic, on vislab's ``SDComponents`` / CLIP; no code copied).

- :func:`diffusers_textual_inversion`: ``diffusers/examples/textual_inversion/textual_inversion.py``: the new
  token is a row of the full embedding matrix; AdamW over the whole matrix (default, per-parameter loop on
  CPU); after each step every other row is copied back from a saved copy of the matrix.
- :func:`diffusers_dreambooth`: ``diffusers/examples/dreambooth/train_dreambooth.py`` with prior preservation:
  instance and class images in one batch, ``chunk`` into the two MSE terms, ``clip_grad_norm_`` (1.0),
  default AdamW, ``zero_grad(set_to_none=False)`` (the script's default ``--set_grads_to_none`` off).
- :func:`clip_finetune_step`: a plain CLIP fine-tuning step (image tower + a linear head, cross-entropy, AdamW).

Both diffusers loops tokenize every example in their dataset's ``__getitem__`` in the main process
(``dataloader_num_workers`` 0), which the step functions include.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from vislab.bench import autocast


def _tokenize_each(tokenizer, prompts: list[str]) -> torch.Tensor:
    return torch.stack([tokenizer(p, padding="max_length", truncation=True, max_length=tokenizer.model_max_length,
                                  return_tensors="pt").input_ids[0] for p in prompts])


def diffusers_textual_inversion(sd, placeholder: str, init_word: str, pixels: torch.Tensor, prompts: list[str],
                                lr: float = 5e-3) -> Callable[[], Any]:
    """One step of the diffusers textual-inversion loop on ``sd`` (its own tokenizer / text-encoder copies;
    VAE and UNet shared, frozen). ``prompts`` contain ``placeholder``."""
    dev = pixels.device
    tok, te = copy.deepcopy(sd.tokenizer), copy.deepcopy(sd.text_encoder)
    vae, unet, sched = sd.vae, sd.unet, sd.noise_scheduler()
    tok.add_tokens([placeholder])
    init_id = tok.encode(init_word, add_special_tokens=False)[0]
    pid = tok.convert_tokens_to_ids(placeholder)
    te.resize_token_embeddings(len(tok))
    with torch.no_grad():
        te.get_input_embeddings().weight[pid] = te.get_input_embeddings().weight[init_id].clone()
    vae.requires_grad_(False)
    unet.requires_grad_(False)
    body = getattr(te, "text_model", te)  # transformers 5 flattened CLIPTextModel
    body.encoder.requires_grad_(False)
    body.final_layer_norm.requires_grad_(False)
    body.embeddings.position_embedding.requires_grad_(False)
    te.get_input_embeddings().requires_grad_(True)  # trains even when ``sd`` came frozen
    opt = torch.optim.AdamW(te.get_input_embeddings().parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    orig = te.get_input_embeddings().weight.data.clone()
    te.train()
    n_t = sched.config.num_train_timesteps

    def step() -> float:
        ids = _tokenize_each(tok, prompts).to(dev)
        with autocast(dev):
            latents = vae.encode(pixels).latent_dist.sample().detach() * sd.scaling_factor
            noise = torch.randn_like(latents)
            t = torch.randint(0, n_t, (latents.shape[0],), device=dev).long()
            noisy = sched.add_noise(latents, noise, t)
            cond = te(ids)[0]
            pred = unet(noisy, t, cond).sample
            loss = F.mse_loss(pred.float(), noise.float(), reduction="mean")
        loss.backward()
        opt.step()
        opt.zero_grad()
        keep = torch.ones((len(tok),), dtype=torch.bool)
        keep[pid:pid + 1] = False
        with torch.no_grad():
            te.get_input_embeddings().weight[keep] = orig[keep]
        return loss.detach()

    return step


def diffusers_dreambooth(sd, unet: torch.nn.Module, pixels: torch.Tensor, class_pixels: torch.Tensor, prompt: str,
                         class_prompt: str, lr: float = 5e-6, prior_loss_weight: float = 1.0) -> Callable[[], Any]:
    """One step of the diffusers DreamBooth loop with prior preservation, training ``unet`` (a copy of ``sd.unet``)."""
    dev = pixels.device
    tok, te, vae, sched = sd.tokenizer, sd.text_encoder, sd.vae, sd.noise_scheduler()
    vae.requires_grad_(False)
    te.requires_grad_(False)
    unet.requires_grad_(True)
    unet.train()
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    n_t = sched.config.num_train_timesteps
    n = pixels.shape[0]

    def step() -> float:
        ids = torch.cat([_tokenize_each(tok, [prompt] * n), _tokenize_each(tok, [class_prompt] * n)]).to(dev)
        x = torch.cat([pixels, class_pixels])
        with autocast(dev):
            latents = vae.encode(x).latent_dist.sample() * sd.scaling_factor
            noise = torch.randn_like(latents)
            t = torch.randint(0, n_t, (latents.shape[0],), device=dev).long()
            noisy = sched.add_noise(latents, noise, t)
            cond = te(ids)[0]
            pred = unet(noisy, t, cond, return_dict=False)[0]
            pred, pred_prior = torch.chunk(pred, 2, dim=0)
            target, target_prior = torch.chunk(noise, 2, dim=0)
            prior = F.mse_loss(pred_prior.float(), target_prior.float(), reduction="mean")
            loss = F.mse_loss(pred.float(), target.float(), reduction="mean") + prior_loss_weight * prior
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=False)
        return loss.detach()

    return step


def clip_finetune_step(clip, pixels: torch.Tensor, labels: torch.Tensor, n_classes: int = 2, lr: float = 1e-5,
                       weight_decay: float = 0.2):
    """A plain CLIP fine-tuning step: the image tower (ViT + projection) and a linear head on the image
    embedding, cross-entropy, AdamW; ``clip`` is copied (the step trains it)."""
    dev = pixels.device
    enc = copy.deepcopy(clip).to(dev).train()
    enc.requires_grad_(False)
    tower = [enc.model.vision_model, enc.model.visual_projection] if enc.backend == "hf" else [enc.model.visual]
    for m in tower:
        m.requires_grad_(True)
    head = torch.nn.Linear(enc.embed_dim, n_classes).to(dev)
    params = [p for p in enc.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)

    def step():
        with autocast(dev):
            logits = head(enc.encode_image(enc.normalize(pixels)))
            loss = F.cross_entropy(logits.float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    return step
