"""cfpl: CFPL-FAS: Class Free Prompt Learning for generalizable face anti-spoofing (arXiv:2403.14333)."""

__version__ = "0.1.0"

__all__ = ["load"]


def load(run_dir, **kwargs):
    """The trained model of a ``cfpl`` output folder (``vislab.models.load_run``'s hook): see :func:`cfpl.build.load`."""
    from cfpl.build import load as _load

    return _load(run_dir, **kwargs)
