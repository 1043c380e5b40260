"""The pixel-level oracle reads rendered toy scenes right and cannot be fooled by grey images."""

import numpy as np
import pytest
from vislab.toy import oracle, world


def test_parse_prompt_grammar_counts_and_concepts():
    reqs = oracle.parse_prompt("a small red striped circle on the left and two blue stars")
    assert [(r["shape"], r["color"], r["texture"], r["size"], r["position"], r["count"]) for r in reqs] == [
        ("circle", "red", "striped", "small", "left", 1),
        ("star", "blue", None, None, None, 2),
    ]
    reqs = oracle.parse_prompt("a <toy> at the top", concepts={"<toy>": {"color": "pink", "shape": "star"}})
    assert reqs == [{"shape": "star", "color": "pink", "texture": None, "size": None, "position": "top", "count": 1}]
    assert oracle.parse_prompt("a photo of nothing") == []


def test_oracle_reads_rendered_scenes():
    ds = world.ToyDataset(30, seed=11, split="all", max_objects=2)
    ok_shape = ok_color = ok_pos = total = present = 0
    for i in range(len(ds)):
        spec = ds.spec(i)
        img, _ = world.render_scene(spec, 32)
        res = oracle.score(img, world.full_caption(spec["objects"]))[0]
        present += res["all_present"]
        for r in res["requested"]:
            total += 1
            if r["matched"]:
                o = res["objects"][r["matched"][0]]
                ok_shape += o["shape"] == r["shape"]
                ok_color += o["color"] == r["color"]
                ok_pos += o["position"] == r["position"]
    assert ok_shape / total >= 0.9 and ok_color / total >= 0.95 and ok_pos / total >= 0.9
    assert present / len(ds) >= 0.88


def test_oracle_scores_missing_objects_and_wrong_colours():
    spec = {"background": {"kind": "plain", "level": 0.4, "delta": 0.0, "seed": 0},
            "objects": [world._sample_object(np.random.default_rng(0), "left", None)]}
    spec["objects"][0].update(shape="square", color="red", texture="solid")
    img, _ = world.render_scene(spec, 32)
    good, dropped, recolour = oracle.score(np.stack([img] * 3), [
        "a red square", "a red square and a blue circle", "a green square"])
    assert good["all_present"] and good["alignment"] == 1.0 and good["count_ok"] and good["dropped"] == 0
    assert dropped["dropped"] == 1 and not dropped["all_present"] and dropped["objects_present"] == 0.5
    assert recolour["dropped"] == 0 and recolour["requested"][0]["shape_present"] and not recolour["all_present"]
    assert recolour["alignment"] == pytest.approx(0.5)  # shape right, colour wrong
    grey = np.full((1, 3, 32, 32), 0.4, dtype=np.float32)
    none = oracle.score(grey, "a red square")[0]
    assert none["n_objects"] == 0 and none["alignment"] == 0.0 and none["dropped"] == 1
    s = oracle.summarize([good, dropped, recolour, none])
    assert s["drop_rate"] == 0.5 and s["images"] == 4
    with pytest.raises(ValueError):
        oracle.score(grey, ["a", "b"])


def test_failure_mode_prompts_and_concept_images():
    from vislab.toy import failures

    prompts = failures.two_object_prompts(40, seed=3)
    assert len(set(prompts)) > 30
    for p in prompts:
        a, b = oracle.parse_prompt(p)
        assert a["shape"] != b["shape"] and a["color"] != b["color"]
        assert (a["color"], a["shape"]) not in world.HELD_OUT and (b["color"], b["shape"]) not in world.HELD_OUT
    imgs = failures.concept_images(4)
    assert imgs.shape == (4, 3, 32, 32)
    for r in oracle.score(imgs, "a pink star"):  # the oracle sees the concept in its own training images
        assert r["objects"][0]["color"] == "pink"
