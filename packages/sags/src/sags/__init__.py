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


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)


__all__ = ["__version__", *_LAZY]
