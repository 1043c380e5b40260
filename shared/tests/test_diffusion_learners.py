"""vislab.diffusion.learners: the DreamBooth / textual-inversion / LoRA learners shared by gal4p and compinv."""

from __future__ import annotations

import pytest
import torch
from vislab.diffusion import (
    DreamBoothLearner,
    TextualInversionLearner,
    dreambooth_loss,
    load_personalized,
    load_sd,
    tiny_sd,
    weighted_mse,
)
from vislab.errors import InputError


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    return tiny_sd(seed=0).save(tmp_path_factory.mktemp("learners") / "sd")


def _batch(n=2, prior=True):
    g = torch.Generator().manual_seed(0)
    b = {"pixel_values": torch.rand(n, 3, 32, 32, generator=g) * 2 - 1, "prompt": ["a <s> star"] * n, "weight": torch.ones(n)}
    if prior:
        b["class_pixel_values"] = torch.rand(n, 3, 32, 32, generator=g) * 2 - 1
        b["class_prompt"] = ["a star"] * n
    return b


def test_losses_by_hand():
    pred, target = torch.ones(2, 1, 1, 2), torch.zeros(2, 1, 1, 2)
    assert weighted_mse(pred, target, torch.tensor([1.0, 3.0])).item() == pytest.approx(2.0)
    loss, parts = dreambooth_loss(pred, target, torch.ones(2), pred * 2, target, prior_weight=0.5)
    assert loss.item() == pytest.approx(1.0 + 0.5 * 4.0) and set(parts) == {"instance_loss", "prior_loss"}


def test_denoise_splits_instance_and_prior_and_loss_matches(sd_dir):
    learner = DreamBoothLearner(load_sd(sd_dir), lr=1e-3)
    torch.manual_seed(0)
    d = learner.denoise(_batch())
    assert d["pred"].shape == d["prior_pred"].shape == (2, 4, 8, 8) and d["ids"].shape[0] == 2
    torch.manual_seed(0)
    loss, parts = learner.loss(_batch())
    expected = weighted_mse(d["pred"], d["target"], torch.ones(2)) + weighted_mse(d["prior_pred"], d["prior_target"], torch.ones(2))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert "prior_loss" in parts
    names = [n for n, p in learner.named_parameters() if p.requires_grad]
    assert names and all(n.startswith("unet.") for n in names)


def test_save_load_with_model_file_and_bad_folder(sd_dir, tmp_path):
    learner = TextualInversionLearner(load_sd(sd_dir), placeholder="<s>", init_word="star", lr=0.1, model_file="x_model.json")
    opt = learner.configure_optimizers()
    for _ in range(2):
        opt.zero_grad()
        learner.loss(_batch(prior=False))[0].backward()
        opt.step()
        learner.on_train_batch_end(None, None, 0)
    learner.save_model(tmp_path / "m", str(sd_dir))
    assert (tmp_path / "m" / "x_model.json").is_file()
    sd2, info = load_personalized(tmp_path / "m", model_file="x_model.json")
    assert info["learner"] == "textual_inversion"
    row = learner.text_encoder.get_input_embeddings().weight[learner.placeholder_ids[0]]
    assert torch.allclose(sd2.text_encoder.get_input_embeddings().weight[sd2.tokenizer.convert_tokens_to_ids("<s>")], row)
    with pytest.raises(InputError, match="no personalized_model.json"):
        load_personalized(tmp_path / "m")


def test_textual_inversion_rows_train_like_the_full_matrix(sd_dir):
    """The (n, D) row parameter gets the same AdamW update as the diffusers example's full (V, D) matrix with the
    other rows restored, and no optimiser state of vocabulary size exists."""
    import copy

    learner = TextualInversionLearner(load_sd(sd_dir), placeholder="<s>", init_word="star", lr=0.1)
    te_ref = copy.deepcopy(learner.text_encoder)
    te_ref.get_input_embeddings()._forward_hooks.clear()  # the copy must not splice the learner's rows
    w_ref = te_ref.get_input_embeddings().weight
    w_ref.requires_grad_(True)
    pid = learner.placeholder_ids
    opt, opt_ref = learner.configure_optimizers(), torch.optim.AdamW([w_ref], lr=0.1, weight_decay=1e-2)
    orig = w_ref.detach().clone()
    ids = learner.tokenize(["a <s> star"] * 2)
    for _ in range(2):
        loss = learner.text_encoder(ids)[0].pow(2).mean()
        loss_ref = te_ref(ids)[0].pow(2).mean()
        assert loss.item() == pytest.approx(loss_ref.item(), rel=1e-5)
        loss.backward()
        loss_ref.backward()
        opt.step(), opt_ref.step()
        opt.zero_grad(), opt_ref.zero_grad()
        learner.on_train_batch_end(None, None, 0)
        keep = torch.ones(w_ref.shape[0], dtype=torch.bool)
        keep[pid] = False
        with torch.no_grad():
            w_ref[keep] = orig[keep]
    w = learner.text_encoder.get_input_embeddings().weight
    assert torch.allclose(w, w_ref, atol=1e-3) and not torch.equal(w[pid], orig[pid])
    state = [t for s in opt.state.values() for t in s.values() if torch.is_tensor(t)]
    assert max(t.numel() for t in state) == len(pid) * w.shape[1]
