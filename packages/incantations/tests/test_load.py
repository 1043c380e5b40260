"""``vislab.models.load_run`` reads a run's learned incantations through ``incantations.load``."""

from __future__ import annotations

import pytest
import torch


def test_load_run_reads_learned_prompts(tmp_path):
    from safetensors.torch import save_file
    from vislab.errors import InputError
    from vislab.models import load_run

    out = tmp_path / "runs" / "incantations" / "20260101-000000"
    (out / "checkpoints").mkdir(parents=True)
    with pytest.raises(InputError, match="no learned incantations"):
        load_run(out)
    g = torch.Generator().manual_seed(0)
    saved = {}
    for pid, prompt in (("p000", "a red car and a white sheep"), ("p001", "a blue star")):
        emb, slots = torch.randn(1, 8, 16, generator=g), torch.randn(3, 16, generator=g)
        save_file({"prompt_embeds": emb, "slots": slots}, str(out / "checkpoints" / f"{pid}.safetensors"),
                  metadata={"prompt": prompt, "incantation": f"{prompt}, glowing", "mode": "hard"})
        saved[pid] = (prompt, emb, slots)
    got = load_run(out)  # the package comes from the folder's place under runs/incantations/
    assert sorted(got) == ["p000", "p001"]
    for pid, (prompt, emb, slots) in saved.items():
        assert got[pid]["prompt"] == prompt and got[pid]["incantation"] == f"{prompt}, glowing" and got[pid]["mode"] == "hard"
        assert torch.equal(got[pid]["prompt_embeds"], emb) and torch.equal(got[pid]["slots"], slots)
    (out / "checkpoints" / "p002.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(InputError, match="p002"):
        load_run(out)
