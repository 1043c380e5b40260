"""flallm bench: our stage-2 training step (:class:`flallm.module.Stage2Module`: cached sign features of the frozen
visual encoder -> LLM-adapter -> mBART, label-smoothed generation loss, Adam over the LLM and the adapter) against a
plain encoder-decoder translation step of the same size (the standard transformers recipe: a linear input projection,
``MBartForConditionalGeneration(inputs_embeds=..., labels=...)`` with its built-in loss, AdamW), same features and
target sentences, interleaved in one process.

    python packages/flallm/bench/bench.py [--reps 5] [--quick] [--device cuda] [--json out.json]

Work: the embedded default's LLM (random-init mBART, d 48, 2+2 layers) on a batch of 16 clips, 8 sign features
each, 5-word sentences. The profiler's top 5 ops of both sides follow the row. On CUDA the steps run under bf16
autocast. The paper-size configuration (mBART-large) is ``flallm bench``-independent: on a GPU, pass the paper
preset's ``model.llm`` to a run.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from vislab.bench import autocast, cli, compare, profile_top, quick  # noqa: E402


def stage2_row(dev: torch.device, reps: int) -> dict:
    from flallm.module import Stage2Module
    from flallm.tokenizer import SignTokenizer
    from transformers import MBartForConditionalGeneration
    from vislab.run import load_preset

    cfg = load_preset("flallm", "default")
    batch, frames, words = (4, 4, 3) if quick() else (16, 8, 5)
    vocab = [f"w{i}" for i in range(13)]
    tok = SignTokenizer.build_word_level([" ".join(vocab)], "de_DE")
    g = torch.Generator().manual_seed(0)
    texts = [" ".join(vocab[j] for j in torch.randint(0, len(vocab), (words,), generator=g).tolist()) for _ in range(batch)]
    labels = tok.encode_targets(texts)
    size = int(cfg["data"]["image_size"])
    frames_t = torch.rand(batch, frames, 3, size, size, generator=g).to(dev)
    lengths = torch.full((batch,), frames).to(dev)
    ref = Stage2Module(cfg, tok).to(dev)
    with torch.no_grad():
        feats = ref.features(frames_t, lengths)  # the cached features stage 2 trains on (frozen encoder)
    llm_config = ref.head.model.config
    c_in = feats.shape[-1]
    b = {"feats": feats, "lengths": lengths, "texts": texts, "labels": labels.masked_fill(labels.eq(tok.pad_id), -100).to(dev),
         "decoder_input_ids": tok.shift_right(labels).to(dev)}
    mask = torch.ones(batch, feats.shape[1], dtype=torch.long, device=dev)
    hf_labels = b["labels"]

    def ours():
        torch.manual_seed(0)
        m = Stage2Module(cfg, tok).to(dev).train()
        opt = _optimizer(m)

        def step():
            with autocast(dev):
                loss = m.loss(b)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.detach()

        return step

    def peer():
        torch.manual_seed(0)
        model = MBartForConditionalGeneration(llm_config).to(dev).train()
        proj = torch.nn.Linear(c_in, llm_config.d_model).to(dev)
        opt = torch.optim.AdamW(list(model.parameters()) + list(proj.parameters()), lr=1e-3, weight_decay=0.0)

        def step():
            with autocast(dev):
                out = model(inputs_embeds=proj(feats), attention_mask=mask, labels=hf_labels)
            out.loss.backward()
            opt.step()
            opt.zero_grad()
            return out.loss.detach()

        return step

    row = compare(f"stage-2 step (embedded default LLM: mBART d {llm_config.d_model}, "
                  f"{llm_config.encoder_layers}+{llm_config.decoder_layers} layers; batch {batch}, {frames} features, {words} words)",
                  "transformers seq2seq step (MBartForConditionalGeneration, built-in loss, AdamW)", ours, peer, reps=reps, dev=dev)
    row["profile_top5_ours"] = profile_top(ours(), 5, dev)
    row["profile_top5_peer"] = profile_top(peer(), 5, dev)
    return row


def _optimizer(m):
    """The optimiser ``Stage2Module.configure_optimizers`` builds (without the Trainer's cosine schedule)."""
    from flallm.module import adam

    c = m.config["stage2"]
    groups = [{"params": [p for p in m.head.parameters() if p.requires_grad], "lr": float(c["lr_llm"])},
              {"params": list(m.llm_adapter.parameters()), "lr": float(c["lr_adapter"])}]
    return adam(groups, weight_decay=float(c.get("weight_decay", 0.0)))


def rows(dev: torch.device, reps: int) -> list[dict]:
    return [stage2_row(dev, reps)]


if __name__ == "__main__":
    cli("flallm", rows)
