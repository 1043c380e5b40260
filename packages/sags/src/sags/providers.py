"""Mask providers: (image_u8 [H,W,3], points_xy [P,2], labels [P] (1 pos / 0 neg), view_id) -> bool [H,W].

``sam``: Segment Anything through ``segment_anything.SamPredictor`` (loaded lazily, from a local
``.pth``; one cached embedding per view; a fixed multimask output index k in every view).
``oracle``: the ground-truth instance under the first positive click (synthetic scene, tests).
``floodfill``: 4-connected region growing on the rendered colours (chromaticity distance < 0.08,
brightness ratio in [0.5, 2] against the seeds' mean colour).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor
from vislab.errors import InputError, VislabError
from vislab.io import load_torch


class MaskProvider(Protocol):
    """The interface every provider implements."""

    def __call__(
        self, image: np.ndarray, points: np.ndarray, labels: np.ndarray, view_id: int
    ) -> np.ndarray: ...


class OracleProvider:
    """Ground-truth instance maps [V, H, W] (−1 background): the instance under the first positive point."""

    def __init__(self, instance_maps: Tensor):
        self.inst = instance_maps

    def __call__(self, image: np.ndarray, points: np.ndarray, labels: np.ndarray, view_id: int) -> np.ndarray:
        m = self.inst[view_id]
        H, W = m.shape
        pos = points[labels == 1]
        x, y = int(np.clip(np.floor(pos[0, 0]), 0, W - 1)), int(np.clip(np.floor(pos[0, 1]), 0, H - 1))
        k = int(m[y, x])
        if k < 0:
            return np.zeros((H, W), bool)
        return (m == k).numpy()


class FloodFillProvider:
    """Region growing from the positive points on the rendered RGB (negative points' regions removed).

    A 4-neighbour joins the region when its chromaticity (rgb / Σrgb) is within ``chroma_tol`` of the
    neighbour it grows from and its brightness ratio to it is in ``ratio_range`` (local steps, so
    smooth shading is crossed), and its chromaticity stays within ``seed_tol`` of the seeds' (so a
    slow drift cannot leak into another object). Pixels darker than ``min_brightness`` never join.
    """

    def __init__(
        self,
        chroma_tol: float = 0.08,
        ratio_range: tuple[float, float] = (0.5, 2.0),
        seed_tol: float = 0.25,
        min_brightness: float = 0.06,
    ):
        self.tol, self.ratio, self.seed_tol, self.min_b = chroma_tol, ratio_range, seed_tol, min_brightness

    def _grow(self, img: Tensor, seeds: list[tuple[int, int]]) -> Tensor:
        H, W, _ = img.shape
        bright = img.sum(-1)
        chroma = img / bright.clamp(min=1e-6)[..., None]
        ys = torch.tensor([s[1] for s in seeds])
        xs = torch.tensor([s[0] for s in seeds])
        ok = ((chroma - chroma[ys, xs].mean(0)).norm(dim=-1) < self.seed_tol) & (bright > self.min_b)

        def link(a: tuple[slice, slice], b: tuple[slice, slice]) -> Tensor:
            ratio = bright[b] / bright[a].clamp(min=1e-6)
            return (
                ((chroma[a] - chroma[b]).norm(dim=-1) < self.tol)
                & (ratio >= self.ratio[0])
                & (ratio <= self.ratio[1])
            )

        s_, a0, a1 = slice(None), slice(0, -1), slice(1, None)
        down, right = (
            link((a0, s_), (a1, s_)),
            link((s_, a0), (s_, a1)),
        )  # pixel -> its lower / right neighbour
        region = torch.zeros(H, W, dtype=torch.bool)
        region[ys, xs] = True
        region &= ok
        while True:
            g = region.clone()
            g[1:] |= region[:-1] & down
            g[:-1] |= region[1:] & down
            g[:, 1:] |= region[:, :-1] & right
            g[:, :-1] |= region[:, 1:] & right
            g &= ok
            if torch.equal(g, region):
                return region
            region = g

    def __call__(self, image: np.ndarray, points: np.ndarray, labels: np.ndarray, view_id: int) -> np.ndarray:
        img = torch.from_numpy(np.asarray(image)).float() / 255.0
        H, W, _ = img.shape
        pix = [
            (int(np.clip(np.floor(p[0]), 0, W - 1)), int(np.clip(np.floor(p[1]), 0, H - 1))) for p in points
        ]
        pos = [p for p, lab in zip(pix, labels) if lab == 1]
        neg = [p for p, lab in zip(pix, labels) if lab == 0]
        region = torch.zeros(H, W, dtype=torch.bool)
        for s in pos:
            region |= self._grow(img, [s])
        for s in neg:
            region &= ~self._grow(img, [s])
        return region.numpy()


def tiny_sam(seed: int = 0):
    """A tiny random SAM (≈73k parameters) for plumbing tests."""
    from functools import partial

    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(seed)
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=128,
            patch_size=16,
            embed_dim=32,
            depth=1,
            num_heads=2,
            mlp_ratio=2,
            out_chans=32,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=False,
            window_size=0,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=32, image_embedding_size=(8, 8), input_image_size=(128, 128), mask_in_chans=4
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=32, mlp_dim=64, num_heads=2),
            transformer_dim=32,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


def load_sam(
    model_type: str = "vit_b", checkpoint: str | Path | None = None, device: str | torch.device = "cpu"
):
    """SAM from a local ``.pth`` (``sam_vit_b_01ec64.pth`` …); ``model_type='tiny'`` builds the random test SAM."""
    try:
        from segment_anything import sam_model_registry
    except ImportError as e:  # pragma: no cover - dependency declared
        raise VislabError(
            f"segment_anything cannot be imported ({e}); pip install segment-anything"
        ) from None
    if model_type == "tiny":
        sam = tiny_sam()
        if checkpoint is not None:
            _load_state(sam, checkpoint)
        return sam.to(device)
    if model_type not in sam_model_registry:
        raise VislabError(f"unknown SAM model type {model_type!r} (vit_b, vit_l, vit_h, tiny)")
    if checkpoint is None:
        raise VislabError(
            "--sam-checkpoint is required for the SAM provider (a local sam_vit_*.pth; nothing is downloaded)"
        )
    sam = sam_model_registry[model_type](checkpoint=None)
    _load_state(sam, checkpoint)
    return sam.to(device).eval()


def _load_state(sam: torch.nn.Module, checkpoint: str | Path) -> None:
    state = load_torch(checkpoint, "SAM checkpoint")
    if not isinstance(state, dict):
        raise InputError(checkpoint, "not a SAM state dict")
    try:
        sam.load_state_dict(state)
    except RuntimeError as e:
        raise InputError(
            checkpoint, f"checkpoint does not match this SAM architecture ({str(e).splitlines()[0][:160]})"
        ) from None


class SamProvider:
    """SAM with a fixed multimask output index k in every view (official code: k = 2).

    ``k=None``: chosen as the argmax of the predicted scores in the first (reference) view.
    Image embeddings are cached per view (``features``, ``original_size``, ``input_size``).
    """

    def __init__(self, sam, k: int | None = None):
        from segment_anything import SamPredictor

        self.predictor = SamPredictor(sam)
        self.k = k
        self.cache: dict[int, tuple] = {}

    def __call__(self, image: np.ndarray, points: np.ndarray, labels: np.ndarray, view_id: int) -> np.ndarray:
        p = self.predictor
        if view_id in self.cache:
            p.features, p.original_size, p.input_size = self.cache[view_id]
            p.is_image_set = True
        else:
            p.set_image(np.ascontiguousarray(image, dtype=np.uint8))
            self.cache[view_id] = (p.features, p.original_size, p.input_size)
        with torch.no_grad():
            masks, scores, _ = p.predict(
                point_coords=np.asarray(points, np.float32),
                point_labels=np.asarray(labels, np.int64),
                multimask_output=True,
            )
        if self.k is None:
            self.k = int(np.argmax(scores))
        return masks[self.k].astype(bool)


def make_provider(
    name: str,
    instance_maps: Tensor | None = None,
    sam_type: str = "vit_b",
    sam_checkpoint: str | None = None,
    sam_k: int | None = None,
    device: str = "cpu",
) -> MaskProvider:
    """Build a provider by name: ``sam``, ``oracle`` (needs ground-truth instance maps) or ``floodfill``."""
    if name == "oracle":
        if instance_maps is None:
            raise VislabError(
                "the oracle provider needs ground-truth instance maps (synthetic scene only); use --provider sam or floodfill"
            )
        return OracleProvider(instance_maps)
    if name == "floodfill":
        return FloodFillProvider()
    if name == "sam":
        return SamProvider(load_sam(sam_type, sam_checkpoint, device), sam_k)
    raise VislabError(f"unknown mask provider {name!r} (sam, oracle, floodfill)")
