"""Build the CLIP backbone and the CFPL model from a config; save and load trained checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from vislab.errors import InputError


def build_model(config: dict[str, Any], clip=None):
    """CFPL model from the run config (``clip``, ``model``, ``finetune_image_encoder``)."""
    from cfpl.model import CFPL

    if clip is None:  # training: vislab makes the toy CLIP on first use; loading passes the recorded CLIP
        from vislab.models import create_clip

        clip = create_clip(config["clip"], pretrain=True)
    return CFPL(clip, config.get("model") or {}, finetune_image_encoder=bool(config.get("finetune_image_encoder", False)))


def checkpoint_meta(config: dict[str, Any], clip=None) -> dict[str, Any]:
    """What a checkpoint records besides its weights; with ``clip``, also ``clip_embedded`` (the CLIP's
    architecture, :func:`vislab.models.embedded_clip_spec`), so loading needs neither the CLIP files nor the toy cache."""
    from vislab.models import embedded_clip_spec

    extra = {} if clip is None else {"clip_embedded": embedded_clip_spec(clip, config["clip"])}
    return {**extra, "format": "cfpl-v1", "clip": dict(config["clip"]), "model": dict(config.get("model") or {}),
            "finetune_image_encoder": bool(config.get("finetune_image_encoder", False))}


def loaded_clip(meta: dict[str, Any], clip_path: str | None = None):
    """The CLIP of a trained checkpoint, built without training anything: the architecture recorded in
    ``clip_embedded`` (random weights, the checkpoint's own weights go over them); else the recorded
    ``clip`` spec, where a toy CLIP must already be in the cache (an error saying how to make it otherwise). ``clip_path`` replaces the recorded
    CLIP location (for a checkpoint moved between machines)."""
    from vislab.models import create_clip

    if clip_path is not None:
        return create_clip({**dict(meta["clip"]), "source": "path", "path": clip_path})
    if meta.get("clip_embedded") and meta.get("clip_weights") is not False:
        return create_clip(meta["clip_embedded"])
    return create_clip(meta["clip"])


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
    cfg = {"clip": meta["clip"], "model": meta.get("cfpl", meta.get("model")), "finetune_image_encoder": meta.get("finetune_image_encoder", False)}
    state = {k[len("model."):]: v for k, v in ck["state_dict"].items() if k.startswith("model.")}
    clip = loaded_clip(meta, clip_path)
    # the CLIP gets the checkpoint's weights before the model is built on it: what the model derives from
    # the CLIP at construction (prompt token embeddings, teacher text features) then matches training
    clip_state = {k[len("clip."):]: v for k, v in state.items() if k.startswith("clip.")}
    if clip_state:
        try:
            clip.load_state_dict(clip_state, strict=False)
        except RuntimeError as e:
            raise InputError(path, f"checkpoint does not fit the recorded CLIP ({str(e).splitlines()[0][:200]})") from None
    model = build_model(cfg, clip=clip)
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


def load(run_dir: str | Path, checkpoint: str = "last.ckpt"):
    """The trained :class:`cfpl.model.CFPL` of a ``cfpl`` output folder (``checkpoints/<checkpoint>``),
    eval mode, CPU; ``vislab.models.load_run``'s hook. Its ``checkpoint_meta`` attribute holds the checkpoint's
    record (``threshold``, ``threshold_rule``, ``clip``, ...). The checkpoint holds every weight and the
    CLIP's architecture, so neither the original CLIP files nor the toy cache are needed; nothing is trained."""
    from vislab.io import require_dir

    model, meta = load_checkpoint(require_dir(run_dir, "cfpl run folder") / "checkpoints" / checkpoint)
    model.checkpoint_meta = meta
    return model.cpu()
