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
            "learn": {"iters": 15, **learn}, "eval": {"seeds": [0, 1], "ablation_no_semantic": False}}


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
    assert m["metric"] == "judge_clip_score_same_seed" and m["prompts"] == 2
    assert "fresh_seeds" in m and (tmp_path / "run" / "toy00" / "incantation.txt").is_file()
    assert set(m["neutral_control"]) == {"same_seed", "fresh_seeds"}
    assert all(abs(m["neutral_control"][k]["clip"]) <= 100 for k in ("same_seed", "fresh_seeds"))  # finite, a cosine x 100
    assert len(list((tmp_path / "run" / "checkpoints").glob("*.safetensors"))) == 2


def test_learn_command_and_bad_input(tiny_dirs, tmp_path):
    out = tmp_path / "learn"
    args = ["learn", "--model", tiny_dirs["sd"], "--guidance-clip", tiny_dirs["guide"], "--judge-clip", tiny_dirs["judge"],
            "--prompt", "a red circle and a blue square", "--out", str(out), "--seeds", "0",
            "--learn.iters", "5", "--sampling.steps", "4", "--sampling.k_c", "1", "--sampling.k_f", "2"]
    r = run_module("incantations", args, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().startswith("a red circle and a blue square")
    assert (out / "before_after.png").is_file() and (out / "attention.png").is_file()
    bad = [
        (["learn", "--model", str(tmp_path / "nope"), "--guidance-clip", tiny_dirs["guide"], "--judge-clip", tiny_dirs["judge"],
          "--prompt", "x"], "nope"),
        (["learn", "--model", tiny_dirs["sd"], "--guidance-clip", tiny_dirs["guide"], "--judge-clip", tiny_dirs["guide"],
          "--prompt", "x"], "must differ from the guidance CLIP"),
        (["--prompts.source", str(tmp_path / "missing.jsonl")], "missing.jsonl"),
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
            "--eval.seeds", "[0]", "--eval.ablation_no_semantic", "false", "--trainer.strategy", "ddp", "--trainer.devices", "2",
            "--trainer.accelerator", "cpu", "--output-dir", str(out)]
    r = run_module("incantations", args, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert read_metrics(out)["package"] == "incantations"
