"""Posed-image data: the synthetic scene of the default, COLMAP ``sparse/0`` + images, NeRF ``transforms.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from vislab.errors import InputError
from vislab.io import load_image, require_dir, require_file

from sags.cameras import Camera, load_transforms_json, normalize, read_colmap


@dataclass
class PosedImages:
    """Images [V, H, W, 3] in [0, 1] with their cameras; optional SfM points for initialisation."""

    images: Tensor
    cameras: list[Camera]
    points: np.ndarray | None = None
    colors: np.ndarray | None = None
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)


class ViewDataset(Dataset):
    """Items: {image [H, W, 3], viewmat [4, 4], K [3, 3], index}."""

    def __init__(self, images: Tensor, cameras: list[Camera], indices: list[int] | None = None):
        self.images, self.cameras = images, cameras
        self.indices = list(range(len(cameras))) if indices is None else list(indices)
        if not self.indices:
            raise InputError("<dataset>", "no views to train on (empty dataset)")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        j = self.indices[i]
        c = self.cameras[j]
        return {"image": self.images[j], "viewmat": c.viewmat, "K": c.K, "index": j}


class SplatDataModule(pl.LightningDataModule):
    """Train on all views but every ``test_every``-th (gsplat holds out every 8th); validate on those.

    ``val`` may supply separate validation views (the synthetic scene's test ring).
    """

    def __init__(
        self, data: PosedImages, test_every: int = 8, val: PosedImages | None = None, num_workers: int = 0
    ):
        super().__init__()
        self.data, self.val_data, self.test_every, self.num_workers = data, val, test_every, num_workers

    def setup(self, stage: str | None = None) -> None:
        n = len(self.data.cameras)
        if self.val_data is not None:
            self.train_set = ViewDataset(self.data.images, self.data.cameras)
            self.val_set = ViewDataset(self.val_data.images, self.val_data.cameras)
        else:
            te = [i for i in range(n) if self.test_every > 0 and i % self.test_every == 0]
            tr = [i for i in range(n) if i not in te] or list(range(n))
            self.train_set = ViewDataset(self.data.images, self.data.cameras, tr)
            self.val_set = ViewDataset(self.data.images, self.data.cameras, te or tr[:1])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=1, shuffle=True, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=1, shuffle=False, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()


def _read_images(cams: list[Camera], factor: int, white_bg: bool) -> Tensor:
    from PIL import Image

    imgs = []
    for c in cams:
        if c.image_path is None:
            raise InputError(c.name, "camera has no image file")
        rgba = load_image(c.image_path, "RGBA")
        if factor > 1:
            h, w = rgba.shape[0] // factor, rgba.shape[1] // factor
            rgba = np.asarray(Image.fromarray(rgba).resize((w, h), Image.BICUBIC))
        x = torch.from_numpy(rgba).float() / 255.0
        rgb, a = x[..., :3], x[..., 3:]
        if white_bg:
            rgb = rgb * a + (1 - a)
        imgs.append(rgb)
    shapes = {tuple(i.shape) for i in imgs}
    if len(shapes) != 1:
        raise InputError(cams[0].image_path or "images", f"images differ in size {sorted(shapes)}")
    return torch.stack(imgs)


def _rescale(cams: list[Camera], images: Tensor) -> list[Camera]:
    """Cameras resized to the images actually loaded.

    K is scaled by (W_img / W_cam, H_img / H_cam) whatever the folder is called: LLFF's ``images_4``
    holds downsampled images while ``sparse/0`` keeps the full-resolution intrinsics, and ``factor``
    downsamples again on load. Scaling fx and cx together keeps the principal point in the image.
    """
    out = []
    H, W = images.shape[1:3]
    for c in cams:
        K = c.K.clone()
        K[0] *= W / c.width
        K[1] *= H / c.height
        out.append(Camera(c.viewmat, K, W, H, c.name, c.image_path))
    return out


_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}


def _image_files(d: Path) -> list[str]:
    return sorted(
        str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES
    )


def _match_images(cams: list[Camera], root: Path, img_dir: Path) -> list[Camera]:
    """Point every camera at its file in ``img_dir``.

    Downsampled folders (LLFF ``images_4``) may rename the files that COLMAP registered (another
    extension, or ``image000.png`` for ``IMG_4026.JPG``). As gsplat's COLMAP parser does, files are
    then matched by position: the sorted COLMAP image folder (``root/images``, else the registered
    names) against the sorted files of ``img_dir``, when both hold the same number of images.
    """
    if all(c.image_path is not None and c.image_path.is_file() for c in cams):
        return cams
    files = _image_files(img_dir)
    src = root / "images"
    ref = _image_files(src) if src.is_dir() and src.resolve() != img_dir.resolve() else []
    if len(ref) != len(files):
        ref = sorted(c.image_path.relative_to(img_dir).as_posix() for c in cams if c.image_path is not None)
    if not files or len(ref) != len(files):
        return cams
    to_file = dict(zip(ref, files))
    out = []
    for c in cams:
        rel = c.image_path.relative_to(img_dir).as_posix() if c.image_path is not None else None
        path = img_dir / to_file[rel] if rel in to_file else c.image_path
        out.append(Camera(c.viewmat, c.K, c.width, c.height, c.name, path))
    return out


def load_colmap_scene(
    root: str | Path, images: str = "images", factor: int = 1, normalize_world: bool = True
) -> PosedImages:
    """``root/sparse/0`` + ``root/<images>``; cameras and points normalised (see :func:`normalize`)."""
    r = require_dir(root, "COLMAP scene folder")
    sparse = r / "sparse" / "0"
    if not sparse.is_dir():
        sparse = r / "sparse"
    img_dir = require_dir(r / images, "image folder")
    cams, xyz, rgb = read_colmap(sparse, img_dir)
    cams = _match_images(cams, r, img_dir)
    missing = [c.image_path for c in cams if c.image_path is None or not c.image_path.is_file()]
    if len(missing) == len(cams):
        raise InputError(
            img_dir,
            "none of the images named in the COLMAP model exist here (a view list with no image files)",
        )
    if missing:
        raise InputError(missing[0], "image named in the COLMAP model is missing")
    if normalize_world:
        cams, xyz, _ = normalize(cams, xyz)
    imgs = _read_images(cams, factor, white_bg=False)
    return PosedImages(imgs, _rescale(cams, imgs), xyz, rgb, (0.0, 0.0, 0.0))


def load_blender_scene(transforms: str | Path, factor: int = 1, white_background: bool = True) -> PosedImages:
    """NeRF-synthetic ``transforms_train.json`` (RGBA composited over white, as 3DGS does)."""
    p = require_file(transforms, "transforms.json")
    cams = load_transforms_json(p)
    missing = [c.image_path for c in cams if c.image_path is None or not c.image_path.is_file()]
    if len(missing) == len(cams):
        raise InputError(p, "none of the listed image files exist (a view list with no image files)")
    if missing:
        raise InputError(missing[0], "image listed in transforms.json is missing")
    imgs = _read_images(cams, factor, white_background)
    bg = (1.0, 1.0, 1.0) if white_background else (0.0, 0.0, 0.0)
    return PosedImages(imgs, _rescale(cams, imgs), None, None, bg)
