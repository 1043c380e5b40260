"""sags: SA-GS, Segment Anything in 3D Gaussians (Hu et al., arXiv:2401.17857).

Public API: the renderer (:func:`rasterize`), the 3DGS fit (:class:`GaussianSplatModule`,
:class:`SplatDataModule`), PLY I/O (:func:`load_ply`, :func:`save_ply`) and the segmentation
(:func:`segment_gaussians`, mask providers).
"""

__version__ = "0.1.0"

_LAZY = {
    "rasterize": "sags.render",
    "GaussianSplatModule": "sags.module",
    "SplatDataModule": "sags.data",
    "load_ply": "sags.gaussians",
    "save_ply": "sags.gaussians",
    "segment_gaussians": "sags.segment",
    "SegmentConfig": "sags.segment",
    "make_provider": "sags.providers",
    "load_cameras": "sags.cameras",
}


def load(run_dir, segmented: bool = False):
    """The fitted Gaussians of a ``sags`` output folder (``vislab.models.load_run``'s hook): ``point_cloud.ply``,
    or with ``segmented=True`` ``segmentation/scene.ply`` (the scene after Gaussian Decomposition, whose rows
    match ``segmentation/labels.npy``). Cameras: ``load_cameras(run_dir / "cameras.json")``."""
    from pathlib import Path

    from vislab.io import require_dir

    from sags.gaussians import load_ply

    d = require_dir(Path(run_dir), "sags run folder")
    return load_ply(d / "segmentation" / "scene.ply" if segmented else d / "point_cloud.ply")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)


__all__ = ["__version__", "load", *_LAZY]
