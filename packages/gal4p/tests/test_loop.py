"""The active-learning loop: selection modes, early stop, direction memory, persisted state and resume."""

import shutil

import pytest
import pytorch_lightning as pl
import torch
from gal4p.data import read_records, reference_captions
from gal4p.loop import GALLoop, LoopState
from vislab.errors import VislabError
from vislab.run import load_preset


def make_loop(out, sd_dir, concept, behaviour="random", resume=False, scorer_cls=None, **al):
    cfg = load_preset("gal4p")
    cfg["dreambooth"]["prior_preservation"] = False
    cfg["batch_size"] = 1
    cfg["al"].update({"total_rounds": 3, "num_directions": 4, "samples_per_direction": 3, "topk": 1, "query_steps": 2,
                      "balance": True, "openness_lambda": 0.005})
    cfg["al"].update(al)
    recs = read_records(concept, "object")
    caps = reference_captions(recs, "object")
    calls = []

    def make_trainer(r):
        calls.append(r)
        return pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)

    loop = GALLoop(cfg, out, str(sd_dir), recs, caps, "a sks star", scorer_cls(behaviour, caps), make_trainer,
                   identifier="sks", class_word="star", resume=resume, log=lambda m: None)
    return loop, calls


def test_uncertainty_loop_state_and_files(tiny_sd_dir, concept, tmp_path, fake_scorer):
    loop, calls = make_loop(tmp_path, tiny_sd_dir, concept, scorer_cls=fake_scorer)
    st = loop.run()
    assert calls == [1, 2, 3] and st.trained == [1, 2, 3] and st.queried == [1, 2]
    assert len(st.used) == 2 and len(set(st.used)) == 2  # a used direction is never queried again
    assert st.queries["2"]["directions"] == [i for i in range(4) if i != st.used[0]]
    assert len(st.added) == 2
    for r, rec in zip((1, 2), st.added):
        q = st.queries[str(r)]
        j = q["directions"].index(rec["direction"])
        assert q["uncertainty"][j] == max(q["uncertainty"])  # the most uncertain direction was taken
        assert rec["weight"] == pytest.approx(q["openness"]) == pytest.approx(0.005 * sum(q["uncertainty"]) / len(q["uncertainty"]))
        assert (tmp_path / "object_pos" / f"R{r}_p{rec['direction']}_{q['representative'][j]}.png").is_file()
    assert len(list((tmp_path / "object_all").glob("R1_p*_*.png"))) == 4 * 3
    assert (tmp_path / "rounds" / "3" / "model" / "gal4p_model.json").is_file()
    saved = LoopState.load(tmp_path / "state.json")
    assert saved.used == st.used and saved.openness == st.openness


def test_early_stop_when_everything_overfits(tiny_sd_dir, concept, tmp_path, fake_scorer):
    loop, calls = make_loop(tmp_path, tiny_sd_dir, concept, scorer_cls=fake_scorer, behaviour="overfit")
    st = loop.run()
    assert st.stopped and st.final_round == 1 and calls == [1] and st.added == []
    assert all(h == 0.0 for h in st.queries["1"]["uncertainty"])


def test_random_selection_with_balance_gives_weight_zero(tiny_sd_dir, concept, tmp_path, fake_scorer):
    loop, _ = make_loop(tmp_path, tiny_sd_dir, concept, scorer_cls=fake_scorer, selection="random", total_rounds=2)
    st = loop.run()
    assert st.queries["1"]["n"] == 1 and len(st.added) == 1
    assert st.added[0]["weight"] == 0.0  # n = 1 => every H_d = 0 => Omega = 0 (official behaviour)


def test_resume_continues_at_the_interrupted_round(tiny_sd_dir, concept, tmp_path, fake_scorer, monkeypatch):
    loop, calls = make_loop(tmp_path, tiny_sd_dir, concept, scorer_cls=fake_scorer)
    real = GALLoop.train_round

    def interrupted(self, r):
        if r == 2:
            raise KeyboardInterrupt
        return real(self, r)

    monkeypatch.setattr(GALLoop, "train_round", interrupted)
    with pytest.raises(KeyboardInterrupt):
        loop.run()
    first_used = list(loop.state.used)
    monkeypatch.setattr(GALLoop, "train_round", real)
    loop2, calls2 = make_loop(tmp_path, tiny_sd_dir, concept, scorer_cls=fake_scorer, resume=True)
    assert loop2.state.trained == [1] and loop2.state.queried == [1] and loop2.state.used == first_used
    st = loop2.run()
    assert calls2 == [2, 3]  # round 1 is neither retrained nor re-queried
    assert st.used[0] == first_used[0] and len(set(st.used)) == 2 and st.trained == [1, 2, 3]


def test_human_selection(tiny_sd_dir, concept, tmp_path, fake_scorer):
    loop, _ = make_loop(tmp_path, tiny_sd_dir, concept, scorer_cls=fake_scorer, selection="human", total_rounds=2)
    st = loop.run()
    assert st.awaiting_human == 1 and st.added == []
    loop2, calls = make_loop(tmp_path, tiny_sd_dir, concept, scorer_cls=fake_scorer, selection="human", total_rounds=2, resume=True)
    with pytest.raises(VislabError, match="no accepted images"):
        loop2.run()
    (tmp_path / "object_pos").mkdir(exist_ok=True)
    shutil.copy(tmp_path / "object_all" / "R1_p2_1.png", tmp_path / "object_pos" / "R1_p2_1.png")
    loop3, calls = make_loop(tmp_path, tiny_sd_dir, concept, scorer_cls=fake_scorer, selection="human", total_rounds=2, resume=True)
    st = loop3.run()
    assert calls == [2] and st.used == [2] and st.added[0]["instance_prompt"] == "a sks star at the top"
    assert st.added[0]["instance_data_path"].endswith("R1_p2_1.png")


def test_topk_larger_than_directions_left(tiny_sd_dir, concept, tmp_path, fake_scorer):
    with pytest.raises(VislabError, match="anchor directions"):
        make_loop(tmp_path, tiny_sd_dir, concept, scorer_cls=fake_scorer, topk=3, total_rounds=3)


def test_style_mode_without_prior(tiny_sd_dir, concept, tmp_path, fake_scorer):
    import json

    from gal4p.data import concept_descriptor

    rec = json.loads(concept.read_text())[0]
    init = tmp_path / "init.json"
    init.write_text(json.dumps([{"instance_prompt": "A star in sks flat style", "instance_data_path": rec["instance_data_path"]}]))
    recs = read_records(init, "style")
    caps = reference_captions(recs, "style")
    desc = concept_descriptor(recs, "style", None, None)
    assert caps == ["A star in sks flat style"] and desc == "in sks flat style"
    cfg = load_preset("gal4p")
    cfg["mode"] = "style"
    cfg["batch_size"] = 2
    cfg["al"].update({"total_rounds": 2, "directions": "toy_style", "num_directions": 3, "samples_per_direction": 2,
                      "topk": 1, "query_steps": 2, "selection": "random"})
    loop = GALLoop(cfg, tmp_path / "al", str(tiny_sd_dir), recs, caps, desc, fake_scorer("random", caps),
                   lambda r: pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                                        enable_progress_bar=False), log=lambda m: None)
    st = loop.run()
    assert st.trained == [1, 2] and st.added[0]["instance_prompt"].endswith(" in sks flat style")
    assert (tmp_path / "al" / "style_add.json").is_file()


def test_mid_round_resume_picks_the_matching_last_ckpt(tiny_sd_dir, concept, tmp_path, fake_scorer):
    import torch

    ckpt = tmp_path / "last.ckpt"
    loop, _ = make_loop(tmp_path / "al", tiny_sd_dir, concept, scorer_cls=fake_scorer, resume=True)
    loop.last_ckpt = ckpt
    assert loop._resume_ckpt(2) is None  # no checkpoint yet
    torch.save({"gal4p": {"round": 2, "learner": "dreambooth", "tag": "al"}}, ckpt)
    assert loop._resume_ckpt(2) == str(ckpt) and loop._resume_ckpt(1) is None
    loop.resume = False
    assert loop._resume_ckpt(2) is None  # a fresh run never continues an old round


def test_queries_one_prompt_per_call_within_max_batch_with_vae_slicing(tiny_sd_dir):
    """10 samples for 3 prompts with max_batch 4: calls of (1 prompt, 4 | 4 | 2 images), VAE slicing on."""
    from gal4p.query import generate
    from vislab.diffusion import load_sd

    sd = load_sd(tiny_sd_dir)
    calls = []
    real = sd.pipeline

    def spy(**kw):
        pipe = real(**kw)
        inner = pipe.__call__

        class Wrapped:
            vae = pipe.vae

            def __call__(self, prompts, **a):
                calls.append((list(prompts), a["num_images_per_prompt"], bool(getattr(pipe.vae, "use_slicing", False))))
                return inner(prompts, **{**a, "num_inference_steps": 1})

        return Wrapped()

    sd.pipeline = spy
    imgs = generate(sd, ["a", "b", "c"], 10, steps=1, guidance=1.0, generator=torch.Generator().manual_seed(0), max_batch=4)
    assert imgs.shape[0] == 30
    assert [(p, n) for p, n, _ in calls] == [([x], n) for x in "abc" for n in (4, 4, 2)]
    assert all(s for _, _, s in calls)
