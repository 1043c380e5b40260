"""despoofdiff: De-spoofing diffusion: modeling spoof noise for face anti-spoofing (arXiv:2401.08275)."""

__version__ = "0.1.0"


def load(run_dir, checkpoint: str | None = None):
    """The trained de-spoofing pipeline of a ``despoofdiff`` output folder (``vislab.models.load_run``'s hook).

    Returns the :class:`despoofdiff.module.ClassifierModule` that ``despoofdiff predict`` loads: the two-stream
    classifier with both frozen diffusion models and the dev-set EER threshold, in eval mode on the CPU.
    ``checkpoint``: a file name under ``<run_dir>/checkpoints`` (default ``last.ckpt``, else ``despoofdiff.ckpt``).
    Nothing is trained."""
    from pathlib import Path

    from vislab.io import require_dir

    from despoofdiff.commands import load_module

    d = require_dir(run_dir, "despoofdiff run folder")
    return load_module(Path(d) / "checkpoints" / checkpoint if checkpoint else d).cpu().eval()
