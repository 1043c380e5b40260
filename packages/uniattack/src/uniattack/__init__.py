"""uniattack: UniAttackDetection: unified physical-digital face attack detection (arXiv:2401.17699)."""

__version__ = "0.1.0"

__all__ = ["load"]


def load(run_dir, **kwargs):
    """The trained model of a ``uniattack`` output folder (``vislab.models.load_run``'s hook): see :func:`uniattack.build.load`."""
    from uniattack.build import load as _load

    return _load(run_dir, **kwargs)
