"""The active-learning arithmetic of GAL (paper Sec. 3.3-3.4), as pure functions on fixed inputs.

Notation: for direction ``d`` with prompt ``p_d`` the round's model draws ``x_1..x_n``; ``s`` is CLIP
cosine similarity; ``C`` the reference captions (object: the ``plain_prompt`` values of init.json;
style: the init ``instance_prompt``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from vislab.errors import VislabError


def overfit_flags(sim_prompt: torch.Tensor, sim_refs: torch.Tensor) -> torch.Tensor:
    """Overfitting flag ``o(x) = 1[s(x, p_d) <= max(0, max_{c in C} s(x, c))]``.

    ``sim_prompt`` (n,) = s(x_k, p_d); ``sim_refs`` (n, |C|) = s(x_k, c). A sample is "not overfit" only
    when it is strictly closer to its direction prompt than to every reference caption. The running maximum
    over the captions starts from 0, as in the official query script (``max_sim = 0`` before its loop over
    the captions), so a sample whose prompt similarity is not positive always counts as overfit.
    Returns (n,) float.
    """
    return (sim_prompt <= sim_refs.max(dim=-1).values.clamp_min(0.0)).float()


def overfit_rate(flags: torch.Tensor) -> float:
    """``r_d = mean_k o(x_k)``."""
    return float(flags.float().mean())


def binary_entropy(rate: float) -> float:
    """``H_d = -r ln r - (1 - r) ln(1 - r)`` (natural log); 0 when ``r`` is 0 or 1."""
    if rate <= 0.0 or rate >= 1.0:
        return 0.0
    return float(-rate * math.log(rate) - (1.0 - rate) * math.log(1.0 - rate))


def representative_index(sim_prompt: torch.Tensor) -> int:
    """Exploitation: ``x*_d = argmax_k s(x_k, p_d)`` (the first maximum)."""
    return int(torch.argmax(sim_prompt))


def openness(uncertainties: Sequence[float], lam: float) -> float:
    """Balance weight ``Omega_r = lambda * mean_d H_d`` over all directions queried this round (zeros included)."""
    if len(uncertainties) == 0:
        return 0.0
    return float(lam * float(np.mean(np.asarray(uncertainties, dtype=np.float64))))


def select_uncertainty(uncertainties: Sequence[float], k: int) -> list[int] | None:
    """Indices of the ``k`` most uncertain directions, or ``None`` (= stop the loop) when fewer than ``k``
    directions have ``H_d > 0``. Order: numpy's argsort reversed (the official choice; ties therefore go
    to the later index)."""
    h = np.asarray(uncertainties, dtype=np.float64)
    if int((h > 0).sum()) < k:
        return None
    return [int(i) for i in np.argsort(h)[::-1][:k]]


def select_random(n_directions: int, k: int, rng: np.random.Generator) -> list[int]:
    """``k`` directions drawn without replacement (the random-query baseline)."""
    if k > n_directions:
        raise VislabError(f"cannot select {k} of {n_directions} remaining directions")
    return [int(i) for i in rng.permutation(n_directions)[:k]]


def sample_weight(balance: bool, omega: float) -> float:
    """Loss weight of a sample accepted this round: ``Omega_r`` with balance, else 1."""
    return float(omega) if balance else 1.0
