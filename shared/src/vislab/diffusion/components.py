"""Stable Diffusion components: load them from a local diffusers folder, or build a tiny random set.

The tiny set uses the same classes as real SD 1.x (``CLIPTokenizer``, ``CLIPTextModel``,
``AutoencoderKL``, ``UNet2DConditionModel``, a scaled-linear ``DDPMScheduler``), so code written
against it runs unchanged on real weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vislab.errors import InputError

SUBFOLDERS = ("tokenizer", "text_encoder", "vae", "unet", "scheduler")


@dataclass
class SDComponents:
    """The five parts of a Stable Diffusion 1.x/2.x model.

    ``scheduler`` is the scheduler saved with the model (its own class); :meth:`noise_scheduler`
    gives the DDPM scheduler with the same betas that diffusers' training scripts add noise with.
    """

    tokenizer: Any
    text_encoder: nn.Module
    vae: nn.Module
    unet: nn.Module
    scheduler: Any

    # ------------------------------------------------------------------ basic properties
    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_size(self) -> int:
        s = self.unet.config.sample_size
        return int(s[0] if isinstance(s, (tuple, list)) else s)

    @property
    def image_size(self) -> int:
        return self.latent_size * self.vae_scale_factor

    @property
    def scaling_factor(self) -> float:
        return float(getattr(self.vae.config, "scaling_factor", 0.18215))

    def modules(self) -> dict[str, nn.Module]:
        return {"text_encoder": self.text_encoder, "vae": self.vae, "unet": self.unet}

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> SDComponents:
        for m in self.modules().values():
            m.to(device=device, dtype=dtype)
        return self

    def freeze(self) -> SDComponents:
        """No gradients and eval mode for text encoder, VAE and UNet; returns self."""
        for m in self.modules().values():
            m.requires_grad_(False)
            m.eval()
        return self

    def noise_scheduler(self):
        """A ``DDPMScheduler`` with this model's noise schedule (for training: ``add_noise``, targets)."""
        from diffusers import DDPMScheduler

        return DDPMScheduler.from_config(self.scheduler.config)

    # ------------------------------------------------------------------ text
    def tokenize(self, prompts: list[str] | str) -> torch.Tensor:
        """Token ids (B, L) padded to the tokenizer's ``model_max_length`` (77 for SD)."""
        if isinstance(prompts, str):
            prompts = [prompts]
        enc = self.tokenizer(list(prompts), padding="max_length", truncation=True,
                             max_length=self.tokenizer.model_max_length, return_tensors="pt")
        return enc.input_ids.to(self.text_encoder.device)

    def encode_prompt(self, prompts: list[str] | str | torch.Tensor) -> torch.Tensor:
        """UNet conditioning (B, L, D): the text encoder's last hidden states of the prompts (or ids)."""
        ids = prompts if isinstance(prompts, torch.Tensor) else self.tokenize(prompts)
        return self.text_encoder(ids)[0]

    def encode_prompt_embeddings(self, embeds: torch.Tensor) -> torch.Tensor:
        """UNet conditioning (B, L, D) from *token* embeddings (B, L, W) (e.g. learned prompt vectors);
        gradients flow into ``embeds``. Same result as :meth:`encode_prompt` for ``token_embedding(ids)``."""
        from vislab.clip.encoder import hf_text_hidden_states

        return hf_text_hidden_states(self.text_encoder, embeds)

    def token_embedding(self, ids: torch.Tensor) -> torch.Tensor:
        return self.text_encoder.get_input_embeddings()(ids)

    # ------------------------------------------------------------------ images
    def encode_images(self, pixels: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images in [-1, 1] (B, 3, H, W) -> scaled latents (B, C, H/f, W/f) (posterior mode unless ``sample``)."""
        dist = self.vae.encode(pixels.to(self.vae.dtype)).latent_dist
        z = dist.sample(generator) if sample else dist.mode()
        return z * self.scaling_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> images in [0, 1] (B, 3, H, W)."""
        x = self.vae.decode(latents.to(self.vae.dtype) / self.scaling_factor).sample
        return (x / 2 + 0.5).clamp(0, 1)

    # ------------------------------------------------------------------ pipeline and saving
    def pipeline(self, scheduler: Any = None):
        """A ``StableDiffusionPipeline`` sharing these modules (no safety checker, progress bar off)."""
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline(
            vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer, unet=self.unet,
            scheduler=scheduler if scheduler is not None else self.scheduler,
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def save(self, path: str | Path) -> Path:
        """Write a diffusers folder (``model_index.json`` + subfolders) that :func:`load_sd` and
        ``StableDiffusionPipeline.from_pretrained`` read."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.pipeline().save_pretrained(path, safe_serialization=True)
        return path


# --------------------------------------------------------------------------------------------
def _class_name(folder: Path, file: str) -> str | None:
    try:
        return json.loads((folder / file).read_text()).get("_class_name")
    except (OSError, ValueError):
        return None


def load_sd(path: str | Path, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> SDComponents:
    """Load tokenizer, text encoder, VAE, UNet and scheduler from a local diffusers SD folder.

    Weights come back in ``dtype`` (default float32, also for fp16-only folders) on ``device``.
    Raises :class:`InputError` naming the folder when it is missing, is not a diffusers Stable
    Diffusion folder (subfolders ``tokenizer text_encoder vae unet scheduler``), or cannot be read.
    Nothing is downloaded; single-file ``.ckpt``/``.safetensors`` checkpoints need converting first
    (diffusers' ``convert_original_stable_diffusion_to_diffusers.py``).
    """
    import diffusers
    from transformers import CLIPTextModel, CLIPTokenizer

    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(p, "Stable Diffusion folder not found")
    if p.is_file():
        raise InputError(p, "expected a diffusers Stable Diffusion folder (model_index.json + subfolders), got a file; "
                            "convert single-file checkpoints to the diffusers layout first")
    missing = [s for s in SUBFOLDERS if not (p / s).is_dir()]
    if missing:
        raise InputError(p, f"not a diffusers Stable Diffusion folder: missing subfolder(s) {', '.join(missing)}")
    def _weights(cls, folder: Path):
        # folders that hold only half-precision files (``*.fp16.safetensors``) need variant="fp16"
        if not any(f.name.startswith(("model.", "diffusion_pytorch_model.")) and ".fp16." not in f.name for f in folder.iterdir()) \
                and any(".fp16." in f.name for f in folder.iterdir()):
            return cls.from_pretrained(folder, local_files_only=True, variant="fp16")
        return cls.from_pretrained(folder, local_files_only=True)

    try:
        tokenizer = CLIPTokenizer.from_pretrained(p / "tokenizer", local_files_only=True)
        text_encoder = _weights(CLIPTextModel, p / "text_encoder")
        vae = _weights(diffusers.AutoencoderKL, p / "vae")
        unet = _weights(diffusers.UNet2DConditionModel, p / "unet")
        sched_name = _class_name(p / "scheduler", "scheduler_config.json") or "DDPMScheduler"
        sched_cls = getattr(diffusers, sched_name, None) or diffusers.DDPMScheduler
        scheduler = sched_cls.from_pretrained(p / "scheduler", local_files_only=True)
    except Exception as e:  # noqa: BLE001 - transformers/diffusers raise many kinds
        msg = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        raise InputError(p, f"cannot load the Stable Diffusion components ({e.__class__.__name__}: {msg})") from None
    sd = SDComponents(tokenizer, text_encoder.eval(), vae.eval(), unet.eval(), scheduler)
    # fp32 unless asked otherwise (half-precision files are upcast; vislab.runtime's autocast handles speed)
    sd.to(device, dtype or torch.float32)
    return sd


# --------------------------------------------------------------------------------------------
TINY_SD = dict(
    image_size=32,          # pixels; latents are image_size / 4
    context_length=32,      # tokenizer and text-encoder positions
    text_width=32,          # text hidden size = UNet cross-attention dim
    text_layers=2,
    text_heads=4,
    vae_channels=(32, 32, 32),
    unet_channels=(32, 64),
    unet_heads=4,
    latent_channels=4,
    cross_attn_levels=1,    # how many of the UNet's resolution levels (from the top) have cross-attention
    layers_per_block=1,
    vae_norm_groups=32,
    unet_norm_groups=32,
    scaling_factor=0.18215,
)


def tiny_sd(seed: int = 0, **overrides: Any) -> SDComponents:
    """A random-init tiny Stable Diffusion on CPU (eval mode), for tests.

    Keys of :data:`TINY_SD` may be overridden. Group norms use 32 groups by default (channels must be
    multiples of the group count, as in SD); by default the UNet has cross-attention in its first
    down block, the mid block and the last up block (``cross_attn_levels`` levels from the top, mirrored
    on the way up); the scheduler is SD's scaled-linear DDPM (``steps_offset=1``, ``clip_sample=False``).
    The tokenizer is :func:`vislab.clip.clip_tokenizer` with ``context_length`` tokens.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from vislab.clip.tokenizer import BOS_ID, EOS_ID, VOCAB_SIZE, clip_tokenizer

    unknown = set(overrides) - set(TINY_SD)
    if unknown:
        raise TypeError(f"unknown tiny_sd options {sorted(unknown)}; known: {sorted(TINY_SD)}")
    c = {**TINY_SD, **overrides}
    n_vae = len(c["vae_channels"])
    f = 2 ** (n_vae - 1)
    if c["image_size"] % f:
        raise ValueError(f"image_size {c['image_size']} is not divisible by the VAE factor {f}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=VOCAB_SIZE, hidden_size=c["text_width"], intermediate_size=4 * c["text_width"],
            num_hidden_layers=c["text_layers"], num_attention_heads=c["text_heads"],
            max_position_embeddings=c["context_length"], bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=EOS_ID,
        ))
        vae = AutoencoderKL(
            in_channels=3, out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * n_vae, up_block_types=("UpDecoderBlock2D",) * n_vae,
            block_out_channels=tuple(c["vae_channels"]), layers_per_block=1, latent_channels=c["latent_channels"],
            norm_num_groups=c["vae_norm_groups"], sample_size=c["image_size"], scaling_factor=c["scaling_factor"],
        )
        n_unet = len(c["unet_channels"])
        n_x = max(0, min(int(c["cross_attn_levels"]), n_unet))
        down = ("CrossAttnDownBlock2D",) * n_x + ("DownBlock2D",) * (n_unet - n_x)
        unet = UNet2DConditionModel(
            sample_size=c["image_size"] // f, in_channels=c["latent_channels"], out_channels=c["latent_channels"],
            block_out_channels=tuple(c["unet_channels"]), layers_per_block=c["layers_per_block"],
            down_block_types=down,
            up_block_types=tuple("CrossAttnUpBlock2D" if d.startswith("CrossAttn") else "UpBlock2D" for d in reversed(down)),
            cross_attention_dim=c["text_width"], attention_head_dim=c["unet_heads"], norm_num_groups=c["unet_norm_groups"],
        )
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              steps_offset=1, clip_sample=False, prediction_type="epsilon")
    return SDComponents(clip_tokenizer(c["context_length"]), text_encoder.eval(), vae.eval(), unet.eval(), scheduler)


def check_sd_folder(path: str | Path) -> Path:
    """Return ``path`` if it looks like a diffusers SD folder, else raise :class:`InputError` (cheap check)."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise InputError(p, "Stable Diffusion folder not found")
    missing = [s for s in SUBFOLDERS if not (p / s).is_dir()]
    if missing:
        raise InputError(p, f"not a diffusers Stable Diffusion folder: missing subfolder(s) {', '.join(missing)}")
    return p


__all__ = ["SDComponents", "load_sd", "tiny_sd", "TINY_SD", "check_sd_folder"]
