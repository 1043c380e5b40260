"""Learning, the run contract, the learn command, bad input, DDP."""

from __future__ import annotations

import pytest
import torch
from incantations.guidance import probe
from incantations.learner import LearnConfig, learn
from vislab.testing import assert_run_contract, make_run, read_metrics, run_module


def _cfg(tiny_dirs, **learn):
    return {"model": {"sd": tiny_dirs["sd"], "guidance_clip": tiny_dirs["guide"], "judge_clip": tiny_dirs["judge"]},
            "prompts": {"limit": 2}, "sampling": {"steps": 4, "k_c": 1, "k_f": 2},
            "learn": {"iters": 15, **learn}, "eval": {"seeds": [7, 8], "ablation_no_semantic": False}}


def test_loss_drops_best_iterate_and_frozen_weights_unchanged(frozen):
    fr, _ = frozen
    before = {k: v.clone() for k, v in fr.sd.unet.state_dict().items()}
    before_te = {k: v.clone() for k, v in fr.sd.text_encoder.state_dict().items()}
    g = probe(fr, "a red circle and a blue square", seed=0, steps=4, cfg=3.0, k_c=1, k_f=2)
    for mode in ("soft", "hard"):
        lr = 5e-3 if mode == "soft" else 0.1
        learner = learn(fr, g, LearnConfig(k=3, mode=mode, iters=30, lr=lr, steps=4, k_c=1, k_f=2, cfg=3.0))
        losses = [h["loss"] for h in learner.history]
        scores = [h["select"] for h in learner.history]
        assert learner.best_score == max(s for s in scores if s == s) == scores[learner.best_iter]
        if mode == "soft":
            assert min(losses[-5:]) < losses[0]
        assert learner.prompt_embeds().shape[1] == fr.sd.tokenizer.model_max_length
    assert all(torch.equal(before[k], v) for k, v in fr.sd.unet.state_dict().items())
    assert all(torch.equal(before_te[k], v) for k, v in fr.sd.text_encoder.state_dict().items())


def test_selection_and_sparsity_use_the_projected_prompt(frozen):
    """The best iterate is the one whose projected prompt scores highest at the fixed latents; the sparsity term is
    computed on the projected tokens; the written text tokenises to exactly the evaluated ids."""
    from incantations.learner import IncantationLearner

    fr, _ = frozen
    g = probe(fr, "a red circle and a blue square", seed=0, steps=4, cfg=3.0, k_c=1, k_f=2)
    cfg = LearnConfig(k=3, mode="hard", iters=12, lr=0.1, steps=4, k_c=1, k_f=2, cfg=3.0, select_seeds=(0, 5), select_step=1)
    learner = learn(fr, g, cfg)
    assert learner.selection_score(learner.prompt.table[learner.best_ids]) == pytest.approx(learner.best_score, abs=1e-6)
    z = learner._select_z.clone()
    learner.selection_score(learner.prompt.table[learner.best_ids])
    assert torch.equal(z, learner._select_z)  # fixed latents
    fresh = IncantationLearner(fr, g, cfg)
    proj = fresh.prompt.table[fresh.prompt.project()]
    assert fresh.terms()["sp"].item() == pytest.approx((proj - fresh.prompt.e_neutral).abs().mean().item(), abs=1e-7)
    text = learner.text()
    emb, ids = fr.embed(g.prompt, learner.best_slots(), learner.slot_id)
    ids = ids[0].clone()
    n = len(fr.sd.tokenizer(g.prompt, add_special_tokens=False).input_ids)
    ids[1 + n : 1 + n + 3] = learner.best_ids
    assert fr.tokenize(text)[0].tolist() == ids.tolist()
    assert torch.allclose(fr.table[fr.tokenize(text)[0]][None].float(), emb, atol=1e-6)


def test_text_image_term_has_gradient(frozen):
    from incantations.learner import IncantationLearner

    fr, _ = frozen
    g = probe(fr, "a red circle", seed=0, steps=4, cfg=3.0, k_c=1, k_f=2)
    learner = IncantationLearner(fr, g, LearnConfig(k=2, mode="soft", iters=4, steps=4, k_c=1, k_f=2, cfg=3.0, weights={"ti": 0.8}))
    terms = learner.terms()
    terms["ti"].backward()
    assert learner.prompt.P.grad is not None and learner.prompt.P.grad.abs().sum() > 0


def test_embedded_default_contract(tiny_dirs, tmp_path):
    from incantations.train import train

    run = make_run("incantations", tmp_path / "run", _cfg(tiny_dirs))
    m = train(run)
    assert_run_contract(tmp_path / "run")
    assert m["metric"] == "judge_clip_score_held_out" and m["prompts"] == 2
    assert m["eval_seeds"] == [7, 8] and not set(m["eval_seeds"]) & set(m["learned_seeds"]) and m["pairs"] == 4
    assert (tmp_path / "run" / "toy00" / "incantation.txt").is_file()
    assert set(m["held_out"]) == {"before", "after", "neutral"}
    assert all(abs(m["held_out"][k]["clip"]) <= 100 for k in ("before", "after", "neutral"))  # finite, a cosine x 100
    st = m["paired"]["judge"]["clip"]
    assert set(st) == {"learned_vs_original", "learned_vs_neutral", "neutral_vs_original"}
    lo = st["learned_vs_original"]
    assert lo["n"] == 4 and lo["mean_a"] == pytest.approx(m["after"]) and lo["mean_b"] == pytest.approx(m["before"])
    assert lo["ci_low"] <= lo["diff"] <= lo["ci_high"]
    assert len(list((tmp_path / "run" / "checkpoints").glob("*.safetensors"))) == 2


def test_learn_command_and_bad_input(tiny_dirs, tmp_path):
    out = tmp_path / "learn"
    args = ["learn", "--model", tiny_dirs["sd"], "--guidance-clip", tiny_dirs["guide"], "--judge-clip", tiny_dirs["judge"],
            "--prompt", "a red circle and a blue square", "--out", str(out), "--seeds", "7",
            "--learn.iters", "5", "--sampling.steps", "4", "--sampling.k_c", "1", "--sampling.k_f", "2"]
    r = run_module("incantations", args, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().startswith("a red circle and a blue square")
    assert (out / "before_after.png").is_file() and (out / "attention.png").is_file()
    from safetensors.torch import load_file

    emb = load_file(str(out / "prompt_embeds.safetensors"))["prompt_embeds"]
    assert emb.dim() == 3 and emb.shape[0] == 1  # (1, L, D): what pipe(prompt_embeds=...) takes
    (tmp_path / "afile").write_text("x")
    bad = [
        (args[:9] + ["--out", str(tmp_path / "afile")], "existing file"),
        (args, "already holds a learned incantation"),
        (["learn", "--model", str(tmp_path / "nope"), "--guidance-clip", tiny_dirs["guide"], "--judge-clip", tiny_dirs["judge"],
          "--prompt", "x"], "nope"),
        (["learn", "--model", tiny_dirs["sd"], "--guidance-clip", tiny_dirs["guide"], "--judge-clip", tiny_dirs["guide"],
          "--prompt", "x"], "must differ from the guidance CLIP"),
        (["--prompts.source", str(tmp_path / "missing.jsonl")], "missing.jsonl"),
        (["--eval.seeds", "[3, 100]"], "learned-on seeds"),
        (["learn", "--model", tiny_dirs["sd"], "--guidance-clip", tiny_dirs["guide"], "--judge-clip", tiny_dirs["judge"],
          "--prompt", "x", "--seeds", "0"], "learned-on seeds"),
    ]
    for a, msg in bad:
        r = run_module("incantations", a, timeout=600)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_help():
    r = run_module("incantations", ["--help"])
    assert r.returncode == 0 and "incantations learn" in r.stdout


@pytest.mark.slow
def test_ddp_two_cpu_processes(tiny_dirs, tmp_path):
    out = tmp_path / "ddp"
    args = ["--model.sd", tiny_dirs["sd"], "--model.guidance_clip", tiny_dirs["guide"], "--model.judge_clip", tiny_dirs["judge"],
            "--prompts.limit", "1", "--learn.iters", "6", "--sampling.steps", "4", "--sampling.k_c", "1", "--sampling.k_f", "2",
            "--eval.seeds", "[7]", "--eval.ablation_no_semantic", "false", "--trainer.strategy", "ddp", "--trainer.devices", "2",
            "--trainer.accelerator", "cpu", "--output-dir", str(out)]
    r = run_module("incantations", args, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert read_metrics(out)["package"] == "incantations"


def test_held_out_seeds_are_disjoint_from_learned_seeds():
    """The probe's seed and the best-iterate selection seeds are learned on; the shipped presets evaluate elsewhere,
    and an overlapping evaluation is refused."""
    from incantations.train import check_held_out, learned_seeds
    from vislab.errors import ConfigError
    from vislab.run import load_preset

    for name in ("default", "paper"):
        cfg = load_preset("incantations", name)
        seeds = [int(s) for s in cfg["eval"]["seeds"]]
        assert not set(seeds) & learned_seeds(cfg) and len(seeds) * (cfg["prompts"]["limit"] or 1) >= 64 or len(seeds) >= 5
        check_held_out(cfg, seeds)
    cfg = load_preset("incantations")
    assert learned_seeds(cfg) == {0, 100, 101}
    for bad in ([0, 1], [1000, 101], []):
        with pytest.raises(ConfigError):
            check_held_out(cfg, bad)


def test_oracle_scores_read_the_rendered_objects():
    """The oracle numbers in metrics.json come from the pixels: a rendered scene of the prompt scores 1, a scene that
    drops the second object 0.5 on presence, an empty (grey) image 0."""
    from incantations.train import oracle_scores
    from vislab.toy.world import full_caption, render_scene, sample_spec

    spec = next(s for s in (sample_spec(3, i, max_objects=2) for i in range(200)) if len(s["objects"]) == 2)
    rec = {"prompt": full_caption([{**o, "size": o["size"]} for o in spec["objects"]])}
    plain = {"kind": "plain", "level": 0.4, "delta": 0.0, "seed": 0}

    def img(objs):
        return torch.from_numpy(render_scene({"background": plain, "objects": objs}, 32)[0])[None]

    assert oracle_scores(rec, img(spec["objects"]))["oracle_present"] == 1.0
    assert oracle_scores(rec, img(spec["objects"]))["oracle"] >= 0.8
    assert oracle_scores(rec, img(spec["objects"][:1]))["oracle_present"] == 0.5
    assert oracle_scores(rec, torch.full((1, 3, 32, 32), 0.4)) == {"oracle": 0.0, "oracle_present": 0.0}


def test_threshold_calibration_rule_and_disjoint_data():
    """Youden's J on hand-made scores; calibration prompts avoid the evaluation prompts; calibration seeds that are
    evaluation seeds are refused."""
    from incantations.calibrate import calibrate, calibration_prompts, youden_threshold
    from incantations.prompts import shipped
    from vislab.errors import ConfigError

    # absent units score 0.1, 0.2, 0.35; present 0.3, 0.4, 0.5: best cut between 0.2 and 0.3 (J = 2/3), AUC 8/9
    r = youden_threshold([0.1, 0.2, 0.35, 0.3, 0.4, 0.5], [True, True, True, False, False, False])
    assert r["threshold"] == pytest.approx(0.25) and r["youden_j"] == pytest.approx(2 / 3) and r["auc"] == pytest.approx(8 / 9)
    ev = {rec["prompt"] for rec in shipped("toy")}
    cal = calibration_prompts(40, ev)
    assert len(cal) == 40 == len(set(cal)) and not set(cal) & ev
    with pytest.raises(ConfigError):
        calibrate(None, {"eval": {"seeds": [2000, 5]}, "sampling": {}}, ev, 2, seeds=(2000, 2001))
