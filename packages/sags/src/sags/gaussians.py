"""3D Gaussians as a dict of pre-activation tensors, and the INRIA PLY layout (graphdeco-inria/gaussian-splatting ``save_ply``).

Tensors (gsplat's naming): ``means`` [N, 3], ``scales`` [N, 3] (log), ``quats`` [N, 4] (w, x, y, z,
unnormalised), ``opacities`` [N] (logit), ``sh0`` [N, 1, 3], ``shN`` [N, K−1, 3] with K = (D+1)².

INRIA PLY: binary little-endian ``vertex`` element, float32, properties in the order
x y z nx ny nz f_dc_0..2 f_rest_0..3(K−1)−1 opacity scale_0..2 rot_0..3. ``f_rest`` is channel-major
(index c·(K−1)+j), so shN = f_rest.reshape(N, 3, K−1).transpose(1, 2). Rows are never filtered or
reordered (labels are matched by index).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from vislab.errors import InputError
from vislab.io import atomic_path, require_file

from sags.render import C0

KEYS = ("means", "scales", "quats", "opacities", "sh0", "shN")
Splats = dict[str, Tensor]


def sh_degree_of(splats: Splats) -> int:
    """D such that (D+1)² = 1 + shN.shape[1]."""
    return int(round(math.sqrt(1 + splats["shN"].shape[1]))) - 1


def rgb_to_sh(rgb: Tensor) -> Tensor:
    """f_dc = (rgb − 0.5) / C0."""
    return (rgb - 0.5) / C0


def sh_to_rgb(sh: Tensor) -> Tensor:
    """rgb = 0.5 + C0 · f_dc."""
    return 0.5 + C0 * sh


def activated(splats: Splats) -> dict[str, Tensor]:
    """means, quats (raw), scales = exp, opacities = sigmoid, colors = cat(sh0, shN) [N, K, 3]."""
    return {
        "means": splats["means"],
        "quats": splats["quats"],
        "scales": torch.exp(splats["scales"]),
        "opacities": torch.sigmoid(splats["opacities"]),
        "colors": torch.cat([splats["sh0"], splats["shN"]], 1),
    }


def subset(splats: Splats, idx: Tensor) -> Splats:
    """Rows ``idx`` (bool mask or indices) of every tensor."""
    return {k: v[idx] for k, v in splats.items()}


def concat(a: Splats, b: Splats) -> Splats:
    """Rows of ``a`` then rows of ``b``."""
    return {k: torch.cat([a[k], b[k]]) for k in KEYS}


def pad_sh(splats: Splats, degree: int = 3) -> Splats:
    """The splats with zero SH bands up to ``degree`` (same colours): INRIA's loader reads only PLYs
    of its configured degree (3 by default)."""
    K = (degree + 1) ** 2 - 1
    n = splats["shN"].shape[1]
    if n >= K:
        return splats
    out = dict(splats)
    out["shN"] = torch.cat([splats["shN"], splats["shN"].new_zeros(len(splats["shN"]), K - n, 3)], 1)
    return out


def _property_names(K: int) -> list[str]:
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(3 * (K - 1))]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return names


def save_ply(splats: Splats, path: str | Path) -> Path:
    """Write the INRIA PLY (atomically: an existing file is untouched if writing fails)."""
    from plyfile import PlyData, PlyElement

    s = {k: v.detach().cpu().float() for k, v in splats.items()}
    N = s["means"].shape[0]
    K = 1 + s["shN"].shape[1]
    f_rest = s["shN"].transpose(1, 2).reshape(N, -1)
    cols = [
        s["means"],
        torch.zeros(N, 3),
        s["sh0"].reshape(N, 3),
        f_rest,
        s["opacities"].reshape(N, 1),
        s["scales"],
        s["quats"],
    ]
    data = torch.cat(cols, 1).numpy().astype("<f4")
    names = _property_names(K)
    arr = np.empty(N, dtype=[(n, "<f4") for n in names])
    for i, n in enumerate(names):
        arr[n] = data[:, i]
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(arr, "vertex")], text=False, byte_order="<").write(str(tmp))
    return Path(path)


def load_ply(path: str | Path) -> Splats:
    """Read an INRIA PLY; missing properties or a wrong SH count raise :class:`InputError`."""
    from plyfile import PlyData

    p = require_file(path, "PLY file")
    try:
        ply = PlyData.read(str(p))
    except Exception as e:  # noqa: BLE001 - any parse error is a bad file
        raise InputError(p, f"cannot read PLY ({e.__class__.__name__}: {str(e)[:150]})") from None
    if "vertex" not in [el.name for el in ply.elements]:
        raise InputError(p, "PLY has no 'vertex' element (not a 3D Gaussian splat file)")
    v = ply["vertex"]
    props = [pr.name for pr in v.properties]
    required = [
        "x",
        "y",
        "z",
        "f_dc_0",
        "f_dc_1",
        "f_dc_2",
        "opacity",
        "scale_0",
        "scale_1",
        "scale_2",
        "rot_0",
        "rot_1",
        "rot_2",
        "rot_3",
    ]
    missing = [n for n in required if n not in props]
    if missing:
        raise InputError(p, f"PLY lacks required Gaussian properties {missing} (INRIA 3DGS layout expected)")
    n_rest = sum(1 for n in props if n.startswith("f_rest_"))
    if n_rest % 3 != 0 or round(math.sqrt(n_rest // 3 + 1)) ** 2 != n_rest // 3 + 1:
        raise InputError(
            p, f"PLY has {n_rest} f_rest properties; expected 3((D+1)²−1) = 0, 9, 24 or 45 for SH degree D"
        )
    K = n_rest // 3 + 1
    want_rest = {f"f_rest_{i}" for i in range(n_rest)}
    if not want_rest.issubset(props):
        raise InputError(p, "PLY f_rest properties are not numbered 0..n−1")
    if len(v.data) == 0:
        raise InputError(p, "PLY holds no Gaussians (0 vertices)")

    def col(names: list[str]) -> Tensor:
        return torch.from_numpy(np.stack([np.asarray(v[n], dtype=np.float32) for n in names], 1))

    N = len(v.data)
    rest = col([f"f_rest_{i}" for i in range(n_rest)]) if n_rest else torch.zeros(N, 0)
    return {
        "means": col(["x", "y", "z"]),
        "scales": col(["scale_0", "scale_1", "scale_2"]),
        "quats": col(["rot_0", "rot_1", "rot_2", "rot_3"]),
        "opacities": col(["opacity"])[:, 0].contiguous(),
        "sh0": col(["f_dc_0", "f_dc_1", "f_dc_2"]).reshape(N, 1, 3),
        "shN": rest.reshape(N, 3, K - 1).transpose(1, 2).contiguous(),
    }


def random_splats(
    n: int, sh_degree: int = 3, extent: float = 1.0, generator: torch.Generator | None = None
) -> Splats:
    """Random Gaussians for tests and benchmarks."""
    g = generator
    K = (sh_degree + 1) ** 2
    return {
        "means": (torch.rand(n, 3, generator=g) * 2 - 1) * extent,
        "scales": torch.log(torch.rand(n, 3, generator=g) * 0.03 * extent + 0.005 * extent),
        "quats": torch.randn(n, 4, generator=g),
        "opacities": torch.logit(torch.rand(n, generator=g) * 0.9 + 0.05),
        "sh0": rgb_to_sh(torch.rand(n, 1, 3, generator=g)),
        "shN": torch.randn(n, K - 1, 3, generator=g) * 0.05,
    }
