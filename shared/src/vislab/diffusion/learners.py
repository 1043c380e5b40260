"""Personalisation learners: LightningModules that fine-tune Stable Diffusion on a few concept images.

- :class:`DreamBoothLearner` (Ruiz et al., CVPR 2023): full UNet fine-tune, frozen text encoder and VAE,
  optional prior preservation on paired class images.
- :class:`TextualInversionLearner` (Gal et al., ICLR 2023): only the identifier's new token embedding(s) train.
- :class:`LoRALearner`: peft LoRA adapters on the UNet's attention projections.

All share :meth:`PersonalizationLearner.denoise` (one noising / prediction pass over a batch) and
:meth:`PersonalizationLearner.loss`: latents ``z = s * VAE.enc(x).sample()`` (or the posterior mode),
``t ~ U{0..T-1}`` per sample (or one shared ``t``), ``z_t = add_noise(z, eps, t)``, ``eps_hat = UNet(z_t, t, TE(ids))``,
target ``eps`` (or the velocity for v-prediction), loss :func:`dreambooth_loss` with per-sample weights.
Subclasses (e.g. a regularised DreamBooth) override :meth:`loss` and reuse :meth:`denoise`.

Batches are dicts: ``pixel_values`` (B, 3, H, W) in [-1, 1], ``prompt`` (B strings), ``weight`` (B,), and for
prior preservation ``class_pixel_values`` / ``class_prompt``.
Shapes at SD 1.x size: ``x`` B x 3 x 512 x 512, ``z`` B x 4 x 64 x 64, ``ids`` B x 77, ``TE(ids)`` B x 77 x 768.

Speed (the step is what every package's personalisation spends its time in): the optimiser is AdamW with the
fused kernel where PyTorch has one (else the multi-tensor ``foreach`` one), gradients are freed rather than zeroed,
token ids of repeated prompts and, while the text encoder is frozen, its outputs are cached per prompt; textual
inversion trains only the new token rows as their own (n, D) parameter (:class:`TrainableTokenRows`) instead of
the whole vocabulary matrix, so no (V, D) gradient, mask or optimiser state exists.

Moved here from gal4p (which re-exports the names) because compinv fine-tunes with the same learners.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from vislab.errors import InputError, VislabError

MODEL_FILE = "personalized_model.json"


# ------------------------------------------------------------------------------------------ losses
def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``L = mean_b w_b * mean_elements (pred_b - target_b)^2`` for ``pred``/``target`` (B, C, h, w), ``weights`` (B,).

    With all weights 1 this is the plain MSE of diffusers' DreamBooth script.
    """
    per = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return (weights.to(per) * per).mean()


def dreambooth_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
                    prior_pred: torch.Tensor | None = None, prior_target: torch.Tensor | None = None,
                    prior_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DreamBooth objective with prior preservation:

    ``L = mean_b w_b MSE(eps_hat_b, eps_b) + lambda_prior * mean_b w_b MSE(eps_hat_cls_b, eps_cls_b)``

    The class image paired with instance ``b`` inherits its weight ``w_b``. Without ``prior_pred`` the
    second term is absent. Returns the loss and its (detached) parts.
    """
    inst = weighted_mse(pred, target, weights)
    parts = {"instance_loss": inst.detach()}
    if prior_pred is None:
        return inst, parts
    prior = weighted_mse(prior_pred, prior_target, weights)
    parts["prior_loss"] = prior.detach()
    return inst + prior_weight * prior, parts


def adamw(params: list[nn.Parameter], lr: float, betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 1e-2,
          eps: float = 1e-8) -> torch.optim.AdamW:
    """AdamW (the diffusers examples' optimiser, same update) with PyTorch's fused kernel when every parameter is a
    floating tensor on a device that has it (CPU, CUDA), else the multi-tensor ``foreach`` kernel."""
    devs = {p.device.type for p in params}
    fused = devs <= {"cpu", "cuda"} and all(p.dtype in (torch.float32, torch.float16, torch.bfloat16) for p in params)
    kw = {"fused": True} if fused else {"foreach": True}
    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, eps=eps, **kw)


class TrainableTokenRows(nn.Module):
    """The rows ``ids`` of a text encoder's token embedding as their own parameter ``rows`` (n, D).

    The embedding matrix (V, D) is frozen; a forward hook on the embedding module replaces its output at the
    positions whose id is one of ``ids`` by the matching row of ``rows`` (``torch.where``), so the gradient
    reaches only ``rows``. :meth:`sync` writes ``rows`` back into the matrix (after each optimiser step), so
    every reader of ``get_input_embeddings().weight`` and the saved file see the trained values; without
    gradient (sampling) the hook leaves the output alone.
    """

    def __init__(self, text_encoder: nn.Module, ids: list[int]):
        super().__init__()
        emb = text_encoder.get_input_embeddings()
        w = emb.weight
        n_vocab = w.shape[0]
        idx = torch.as_tensor(list(ids), dtype=torch.long)
        if idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= n_vocab:
            raise VislabError(f"trainable ids {list(ids)} are outside the embedding matrix of {n_vocab} rows")
        self.rows = nn.Parameter(w.detach()[idx.to(w.device)].clone())  # (n, D)
        slot = torch.full((n_vocab,), -1, dtype=torch.long)
        slot[idx] = torch.arange(idx.numel())
        self.register_buffer("ids", idx.to(w.device), persistent=False)
        self.register_buffer("slot", slot.to(w.device), persistent=False)  # id -> row of ``rows`` or -1
        w.requires_grad_(False)
        self._embedding = [emb]  # a list: not a submodule (the text encoder owns it)
        self._hook = emb.register_forward_hook(self._splice)

    def _splice(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> torch.Tensor | None:
        if not (torch.is_grad_enabled() and self.rows.requires_grad):
            return None  # the matrix holds the synced rows
        s = self.slot[inputs[0]]  # (B, L)
        return torch.where((s >= 0).unsqueeze(-1), self.rows.to(out.dtype)[s.clamp(min=0)], out)

    @torch.no_grad()
    def sync(self) -> None:
        """Write ``rows`` into the embedding matrix."""
        w = self._embedding[0].weight
        w[self.ids] = self.rows.detach().to(w)

    def remove(self) -> None:
        """Sync and remove the hook (the matrix keeps the trained rows)."""
        self.sync()
        self._hook.remove()


# ------------------------------------------------------------------------------------------ learners
class PersonalizationLearner(pl.LightningModule):
    """Base learner: a Stable Diffusion (``vislab.diffusion.SDComponents``) and the weighted DreamBooth step.

    ``model_file`` names the description file :meth:`save_model` writes (``load_personalized`` reads it);
    ``checkpoint_key`` is the key of the learner's metadata in Lightning checkpoints.
    """

    kind = "base"

    def __init__(self, sd, lr: float = 5e-6, betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 1e-2,
                 eps: float = 1e-8, prior_loss_weight: float = 1.0, shared_timestep: bool = False,
                 gradient_checkpointing: bool = False, round_index: int = 0, latents: str = "sample",
                 model_file: str = MODEL_FILE, checkpoint_key: str = "learner"):
        super().__init__()
        self.tokenizer = sd.tokenizer
        self.text_encoder, self.vae, self.unet = sd.text_encoder, sd.vae, sd.unet
        self.scheduler_config = dict(sd.scheduler.config)
        self.sched_cls = type(sd.scheduler)
        self.noise_scheduler = sd.noise_scheduler()
        self.scaling_factor = sd.scaling_factor
        self.lr, self.betas, self.weight_decay, self.eps = float(lr), tuple(betas), float(weight_decay), float(eps)
        self.prior_loss_weight, self.shared_timestep = float(prior_loss_weight), bool(shared_timestep)
        self.round_index = int(round_index)
        if latents not in ("sample", "mode"):
            raise VislabError(f"dreambooth.latents must be sample or mode, not {latents!r}")
        self.latent_mode = latents
        self.model_file, self.checkpoint_key = str(model_file), str(checkpoint_key)
        self.strict_loading = False  # checkpoints hold only the trained weights
        self._ids_cache: dict[tuple, torch.Tensor] = {}
        self._text_cache: dict[tuple, torch.Tensor] = {}
        for m in (self.text_encoder, self.vae, self.unet):
            m.requires_grad_(False)
        self.vae.eval()
        self.text_encoder.eval()
        if gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()

    # ------------------------------------------------------------------ pieces
    def components(self):
        """The learner's current Stable Diffusion as ``SDComponents`` (shares the modules)."""
        from vislab.diffusion import SDComponents

        return SDComponents(self.tokenizer, self.text_encoder, self.vae, self.unet, self.sched_cls.from_config(self.scheduler_config))

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """Token ids (B, L) on the learner's device; cached per prompt tuple (and vocabulary size)."""
        key = (tuple(prompts), len(self.tokenizer), str(self.device))
        ids = self._ids_cache.get(key)
        if ids is None:
            enc = self.tokenizer(list(prompts), padding="max_length", truncation=True, max_length=self.tokenizer.model_max_length,
                                 return_tensors="pt")
            ids = enc.input_ids.to(self.device)
            if len(self._ids_cache) > 256:
                self._ids_cache.clear()
            self._ids_cache[key] = ids
        return ids

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """The frozen text encoder's hidden states (B, L, D), cached per token-id batch while nothing in it trains
        (the text encoder is deterministic in eval mode; the cache is cleared when training starts)."""
        frozen = not self.text_encoder.training and not any(p.requires_grad for p in self.text_encoder.parameters())
        key = (tuple(ids.shape), ids.cpu().numpy().tobytes(), str(ids.device), torch.is_autocast_enabled(ids.device.type)) if frozen else None
        hit = self._text_cache.get(key) if frozen else None
        if hit is not None:
            return hit
        with torch.no_grad():
            out = self.text_encoder(ids)[0]
        if frozen:
            if len(self._text_cache) > 64:
                self._text_cache.clear()
            self._text_cache[key] = out
        return out

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    # ------------------------------------------------------------------ training
    def denoise(self, batch: dict[str, Any]) -> dict[str, Any]:
        """One noising / prediction pass over the instance images (and the paired class images).

        Returns ``pred``, ``target`` (instance half), ``prior_pred``, ``prior_target`` (class half, or None),
        ``ids`` (the instance prompts' token ids, B x L) and ``weights`` (B,).
        """
        pixels, prompts, weights = batch["pixel_values"], list(batch["prompt"]), batch["weight"].float()
        prior = "class_pixel_values" in batch
        n = len(prompts)
        if prior:
            pixels = torch.cat([pixels, batch["class_pixel_values"]])
            prompts = prompts + list(batch["class_prompt"])
        with torch.no_grad():
            dist = self.vae.encode(pixels.to(self.vae.dtype)).latent_dist
            latents = (dist.sample() if self.latent_mode == "sample" else dist.mode()) * self.scaling_factor
        noise = torch.randn_like(latents)
        b = latents.shape[0]
        n_t = self.noise_scheduler.config.num_train_timesteps
        if self.shared_timestep:  # one timestep for the whole batch
            t = torch.randint(0, n_t, (1,), device=latents.device).expand(b)
        else:
            t = torch.randint(0, n_t, (b,), device=latents.device)
        t = t.long()
        noisy = self.noise_scheduler.add_noise(latents, noise, t)
        ids = self.tokenize(prompts)
        cond = self.encode_text(ids)
        pred = self.unet(noisy, t, cond).sample
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, t)
        else:
            target = noise
        out = {"pred": pred[:n], "target": target[:n], "prior_pred": None, "prior_target": None, "ids": ids[:n],
               "weights": weights}
        if prior:
            out["prior_pred"], out["prior_target"] = pred[n:], target[n:]
        return out

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted DreamBooth loss of one batch (instance images, optional paired class images)."""
        d = self.denoise(batch)
        if d["prior_pred"] is not None:
            return dreambooth_loss(d["pred"], d["target"], d["weights"], d["prior_pred"], d["prior_target"], self.prior_loss_weight)
        return dreambooth_loss(d["pred"], d["target"], d["weights"])

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, parts = self.loss(batch)
        bs = len(batch["prompt"])
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        for k, v in parts.items():
            self.log(f"train/{k}", v, batch_size=bs)
        return loss

    def configure_optimizers(self):
        params = self.trainable_parameters()
        if not params:
            raise VislabError(f"{self.kind}: nothing to train")
        return adamw(params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay, eps=self.eps)

    def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)

    def on_train_start(self) -> None:
        self.vae.eval()
        if not any(p.requires_grad for p in self.text_encoder.parameters()):
            self.text_encoder.eval()  # frozen (Lightning's train() switched it)
        self._text_cache.clear()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in names}
        checkpoint[self.checkpoint_key] = {"learner": self.kind, "round": self.round_index, "tag": getattr(self, "ckpt_tag", None)}

    # ------------------------------------------------------------------ saving
    def save_model(self, folder: str | Path, base: str, extra: dict[str, Any] | None = None) -> Path:
        """Write the personalised part into ``folder`` plus ``self.model_file`` (learner kind, base model path)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._save_weights(folder)
        info = {"learner": self.kind, "base": str(base), **(extra or {})}
        (folder / self.model_file).write_text(json.dumps(info, indent=2))
        return folder

    def _save_weights(self, folder: Path) -> None:
        raise NotImplementedError


class DreamBoothLearner(PersonalizationLearner):
    """DreamBooth: every UNet weight trains; text encoder and VAE frozen."""

    kind = "dreambooth"

    def __init__(self, sd, **kw: Any):
        super().__init__(sd, **kw)
        self.unet.requires_grad_(True)
        self.unet.train()

    def _save_weights(self, folder: Path) -> None:
        self.unet.save_pretrained(folder / "unet", safe_serialization=True)


class TextualInversionLearner(PersonalizationLearner):
    """Textual inversion of the identifier (new token(s) initialised from ``init_word``)."""

    kind = "textual_inversion"

    def __init__(self, sd, placeholder: str, init_word: str | None = None, num_vectors: int = 1, **kw: Any):
        super().__init__(sd, **kw)
        from vislab.diffusion import add_placeholder_tokens

        self.placeholder, self.num_vectors = placeholder, int(num_vectors)
        self.placeholder_ids = add_placeholder_tokens(self.tokenizer, self.text_encoder, placeholder, num_vectors, init_word)
        self.token_rows = TrainableTokenRows(self.text_encoder, self.placeholder_ids)

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        from vislab.diffusion import expand_placeholder

        return super().tokenize([expand_placeholder(p, self.placeholder, self.num_vectors) for p in prompts])

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(ids)[0]

    def on_train_start(self) -> None:
        super().on_train_start()
        self.token_rows.sync()

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.token_rows.sync()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        sd = checkpoint.get("state_dict", {})
        old = "text_encoder.text_model.embeddings.token_embedding.weight"
        if "token_rows.rows" not in sd and old in sd:  # a checkpoint of the whole matrix
            sd["token_rows.rows"] = sd.pop(old)[self.token_rows.ids.cpu()]

    def _save_weights(self, folder: Path) -> None:
        from vislab.diffusion import save_learned_embeds

        self.token_rows.sync()
        save_learned_embeds(folder / "learned_embeds.safetensors", self.tokenizer, self.text_encoder, self.placeholder_ids)


class LoRALearner(PersonalizationLearner):
    """LoRA adapters (peft) on the UNet attention projections."""

    kind = "lora"

    def __init__(self, sd, rank: int = 4, alpha: float = 4.0, target_modules: list[str] | None = None, **kw: Any):
        super().__init__(sd, **kw)
        from peft import LoraConfig

        cfg = LoraConfig(r=int(rank), lora_alpha=float(alpha), init_lora_weights="gaussian",
                         target_modules=list(target_modules or ["to_q", "to_k", "to_v", "to_out.0"]))
        self.unet.add_adapter(cfg)
        for n, p in self.unet.named_parameters():
            p.requires_grad_("lora_" in n)

    def _save_weights(self, folder: Path) -> None:
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft.utils import get_peft_model_state_dict

        layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(self.unet))
        StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=layers, safe_serialization=True)


LEARNERS = {"dreambooth": DreamBoothLearner, "textual_inversion": TextualInversionLearner, "lora": LoRALearner}


def load_personalized(model_dir: str | Path, base: str | Path | None = None, device=None, model_file: str = MODEL_FILE,
                      what: str = "personalized", hint: str = ""):
    """Load a saved personalised model (a folder written by :meth:`PersonalizationLearner.save_model`) as
    ``SDComponents``: the base Stable Diffusion (``base`` or the path recorded in ``model_file``)
    with the learned UNet / embeddings / LoRA applied. Returns ``(sd, info)``."""
    from vislab.diffusion import load_learned_embeds, load_sd

    d = Path(model_dir).expanduser()
    if not d.is_dir():
        raise InputError(d, f"{what} model folder not found")
    info_path = d / model_file
    if not info_path.is_file():
        raise InputError(d, f"not a {what} model folder (no {model_file}){'; ' + hint if hint else ''}")
    try:
        info = json.loads(info_path.read_text())
        kind = info["learner"]
    except (ValueError, KeyError) as e:
        raise InputError(info_path, f"unreadable model description ({e.__class__.__name__})") from None
    sd = load_sd(base if base is not None else info["base"], device=device)
    try:
        if kind == "dreambooth":
            from diffusers import UNet2DConditionModel

            unet = UNet2DConditionModel.from_pretrained(d / "unet", local_files_only=True)
            if unet.config.cross_attention_dim != sd.unet.config.cross_attention_dim or \
                    unet.config.block_out_channels != sd.unet.config.block_out_channels:
                raise InputError(d / "unet", "this UNet does not match the base model's architecture")
            sd.unet = unet.to(device=sd.device, dtype=sd.dtype).eval()
            emb = d / "learned_embeds.safetensors"
            if emb.is_file():  # a DreamBooth run that also learned an identifier token
                load_learned_embeds(emb, sd.tokenizer, sd.text_encoder)
        elif kind == "textual_inversion":
            load_learned_embeds(d / "learned_embeds.safetensors", sd.tokenizer, sd.text_encoder)
        elif kind == "lora":
            sd.pipeline().load_lora_weights(str(d))
        else:
            raise InputError(info_path, f"unknown learner {kind!r}")
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - diffusers/peft raise many kinds
        raise InputError(d, f"cannot load the {kind} weights ({e.__class__.__name__}: {str(e)[:200]})") from None
    sd.unet.eval()
    return sd, info
