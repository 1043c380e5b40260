"""incantations: prompt learning for accurate text-to-image synthesis (Seek for Incantations, arXiv:2401.06345)."""

__version__ = "0.1.0"


def load(run_dir) -> dict:
    """The learned incantations of an ``incantations`` output folder (``vislab.models.load_run``'s hook).

    Returns ``{prompt id: {"prompt", "incantation", "mode", "prompt_embeds", "slots"}}`` read from
    ``<run_dir>/checkpoints/<id>.safetensors``: the original prompt, the learned incantation text, the learning
    mode, the learned prompt embedding (``1 x L x D``, what the SD's UNet is conditioned on) and the learned
    slot vectors, on the CPU. No model is loaded or trained: condition the run's SD on ``prompt_embeds``."""
    from pathlib import Path

    from safetensors import safe_open
    from vislab.errors import InputError
    from vislab.io import require_dir

    d = Path(require_dir(run_dir, "incantations run folder"))
    files = sorted((d / "checkpoints").glob("*.safetensors"))
    if not files:
        raise InputError(d / "checkpoints", "no learned incantations here (<id>.safetensors); is this a finished incantations run?")
    out: dict = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt", device="cpu") as fh:
                meta = fh.metadata() or {}
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open has no __iter__
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error kinds for a foreign file
            raise InputError(f, f"not a safetensors file ({e.__class__.__name__})") from None
        if "prompt_embeds" not in tensors or "incantation" not in meta:
            raise InputError(f, "not a learned incantation (needs prompt_embeds and incantation metadata)")
        out[f.stem] = {"prompt": meta.get("prompt", ""), "incantation": meta["incantation"], "mode": meta.get("mode", ""),
                       "prompt_embeds": tensors["prompt_embeds"], "slots": tensors.get("slots")}
    return out
