"""compinv: Compositional Inversion for Stable Diffusion models (arXiv:2312.08048)."""

__version__ = "0.1.0"


def load(run_dir, which: str = "compositional", base=None):
    """The personalised Stable Diffusion of a ``compinv`` output folder (``vislab.models.load_run``'s hook).

    Returns :class:`vislab.diffusion.SDComponents` in eval mode on the CPU, loaded as ``compinv generate`` loads
    them: the run's base SD (``model.sd`` of its ``config.yaml``, or ``base``) with the learned placeholder
    rows of ``learned_embeds.safetensors`` added (``which="plain"``: the plain-inversion baseline's rows in
    ``plain_ti/`` or ``plain_dreambooth/``); a DreamBooth run (``inversion.method: dreambooth``) also gets its
    fine-tuned UNet from ``dreambooth_model/``. ``.tokens`` lists the learned token names to put in prompts.
    Nothing is trained: a toy base SD missing from the cache is an error saying how to make it."""
    from pathlib import Path

    from vislab.diffusion import load_learned_embeds, load_personalized, load_sd
    from vislab.errors import ConfigError
    from vislab.io import require_dir, require_file
    from vislab.models import read_run_config, toy_sd_path

    from compinv.dreambooth import MODEL_FILE

    if which not in ("compositional", "plain"):
        raise ConfigError(f"which must be 'compositional' or 'plain', not {which!r}")
    d = Path(require_dir(run_dir, "compinv run folder"))
    cfg = read_run_config(d)
    model = dict(cfg.get("model") or {})
    if base is None:
        base = toy_sd_path(str(model.get("toy_preset", "default"))) if model.get("sd", "toy") == "toy" else model["sd"]
    dreambooth = (cfg.get("inversion") or {}).get("method", "ti") == "dreambooth"
    if which == "plain":
        emb = require_file(d / ("plain_dreambooth" if dreambooth else "plain_ti") / "learned_embeds.safetensors", "learned embeddings")
    else:
        emb = require_file(d / "learned_embeds.safetensors", "learned embeddings")
    if dreambooth and which == "compositional":
        from vislab.diffusion import placeholder_names, read_learned_embeds

        # the fine-tuned UNet, with the identifier row saved beside it (added by load_personalized)
        sd, _ = load_personalized(d / "dreambooth_model", base=base, device="cpu", model_file=MODEL_FILE, what="compinv DreamBooth")
        inner = d / "dreambooth_model" / "learned_embeds.safetensors"
        if inner.is_file():  # multi-vector placeholders expand to p, p_1, .. as load_learned_embeds names them
            tokens = [n for key, rows in read_learned_embeds(inner).items() for n in placeholder_names(key, max(1, len(rows.reshape(-1, rows.shape[-1]))))]
        else:
            tokens = load_learned_embeds(emb, sd.tokenizer, sd.text_encoder)
    else:  # textual inversion, or the plain DreamBooth baseline (whose UNet is not saved: its row goes on the base SD)
        sd = load_sd(base, device="cpu")
        tokens = load_learned_embeds(emb, sd.tokenizer, sd.text_encoder)
    sd.freeze()
    sd.tokens = tokens
    return sd
