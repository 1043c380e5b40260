"""An ImageNet-style initialisation for the toy backbone.

The paper starts every visual encoder from an ImageNet-trained ResNet18: generic object recognition on
other images, with no sign or sentence in sight. The toy analogue trains the ``tiny_cnn`` backbone to
name the shape (4 classes) and the hue (6 bins) of single static objects of random size, position, hue,
saturation and brightness on random grey backgrounds — object recognition on still images, without the
sign lexicon's colours, its motions or any sentence — and keeps the backbone weights. Seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from flallm.model import MEAN, STD, TinyCNN
from flallm.world import SHAPES, _mask

HUE_BINS = 6


def object_images(n: int, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` still images (n, 3, size, size) in [0, 1] of one object each, its shape index and hue bin."""
    import colorsys

    import numpy as np

    rng = np.random.default_rng(seed)
    x = np.empty((n, size, size, 3), np.float32)
    shape = rng.integers(0, len(SHAPES), n)
    hue = rng.random(n)
    for i in range(n):
        img = np.full((size, size, 3), rng.uniform(0.0, 0.35), np.float32)
        r = size * rng.uniform(0.12, 0.3)
        cx, cy = rng.uniform(r, size - r, 2)
        img[_mask(SHAPES[shape[i]], cx, cy, size, r)] = colorsys.hsv_to_rgb(hue[i], rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0))
        x[i] = np.clip(img + rng.normal(0, 0.05, img.shape), 0, 1)
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(shape), torch.from_numpy((hue * HUE_BINS).astype(np.int64) % HUE_BINS)


def pretrain_tiny_backbone(width: int = 16, size: int = 32, n_images: int = 1024, epochs: int = 10, seed: int = 0,
                           batch_size: int = 64, lr: float = 3e-3) -> tuple[dict[str, torch.Tensor], float]:
    """TinyCNN state dict trained on shape + colour classification of toy-world objects, and its held-out
    accuracy (mean of shape and colour accuracy, on 256 unseen images)."""
    def data(n: int, s: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, shape, hue = object_images(n, size, s)
        return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1), shape, hue

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        x, ys, yc = data(n_images, 10_000 + seed)
        net = TinyCNN(width)
        head = nn.Linear(net.out_dim, len(SHAPES) + HUE_BINS)
        opt = torch.optim.Adam([*net.parameters(), *head.parameters()], lr=lr)
        net.train()
        for _ in range(epochs):
            for idx in torch.randperm(len(x)).split(batch_size):
                logits = head(net(x[idx]))
                loss = nn.functional.cross_entropy(logits[:, : len(SHAPES)], ys[idx]) + \
                    nn.functional.cross_entropy(logits[:, len(SHAPES):], yc[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        net.eval()
        xv, vs, vc = data(256, 20_000 + seed)
        with torch.no_grad():
            lv = head(net(xv))
        acc = 0.5 * float((lv[:, : len(SHAPES)].argmax(1) == vs).float().mean() + (lv[:, len(SHAPES):].argmax(1) == vc).float().mean())
    return net.state_dict(), 100.0 * acc


def save_pretrained_tiny_backbone(path: str | Path, **kw) -> float:
    """Train (see :func:`pretrain_tiny_backbone`), save the state dict to ``path``, return the accuracy."""
    sd, acc = pretrain_tiny_backbone(**kw)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)
    return acc
