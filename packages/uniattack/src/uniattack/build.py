"""Build the CLIP backbone and the UniAttack model from a config; load trained checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vislab.errors import InputError, VislabError


def build_clip(spec: dict[str, Any]):
    """A :class:`vislab.clip.ClipEncoder`: ``source`` tiny (random init) | toy (vislab's toy CLIP) |
    path (a local HF CLIP folder, or an open_clip name + local ``checkpoint``). Nothing is downloaded."""
    import vislab.clip as vclip

    source = str(spec.get("source", "tiny"))
    if source == "tiny":
        return vclip.tiny_clip(**dict(spec.get("tiny") or {}))
    if source == "toy":
        from vislab.toy import toy_clip

        return vclip.load_clip(str(toy_clip(spec.get("toy_preset", "default"))))
    if source == "path":
        path, ckpt = spec.get("path"), spec.get("checkpoint")
        if not path:
            raise VislabError("clip.source=path needs clip.path (a local HF CLIP folder or an open_clip model name)")
        if ckpt is not None and not Path(str(ckpt)).expanduser().is_file():
            raise InputError(ckpt, "CLIP checkpoint not found")
        if ckpt is None and not Path(str(path)).expanduser().exists():
            raise InputError(path, "CLIP folder not found (a local HF CLIP folder, or an open_clip name plus clip.checkpoint)")
        return vclip.load_clip(str(path), checkpoint=None if ckpt is None else str(ckpt))
    raise VislabError(f"clip.source must be tiny, toy or path, not {source!r}")


def build_model(config: dict[str, Any], clip=None):
    from uniattack.model import UniAttack

    clip = build_clip(config["clip"]) if clip is None else clip
    return UniAttack(clip, config.get("model") or {}, finetune_image_encoder=bool(config.get("finetune_image_encoder", False)))


def checkpoint_meta(config: dict[str, Any]) -> dict[str, Any]:
    return {"format": "uniattack-v1", "clip": dict(config["clip"]), "finetune_image_encoder": bool(config.get("finetune_image_encoder", False))}


def load_checkpoint(path: str | Path, clip_path: str | None = None):
    """Rebuild a trained UniAttack from a checkpoint written by ``uniattack`` training."""
    from vislab.io import load_torch

    ck = load_torch(path, "checkpoint")
    if not isinstance(ck, dict) or "uniattack_meta" not in ck or "state_dict" not in ck:
        raise InputError(path, "not a uniattack checkpoint (no uniattack_meta/state_dict; was it written by `uniattack`?)")
    meta = ck["uniattack_meta"]
    spec = dict(meta["clip"])
    if clip_path is not None:
        spec.update(source="path", path=clip_path)
    model = build_model({"clip": spec, "model": meta.get("uniattack"), "finetune_image_encoder": meta.get("finetune_image_encoder", False)})
    state = {k[len("model."):]: v for k, v in ck["state_dict"].items() if k.startswith("model.")}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise InputError(path, f"checkpoint does not fit the UniAttack architecture ({str(e).splitlines()[0][:200]})") from None
    if missing or unexpected:
        raise InputError(path, f"checkpoint does not fit the UniAttack architecture (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval(), meta
