"""Session-scoped pytest fixtures for the toy world's pretrained models (fast preset).

Use them from a package's ``conftest.py``::

    from vislab.testing.toy import toy_clip_fast, toy_sd_fast  # noqa: F401

``toy_clip_fast`` / ``toy_sd_fast`` are the paths of the cached fast-preset toy CLIP (a Hugging
Face CLIP folder) and toy SD (a diffusers folder). They are pretrained once per cache
(``$VISLAB_CACHE`` or ``~/.cache/vislab``; a few tens of seconds on an idle 2-core CPU) and
reused afterwards, also by concurrent test sessions.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def toy_clip_fast() -> Path:
    """Path of the fast-preset toy CLIP folder (cached)."""
    from vislab.toy import toy_clip

    return toy_clip("fast")


@pytest.fixture(scope="session")
def toy_sd_fast(toy_clip_fast: Path) -> Path:
    """Path of the fast-preset toy Stable Diffusion folder (cached; text encoder = ``toy_clip_fast``)."""
    from vislab.toy import toy_sd

    return toy_sd("fast")
