"""Build the CLIP backbone and the CFPL model from a config; save and load trained checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from vislab.errors import InputError, VislabError


def build_clip(spec: dict[str, Any]):
    """A :class:`vislab.clip.ClipEncoder` from ``spec``.

    ``source``: ``tiny`` (random init, ``tiny`` overrides), ``toy`` (vislab's toy CLIP, pretrained
    locally on first use), ``path`` (``path``: a local HF CLIP folder or an open_clip
    architecture name, with ``checkpoint``: a local weights file). Nothing is downloaded.
    """
    import vislab.clip as vclip

    source = str(spec.get("source", "tiny"))
    if source == "tiny":
        return vclip.tiny_clip(**dict(spec.get("tiny") or {}))
    if source == "toy":
        from vislab.toy import toy_clip

        return vclip.load_clip(str(toy_clip(spec.get("toy_preset", "default"))))
    if source == "path":
        path = spec.get("path")
        if not path:
            raise VislabError("clip.source=path needs clip.path (a local HF CLIP folder or an open_clip model name)")
        ckpt = spec.get("checkpoint")
        if ckpt is not None and not Path(str(ckpt)).expanduser().is_file():
            raise InputError(ckpt, "CLIP checkpoint not found")
        p = Path(str(path)).expanduser()
        if ckpt is None and not p.exists():
            raise InputError(p, "CLIP folder not found (give a local HF CLIP folder, or an open_clip name plus clip.checkpoint)")
        return vclip.load_clip(str(path), checkpoint=None if ckpt is None else str(ckpt))
    raise VislabError(f"clip.source must be tiny, toy or path, not {source!r}")


def build_model(config: dict[str, Any], clip=None):
    """CFPL model from the run config (``clip``, ``model``, ``finetune_image_encoder``)."""
    from cfpl.model import CFPL

    clip = build_clip(config["clip"]) if clip is None else clip
    return CFPL(clip, config.get("model") or {}, finetune_image_encoder=bool(config.get("finetune_image_encoder", False)))


def checkpoint_meta(config: dict[str, Any]) -> dict[str, Any]:
    return {"format": "cfpl-v1", "clip": dict(config["clip"]), "model": dict(config.get("model") or {}),
            "finetune_image_encoder": bool(config.get("finetune_image_encoder", False))}


def load_checkpoint(path: str | Path, clip_path: str | None = None):
    """Rebuild a trained CFPL from a Lightning checkpoint written by ``cfpl train``.

    ``clip_path`` replaces the recorded CLIP location (for a checkpoint moved between machines).
    Errors name the file: missing, unreadable, not a cfpl checkpoint, or the wrong architecture.
    """
    from vislab.io import load_torch

    ck = load_torch(path, "checkpoint")
    if not isinstance(ck, dict) or "cfpl_meta" not in ck or "state_dict" not in ck:
        raise InputError(path, "not a cfpl checkpoint (no cfpl_meta/state_dict; was it written by `cfpl train`?)")
    meta = ck["cfpl_meta"]
    spec = dict(meta["clip"])
    if clip_path is not None:
        spec.update(source="path", path=clip_path)
    model = build_model({"clip": spec, "model": meta.get("cfpl", meta.get("model")), "finetune_image_encoder": meta.get("finetune_image_encoder", False)})
    state = {k[len("model."):]: v for k, v in ck["state_dict"].items() if k.startswith("model.")}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise InputError(path, f"checkpoint does not fit the CFPL architecture ({str(e).splitlines()[0][:200]})") from None
    missing = [k for k in missing if not k.startswith("clip.")] if meta.get("clip_weights") is False else missing
    if missing or unexpected:
        raise InputError(path, f"checkpoint does not fit the CFPL architecture (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.eval()
    return model, meta


def to_device(model: torch.nn.Module, name: str | None = None) -> torch.device:
    """Move ``model`` to the device named ``name`` (default: the best one here); returns it."""
    from vislab.runtime import pick_device

    dev = pick_device(name)
    model.to(dev)
    return dev
