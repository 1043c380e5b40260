"""Semantic inversion: textual inversion with the anchor loss.

    L = alpha_rec * L_rec + alpha_anc * L_anchor

- :func:`anchor_loss`: the official single-anchor term on the text transformer's *input* embeddings
  E(ids) = token_embedding(ids) + position_embedding(0..L-1): mean over (b, l, j) of
  (E(ids) - stopgrad E(ref))^2, where ``ref`` is the prompt with the placeholder replaced by the anchor.
- :func:`multi_anchor_loss`: the paper's several anchors ("attractors") with sparse weights:
  sum_k w_k * sum_vectors ||v - e_k||^2 / (L * d) with w = sparsemax(-||v - e_k||^2 / (d * tau)) (no
  gradient through w), so only the nearest anchors pull. With one anchor it equals :func:`anchor_loss`.
- :class:`CompositionalTI`: the LightningModule that trains the placeholder rows of the token-embedding
  matrix (every vector, or only the first: ``placeholder_expansion``). The update is diffusers' example
  script's (AdamW on the rows, every other row unchanged), but only the placeholder rows are a parameter
  (``vislab.diffusion.learners.TrainableTokenRows``: (n, D) instead of the whole (V, D) matrix, written back
  into the matrix after each step), with fused AdamW and the token ids of repeated prompts cached.
"""

from __future__ import annotations

import random
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from vislab.devices import FollowsDevice
from vislab.errors import VislabError

# 22 object templates of the official textual-inversion script (ImageNet templates)
IMAGENET_TEMPLATES = [
    "a photo of a {}", "a rendering of a {}", "a cropped photo of the {}", "the photo of a {}",
    "a photo of a clean {}", "a photo of a dirty {}", "a dark photo of the {}", "a photo of my {}",
    "a photo of the cool {}", "a close-up photo of a {}", "a bright photo of the {}", "a cropped photo of a {}",
    "a photo of the {}", "a good photo of the {}", "a photo of one {}", "a close-up photo of the {}",
    "a rendition of the {}", "a photo of the clean {}", "a rendition of a {}", "a photo of a nice {}",
    "a good photo of a {}", "a photo of the nice {}",
]
# the toy world's caption forms (the toy text encoder only saw these)
TOY_TEMPLATES = ["a {}", "a {} on the left", "a {} on the right", "a {} at the top", "a {} at the bottom",
                 "a {} in the centre", "a large {}", "a small {}"]


def templates(name: str) -> list[str]:
    if name == "imagenet":
        return IMAGENET_TEMPLATES
    if name == "toy":
        return TOY_TEMPLATES
    raise VislabError(f"unknown template set {name!r} (imagenet | toy)")


# ------------------------------------------------------------------------------------------ losses
def input_embeddings(text_encoder: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """E(ids) = token_embedding(ids) + position_embedding(0..L-1): (B, L, d), the text transformer's input."""
    emb = text_encoder.get_input_embeddings()(ids)
    pos_layer = text_encoder.text_model.embeddings.position_embedding if hasattr(text_encoder, "text_model") \
        else text_encoder.embeddings.position_embedding
    pos = pos_layer(torch.arange(ids.shape[1], device=ids.device))
    return emb + pos.unsqueeze(0)


def anchor_loss(E: torch.Tensor, E_ref: torch.Tensor) -> torch.Tensor:
    """Official L_anchor: mean over (b, l, j) of (E - stopgrad E_ref)^2. E, E_ref: (B, L, d)."""
    return F.mse_loss(E.float(), E_ref.detach().float(), reduction="mean")


def sparsemax(z: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Sparsemax (Martins & Astudillo 2016): the Euclidean projection of z onto the simplex (sparse weights)."""
    zs, _ = torch.sort(z, dim=dim, descending=True)
    k = torch.arange(1, z.shape[dim] + 1, device=z.device, dtype=z.dtype)
    shape = [1] * z.dim()
    shape[dim] = -1
    k = k.view(shape)
    cum = zs.cumsum(dim)
    support = (1 + k * zs) > cum
    k_z = support.sum(dim=dim, keepdim=True).clamp(min=1)
    tau = (cum.gather(dim, k_z - 1) - 1) / k_z.to(z.dtype)
    return (z - tau).clamp(min=0)


def anchor_weights(v: torch.Tensor, anchors: torch.Tensor, tau: float) -> torch.Tensor:
    """Sparse anchor weights (n_vec, K) = sparsemax(-||v - e_k||^2 / (d * tau)), no gradient."""
    with torch.no_grad():
        d2 = ((v.unsqueeze(1) - anchors.unsqueeze(0)) ** 2).mean(-1)  # (n, K)
        return sparsemax(-d2 / tau, dim=-1)


def multi_anchor_loss(v: torch.Tensor, anchors: torch.Tensor, seq_len: int, tau: float = 1.0,
                      weights: torch.Tensor | None = None) -> torch.Tensor:
    """Several anchors with sparse weights, on the learned rows directly.

    v: (n_vec, d) learned vectors; anchors: (K, d) anchor-word embeddings; returns
    sum_i sum_k w_ik ||v_i - e_k||^2 / (seq_len * d), which is the official :func:`anchor_loss` of a
    prompt of ``seq_len`` tokens when K = 1 (prompt and reference differ only at the placeholder slots).
    """
    w = anchor_weights(v, anchors, tau) if weights is None else weights
    d2 = ((v.unsqueeze(1).float() - anchors.unsqueeze(0).float()) ** 2).sum(-1)  # (n, K)
    return (w * d2).sum() / (seq_len * v.shape[-1])


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_rec = MSE(eps_pred, eps) (or the v target), as the official TI script (its mask is a no-op)."""
    return F.mse_loss(pred.float(), target.float(), reduction="mean")


# ------------------------------------------------------------------------------------------ data
class ConceptImages(Dataset):
    """``repeats`` passes over the concept images; items: pixels in [-1, 1] (hflip 0.5) and a prompt
    "template(placeholder tokens + class noun)" and its reference (placeholder -> anchor word)."""

    def __init__(self, images: torch.Tensor, placeholder_text: str, ref_text: str, noun: str, template_set: list[str],
                 repeats: int = 100, flip_p: float = 0.5, seed: int = 0):
        if len(images) == 0:
            raise VislabError("the concept has no images")
        self.images = images  # (N, 3, H, W) in [0, 1]
        self.placeholder_text, self.ref_text, self.noun = placeholder_text, ref_text, noun
        self.templates, self.repeats, self.flip_p, self.seed = template_set, repeats, flip_p, seed

    def __len__(self) -> int:
        return len(self.images) * self.repeats

    def __getitem__(self, i: int) -> dict[str, Any]:
        rng = random.Random(self.seed * 1_000_003 + i)
        x = self.images[i % len(self.images)] * 2 - 1
        if rng.random() < self.flip_p:
            x = x.flip(-1)
        t = self.templates[rng.randrange(len(self.templates))]
        word = lambda p: f"{p} {self.noun}".strip()  # noqa: E731
        return {"pixels": x, "prompt": t.format(word(self.placeholder_text)), "ref": t.format(word(self.ref_text))}


class ConceptDataModule(pl.LightningDataModule):
    """The user's 3-6 concept images as a training stream."""

    def __init__(self, dataset: ConceptImages, batch_size: int = 4):
        super().__init__()
        self.dataset, self.batch_size = dataset, batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=True, drop_last=False,
                          generator=torch.Generator().manual_seed(self.dataset.seed))


# ------------------------------------------------------------------------------------------ module
class CompositionalTI(FollowsDevice, pl.LightningModule):
    """Textual inversion + anchor loss. Only the token-embedding rows of the placeholder vectors train.

    ``anchor_mode``: ``multi`` (several anchors, sparse weights: the paper), ``single`` (official:
    :func:`anchor_loss` on E with one anchor word), ``none`` (plain textual inversion, alpha_anc = 0 and
    alpha_rec = 1). ``placeholder_expansion``: ``all`` (prompts hold every vector "<p> <p>_1 ..", each
    trained) or ``official`` (prompts hold only "<p>"; the extra vectors only decay through AdamW).
    """

    def __init__(self, sd, placeholder_ids: list[int], anchor_ids: list[int], cfg: dict[str, Any]):
        super().__init__()
        self._sd = [sd]  # the frozen UNet / VAE stay outside the module's state
        self.text_encoder = sd.text_encoder  # a child: DDP syncs the embedding gradient; checkpoint holds it
        self.cfg = cfg
        self.placeholder_ids = list(placeholder_ids)
        self.anchor_ids = list(anchor_ids)
        if cfg["placeholder_expansion"] == "all":
            self.trained_ids = list(placeholder_ids)
        elif cfg["placeholder_expansion"] == "official":
            self.trained_ids = list(placeholder_ids)  # all rows may move (AdamW decay), only the first gets gradient
        else:
            raise VislabError(f"placeholder_expansion must be 'all' or 'official', got {cfg['placeholder_expansion']!r}")
        if cfg["anchor_mode"] not in ("multi", "single", "none"):
            raise VislabError(f"anchor_mode must be multi | single | none, got {cfg['anchor_mode']!r}")
        from vislab.diffusion.learners import TrainableTokenRows

        sd.unet.requires_grad_(False)
        sd.vae.requires_grad_(False)
        sd.text_encoder.requires_grad_(False)
        self.token_rows = TrainableTokenRows(sd.text_encoder, self.trained_ids)  # the (n, D) parameter
        self.noise_scheduler = sd.noise_scheduler()
        self._ids_cache: dict[tuple, torch.Tensor] = {}
        self.history: list[dict[str, float]] = []

    @property
    def sd(self):
        return self._sd[0]

    def frozen_modules(self) -> list[torch.nn.Module]:
        """The frozen VAE and UNet: outside the checkpoint, but they follow the module's device."""
        return [self.sd.vae, self.sd.unet]

    def weights(self) -> tuple[float, float]:
        if self.cfg["anchor_mode"] == "none":
            return 1.0, 0.0
        return float(self.cfg["alpha_rec"]), float(self.cfg["alpha_anc"])

    def learned(self) -> torch.Tensor:
        """The placeholder vectors (n_vec, d), with gradient (rows of the trained parameter)."""
        return self.token_rows.rows

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """Token ids (B, L) on the module's device, cached per prompt tuple (templates repeat)."""
        key = (tuple(prompts), str(self.device))
        ids = self._ids_cache.get(key)
        if ids is None:
            ids = self.sd.tokenize(list(prompts)).to(self.device)
            if len(self._ids_cache) > 4096:
                self._ids_cache.clear()
            self._ids_cache[key] = ids
        return ids

    def anchor_term(self, ids: torch.Tensor, ref_ids: torch.Tensor) -> torch.Tensor:
        mode = self.cfg["anchor_mode"]
        if mode == "single":
            return anchor_loss(input_embeddings(self.text_encoder, ids), input_embeddings(self.text_encoder, ref_ids))
        w = self.text_encoder.get_input_embeddings().weight
        anchors = w[torch.as_tensor(self.anchor_ids, device=w.device)].detach()
        used = self.learned() if self.cfg["placeholder_expansion"] == "all" else self.learned()[:1]
        return multi_anchor_loss(used, anchors, ids.shape[1], tau=float(self.cfg["anchor_tau"]))

    def losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        sd = self.sd
        ids = self.tokenize(batch["prompt"])
        with torch.no_grad():
            latents = sd.encode_images(batch["pixels"].to(self.device))
        noise = torch.randn_like(latents)
        t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (latents.shape[0],), device=latents.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, t)
        cond = self.text_encoder(ids)[0]
        pred = sd.unet(noisy, t, encoder_hidden_states=cond).sample
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, t)
        else:
            target = noise
        rec = reconstruction_loss(pred, target)
        a_rec, a_anc = self.weights()
        out = {"rec": rec}
        if a_anc > 0:
            ref_ids = self.tokenize(batch["ref"])
            out["anchor"] = self.anchor_term(ids, ref_ids)
            out["loss"] = a_rec * rec + a_anc * out["anchor"]
        else:
            out["loss"] = a_rec * rec
        return out

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        out = self.losses(batch)
        bs = len(batch["prompt"])
        for k, v in out.items():
            self.log(f"train/{k}", v, prog_bar=(k == "loss"), batch_size=bs)
        self.history.append({k: float(v.detach()) for k, v in out.items()})
        return out["loss"]

    def on_train_start(self) -> None:
        self.token_rows.sync()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        sd = checkpoint.get("state_dict", {})
        if "token_rows.rows" not in sd:  # a checkpoint that trained the whole matrix
            mat = next((v for k, v in sd.items() if k.endswith("token_embedding.weight")), None)
            if mat is not None:
                sd["token_rows.rows"] = mat[torch.as_tensor(self.trained_ids)]

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.token_rows.sync()  # the trained rows into the embedding matrix (every other row never moves)

    def configure_optimizers(self):
        c = self.cfg
        lr = float(c["lr"])
        if c.get("scale_lr"):
            lr *= int(c["batch_size"]) * int(self.trainer.accumulate_grad_batches) * max(1, int(self.trainer.world_size))
        from vislab.diffusion.learners import adamw

        return adamw([self.token_rows.rows], lr=lr, betas=(0.9, 0.999), weight_decay=float(c["weight_decay"]), eps=1e-8)


def placeholder_prompt_text(placeholder: str, num_vectors: int, expansion: str) -> str:
    """What the training prompts hold: "<p> <p>_1 .." (``all``) or "<p>" (``official``)."""
    from vislab.diffusion import placeholder_names

    return " ".join(placeholder_names(placeholder, num_vectors)) if expansion == "all" else placeholder


def single_token_id(tokenizer, word: str, what: str) -> int:
    ids = tokenizer.encode(word, add_special_tokens=False)
    if len(ids) != 1:
        raise VislabError(f"the {what} {word!r} must be a single token (it is {len(ids)} tokens)")
    return int(ids[0])
