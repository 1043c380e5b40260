"""Formulas on small fixed inputs, checked against hand computation."""

import math

import numpy as np
import pytest
import torch
from gal4p import losses, metrics
from gal4p import uncertainty as U
from gal4p.data import personalize_prompt
from gal4p.directions import (
    OBJECT_DIRECTIONS,
    STYLE_DIRECTIONS,
    direction_prompts,
    direction_templates,
    style_descriptor,
)
from vislab.errors import VislabError


def test_overfit_flag_is_not_strict():
    sim_p = torch.tensor([0.5, 0.3, 0.2])
    sim_c = torch.tensor([[0.4, 0.1], [0.3, 0.0], [0.1, 0.25]])
    # 0.5 > 0.4 -> 0; 0.3 <= 0.3 -> 1 (ties count as overfit); 0.2 <= 0.25 -> 1
    assert U.overfit_flags(sim_p, sim_c).tolist() == [0.0, 1.0, 1.0]
    assert U.overfit_rate(U.overfit_flags(sim_p, sim_c)) == pytest.approx(2 / 3)
    # the best caption similarity starts from 0 (official script): all captions negative -> compare with 0
    neg = torch.tensor([[-0.3, -0.2], [-0.3, -0.2], [-0.3, -0.2]])
    assert U.overfit_flags(torch.tensor([-0.1, 0.0, 0.05]), neg).tolist() == [1.0, 1.0, 0.0]


def test_binary_entropy_by_hand():
    assert U.binary_entropy(0.0) == 0.0 and U.binary_entropy(1.0) == 0.0
    assert U.binary_entropy(0.5) == pytest.approx(math.log(2))
    assert U.binary_entropy(0.3) == pytest.approx(-(0.3 * math.log(0.3) + 0.7 * math.log(0.7)))
    assert U.binary_entropy(0.3) == pytest.approx(0.6108643, abs=1e-6)


def test_representative_is_first_maximum():
    assert U.representative_index(torch.tensor([0.1, 0.7, 0.7, 0.2])) == 1


def test_openness_includes_zero_uncertainties():
    assert U.openness([math.log(2), 0.0, 0.0, math.log(2)], 0.005) == pytest.approx(0.005 * math.log(2) / 2)
    assert U.openness([], 1.0) == 0.0
    assert U.sample_weight(True, 0.0017) == pytest.approx(0.0017) and U.sample_weight(False, 0.0017) == 1.0


def test_uncertainty_selection_and_early_stop():
    h = [0.2, 0.0, 0.6, 0.6, 0.1]
    # argsort reversed: ties go to the later index
    assert U.select_uncertainty(h, 3) == [3, 2, 0]
    assert U.select_uncertainty([0.0, 0.5, 0.0], 2) is None
    assert U.select_uncertainty([0.0, 0.5, 0.0], 1) == [1]


def test_random_selection():
    picked = U.select_random(5, 3, np.random.default_rng(0))
    assert len(set(picked)) == 3 and all(0 <= i < 5 for i in picked)
    with pytest.raises(VislabError):
        U.select_random(2, 3, np.random.default_rng(0))


def test_weighted_loss_by_hand():
    pred = torch.zeros(2, 1, 1, 2)
    target = torch.tensor([[[[1.0, 1.0]]], [[[2.0, 0.0]]]])  # per-sample MSE: 1.0 and 2.0
    w = torch.tensor([0.5, 2.0])
    assert losses.weighted_mse(pred, target, w).item() == pytest.approx((0.5 * 1 + 2 * 2) / 2)
    loss, parts = losses.dreambooth_loss(pred, target, w, pred, target * 0, prior_weight=3.0)
    assert loss.item() == pytest.approx(2.25) and parts["prior_loss"].item() == 0.0
    # the class image inherits its instance's weight
    loss, parts = losses.dreambooth_loss(pred, target, torch.tensor([0.0, 1.0]), pred, target, prior_weight=1.0)
    assert loss.item() == pytest.approx(1.0 + 1.0)
    assert losses.weighted_mse(pred, target, torch.zeros(2)).item() == 0.0


def test_metrics_by_hand():
    img = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    txt = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    assert metrics.text_alignment(img, txt) == pytest.approx(2.5 * (1 / math.sqrt(2) + 1) / 2)
    refs = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert metrics.image_alignment(img, refs) == pytest.approx(0.0)
    caps = torch.tensor([[1.0, 0.0]])
    # image 0: s(x,p)=0.707 < s(x,c)=1 -> overfit; image 1: 1 > 0 -> not
    assert metrics.overfitting_rate(img, txt, caps) == pytest.approx(0.5)
    # strict here: equal similarities do not count
    assert metrics.overfitting_rate(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]), caps) == 0.0


def test_directions_and_descriptors():
    assert len(OBJECT_DIRECTIONS) == 18 and len(STYLE_DIRECTIONS) == 18
    assert direction_prompts([OBJECT_DIRECTIONS[0]], "a <cute-cat> cat") == ["a <cute-cat> cat in a workshop"]
    assert direction_prompts([STYLE_DIRECTIONS[0]], "in watercolor painting style") == ["A tie in watercolor painting style"]
    assert style_descriptor("A cat in the garden in watercolor painting style") == "in watercolor painting style"
    assert direction_templates("auto", "style") == list(STYLE_DIRECTIONS)
    with pytest.raises(VislabError):
        style_descriptor("A cat")
    with pytest.raises(VislabError):
        direction_templates(["no placeholder"], "object")
    with pytest.raises(VislabError):
        direction_templates("nope", "object")


def test_personalize_prompt():
    assert personalize_prompt("cat swimming in a pool", "cat", "<cute-cat>") == "<cute-cat> cat swimming in a pool"
    assert personalize_prompt("Photo of cat", "cat", "<id>") == "Photo of <id> cat"
    assert personalize_prompt("a dog", "cat", "<id>") == "a dog <id> cat"


def test_evaluation_seed_is_held_out():
    from gal4p.train import check_held_out, learned_seeds
    from vislab.run import load_preset

    for name in ("default", "paper"):
        cfg = load_preset("gal4p", name)
        check_held_out(cfg)
        assert int(cfg["eval"]["seed"]) not in learned_seeds(cfg)
    cfg = load_preset("gal4p")
    assert int(cfg["eval"]["images_per_prompt"]) * 8 >= 64  # 8 toy evaluation prompts: at least 64 paired images
    for bad in (0, 1, 12345):
        with pytest.raises(VislabError):
            check_held_out({**cfg, "eval": {**cfg["eval"], "seed": bad}})


def test_oracle_reads_the_concept_from_the_pixels():
    """The identifier stands for the concept's colour and shape: a rendered pink star at the asked position scores 1,
    a grey image 0, a pink star where a second object was asked for half the attributes of the prompt."""
    from gal4p.train import oracle_scores
    from vislab.toy.world import POSITIONS, SIZES, render_scene

    bg = {"kind": "plain", "level": 0.4, "delta": 0.0, "seed": 0}
    star = {"shape": "star", "color": "pink", "texture": "solid", "size": "large", "position": "left",
            "cx": POSITIONS["left"][0], "cy": POSITIONS["left"][1], "radius": SIZES["large"]}
    img = torch.from_numpy(render_scene({"background": bg, "objects": [star]}, 32)[0])[None]
    concepts = {"sks": {"color": "pink", "shape": "star"}}
    r = oracle_scores(torch.cat([img, torch.full_like(img, 0.4), img]),
                      ["a large sks star on the left", "a sks star", "a sks star and a cyan square"], concepts)
    assert r["per_image"]["oracle_present"] == [1.0, 0.0, 1.0]
    assert r["per_image"]["oracle"][:2] == [1.0, 0.0] and r["per_image"]["oracle"][2] == pytest.approx(0.5)
