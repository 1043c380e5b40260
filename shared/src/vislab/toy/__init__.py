"""The toy world and its locally pretrained toy CLIP and toy Stable Diffusion.

- :mod:`vislab.toy.world`: deterministic procedural scenes with captions, labels, boxes, masks,
  held-out combinations, :class:`~vislab.toy.world.ToyDataset` and ``ToyDataModule``.
- :mod:`vislab.toy.oracle`: the pixel-level oracle (``oracle.score(images, prompt)``: shapes,
  colours, counts, composition alignment read from the rendering rules, no learned model).
- :func:`toy_clip` / :func:`toy_sd`: the path of a cached Hugging Face CLIP folder / diffusers
  Stable Diffusion folder, pretrained on first use (``vislab toy pretrain clip|sd``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["toy_clip", "toy_sd", "clip_preset", "sd_preset", "world", "oracle"]


def clip_preset(preset: str = "default", **overrides: Any) -> dict[str, Any]:
    """The training config of a toy CLIP preset (``default`` or ``fast``) with overrides."""
    from vislab.errors import ConfigError
    from vislab.toy.clip_model import PRESETS

    if preset not in PRESETS:
        raise ConfigError(f"unknown toy CLIP preset {preset!r} (presets: {', '.join(PRESETS)})")
    return {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}


def sd_preset(preset: str = "default", **overrides: Any) -> dict[str, Any]:
    """The training config of a toy SD preset (``default`` or ``fast``) with overrides."""
    from vislab.errors import ConfigError
    from vislab.toy.sd_model import PRESETS

    if preset not in PRESETS:
        raise ConfigError(f"unknown toy SD preset {preset!r} (presets: {', '.join(PRESETS)})")
    return {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}


def _validate_clip(path: Path) -> None:
    from transformers import CLIPModel, CLIPTokenizer

    CLIPModel.from_pretrained(path, local_files_only=True)
    CLIPTokenizer.from_pretrained(path, local_files_only=True)


def _validate_sd(path: Path) -> None:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    AutoencoderKL.from_pretrained(path, subfolder="vae", local_files_only=True)
    UNet2DConditionModel.from_pretrained(path, subfolder="unet", local_files_only=True)
    CLIPTextModel.from_pretrained(path, subfolder="text_encoder", local_files_only=True)
    CLIPTokenizer.from_pretrained(path, subfolder="tokenizer", local_files_only=True)
    DDPMScheduler.from_pretrained(path, subfolder="scheduler", local_files_only=True)


def clip_entry(preset: str = "default", **overrides: Any) -> str:
    """The cache entry name of a toy CLIP config (``clip-<preset>-<hash>``)."""
    from vislab.toy.cache import config_hash

    return f"clip-{preset}-{config_hash({'kind': 'clip', **clip_preset(preset, **overrides)})}"


def toy_clip(preset: str = "default", root: Path | None = None, **overrides: Any) -> Path:
    """Path of the cached toy CLIP folder for ``preset``, pretraining it on the first call."""
    from vislab.toy.cache import ensure
    from vislab.toy.clip_model import pretrain_clip

    cfg = clip_preset(preset, **overrides)
    return ensure(clip_entry(preset, **overrides), lambda tmp: pretrain_clip(cfg, tmp), _validate_clip, root=root)


def toy_sd(preset: str = "default", root: Path | None = None, clip: str | Path | None = None, **overrides: Any) -> Path:
    """Path of the cached toy SD folder for ``preset``, pretraining it on the first call.

    Its text encoder is the toy CLIP of the same preset (itself pretrained first when needed) or
    the CLIP folder ``clip``.
    """
    from vislab.toy.cache import ensure
    from vislab.toy.sd_model import pretrain_sd

    cfg = sd_preset(preset, **overrides)
    if clip is None:
        clip_dir: Any = lambda: toy_clip(preset, root=root)  # noqa: E731
    else:
        clip_dir = Path(clip).expanduser().resolve()
    return ensure(sd_entry(preset, clip, **overrides), lambda tmp: pretrain_sd(cfg, clip_dir, tmp), _validate_sd, root=root)


def sd_entry(preset: str = "default", clip: str | Path | None = None, **overrides: Any) -> str:
    """The cache entry name of a toy SD config (``sd-<preset>-<hash>``; the hash covers its text CLIP)."""
    from vislab.toy.cache import config_hash

    clip_key = clip_entry(preset) if clip is None else str(Path(clip).expanduser().resolve())
    return f"sd-{preset}-{config_hash({'kind': 'sd', 'clip': clip_key, **sd_preset(preset, **overrides)})}"


def __getattr__(name: str) -> Any:
    if name in ("world", "oracle"):
        import importlib

        return importlib.import_module(f"vislab.toy.{name}")
    raise AttributeError(f"module 'vislab.toy' has no attribute {name!r}")
