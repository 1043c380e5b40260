"""``flallm translate`` (inference on videos / frame folders) and ``flallm trim`` (mBART vocabulary trimming)."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vislab.errors import InputError, VislabError


# ----------------------------------------------------------------------------- translate
def translate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flallm translate",
                                description="Translate sign-language videos (or folders of frames) with a trained flallm checkpoint. "
                                            "Prints one line per input: INPUT<TAB>SENTENCE.")
    p.add_argument("--checkpoint", required=True, type=Path, help="a flallm checkpoint (stage2-best.ckpt, last.ckpt or stage1.ckpt)")
    p.add_argument("inputs", nargs="+", type=Path, help="videos (.mp4/.avi/..., .gif, .npy (T,H,W,3)) or folders of frame images")
    from vislab.cmdline import Option, add_config_options

    add_config_options(p, "flallm", {"--beams": Option("stage2.decode.num_beams", help="beam size of the translation (stage-1 "
                                                                                       "checkpoints: stage1.decode.num_beams)")},
                       unset="the checkpoint's decode setting")
    p.add_argument("--output", type=Path, default=None, help="also write a JSON list of {input, translation} here")
    p.add_argument("--pictures", type=Path, default=None, help="also write a frame strip with the translation per input into this folder")
    p.add_argument("--device", default=None, help="cpu / cuda (default: the best available)")
    return p


def translate_files(checkpoint: str | Path, inputs: list[str | Path], beams: int | None = None, device: str | None = None) -> list[dict[str, Any]]:
    """Translate each input; returns ``[{"input", "translation", "frames"}]`` (frames: the sampled uint8 frames)."""
    import torch
    from vislab import runtime

    from flallm.data import ClipTransform, load_input, load_sample_frames
    from flallm.module import load_module

    module = load_module(checkpoint)
    dev = torch.device(device) if device else runtime.device()
    module.to(dev)
    dcfg = module.config["data"]
    tf = ClipTransform(int(dcfg["image_size"]), dcfg.get("resize"), False)
    clips = []
    for path in inputs:  # read everything first: a bad file fails before any output is written
        sample = load_input(path)
        fr = load_sample_frames(sample, int(dcfg["stride"]), int(dcfg["max_frames"]), False, random.Random(0))
        clips.append((path, fr, tf(fr, False, random.Random(0))))
    out = []
    for path, fr, x in clips:
        batch = {"frames": x[None].to(dev), "lengths": torch.tensor([x.shape[0]], device=dev)}
        out.append({"input": str(path), "translation": module.translate_batch(batch, num_beams=beams)[0], "frames": fr})
    return out


def translate_main(argv: list[str]) -> int:
    args = translate_parser().parse_args(argv)
    results = translate_files(args.checkpoint, args.inputs, args.beams, args.device)
    for r in results:
        print(f"{r['input']}\t{r['translation']}", flush=True)
    if args.output is not None:
        from vislab.io import write_json

        write_json(args.output, [{"input": r["input"], "translation": r["translation"]} for r in results])
    if args.pictures is not None:
        from flallm.plots import plot_frame_strips

        args.pictures.mkdir(parents=True, exist_ok=True)
        for r in results:
            name = Path(r["input"]).name.replace(".", "_")
            plot_frame_strips(args.pictures / f"{name}.png", [{"id": name, "text": "", "frames": r["frames"]}],
                              {"stride": 1, "max_frames": 10**6}, {"translation": [{"hyp": r["translation"]}]})
    return 0


# ----------------------------------------------------------------------------- trim
def trim_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flallm trim",
                                description="Trim a local mBART (e.g. facebook/mbart-large-cc25) to the vocabulary of the training sentences: "
                                            "keeps the ids those sentences use, the special tokens and the language code; slices the shared "
                                            "embedding, LM head and final_logits_bias; writes a transformers folder plus flallm_trim.json (the id map).")
    p.add_argument("--model", required=True, type=Path, help="local mBART folder (config + weights + tokenizer)")
    p.add_argument("--out", required=True, type=Path, help="output folder (must not exist unless --overwrite)")
    from vislab.cmdline import Option, add_config_options

    add_config_options(p, "flallm", {"--lang": Option("data.lang", required=True, help="target language code, e.g. de_DE (PHOENIX14T), "
                                                                                     "zh_CN (CSL-Daily), en_XX (How2Sign)")})
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--sentences", type=Path, help="text file with one training sentence per line")
    add_config_options(src, "flallm", {"--data-source": Option("data.source", choices=("phoenix14t", "csl_daily", "how2sign", "gfslt", "manifest"),
                                                               help="read the train split of this layout")}, unset="none")
    add_config_options(p, "flallm", {"--data-root": Option("data.root", type=Path, help="dataset folder for --data-source"),
                                     "--image-root": Option("data.image_root", type=Path)}, unset="none")
    p.add_argument("--any-lang", action="store_true", help="accept a language code outside mBART-cc25's 25")
    p.add_argument("--overwrite", action="store_true")
    return p


def trim_mbart(model_dir: str | Path, out_dir: str | Path, lang: str, sentences: list[str], any_lang: bool = False,
               overwrite: bool = False) -> dict[str, Any]:
    """Write a trimmed copy of ``model_dir`` into ``out_dir``; returns ``{"kept": K, "original": V}``.

    New id ``j`` is old id ``kept_ids[j]`` (sorted, so ``<s> <pad> </s> <unk>`` = 0..3 stay put).
    """
    import torch
    from transformers import MBartForConditionalGeneration

    from flallm.tokenizer import MBART_CC25_LANGS, SPECIALS, TRIM_FILE, SignTokenizer

    model_dir, out_dir = Path(model_dir).expanduser(), Path(out_dir).expanduser()
    if lang not in MBART_CC25_LANGS and not any_lang:
        raise VislabError(f"language code {lang!r} is not one of mBART-cc25's ({', '.join(MBART_CC25_LANGS)}); use --any-lang to force")
    if out_dir.exists() and not overwrite:
        raise InputError(out_dir, "output folder exists (use --overwrite)")
    if not sentences:
        raise VislabError("no training sentences to trim to")
    if (model_dir / TRIM_FILE).is_file():
        raise InputError(model_dir, "this model is already trimmed; trim the original")
    tok = SignTokenizer.from_dir(model_dir, lang)
    be = tok.backend
    kept = {be.token_to_id(t) for t in (*SPECIALS, lang)}
    uncovered = [(s, tok.unknown(s)) for s in sentences]
    uncovered = [(s, u) for s, u in uncovered if u]
    if uncovered:
        s, u = uncovered[0]
        raise InputError(model_dir, f"{len(uncovered)} of {len(sentences)} training sentences tokenize to <unk> "
                                    f"(e.g. {s[:40]!r}: {''.join(u)[:20]!r}); this tokenizer does not cover the language: "
                                    f"give the folder's tokenizer.json (mBART-cc25's fast tokenizer) or another tokenizer")
    for s in sentences:
        kept.update(be.encode(s, add_special_tokens=False).ids)
    kept_ids = sorted(int(i) for i in kept)
    try:
        model = MBartForConditionalGeneration.from_pretrained(str(model_dir), local_files_only=True)
    except Exception as e:  # noqa: BLE001
        raise InputError(model_dir, f"cannot load an mBART model ({e.__class__.__name__}: {str(e)[:160]})") from None
    V = model.config.vocab_size
    if kept_ids[-1] >= V:
        raise InputError(model_dir, f"tokenizer id {kept_ids[-1]} is outside the model's vocabulary ({V})")
    idx = torch.tensor(kept_ids)
    old2new = {o: n for n, o in enumerate(kept_ids)}
    with torch.no_grad():
        emb = model.get_input_embeddings()
        new_w = torch.nn.Parameter(emb.weight[idx].clone())
        for m in {id(x): x for x in (emb, model.model.encoder.embed_tokens, model.model.decoder.embed_tokens)}.values():
            m.weight = new_w
            m.num_embeddings = len(kept_ids)
            m.padding_idx = old2new.get(model.config.pad_token_id, m.padding_idx)
        model.lm_head.weight = new_w
        model.final_logits_bias = model.final_logits_bias[:, idx].clone()
    c = model.config
    c.vocab_size = len(kept_ids)
    for k in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id", "forced_eos_token_id"):
        v = getattr(c, k, None)
        if isinstance(v, int) and v in old2new:
            setattr(c, k, old2new[v])
    c.forced_bos_token_id = None
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent if out_dir.parent.exists() else None))
    try:
        model.save_pretrained(str(tmp))
        for f in model_dir.iterdir():  # tokenizer files travel unchanged; the id map does the trimming
            if f.is_file() and (f.name.startswith(("tokenizer", "special_tokens", "sentencepiece")) or f.suffix == ".model"):
                shutil.copy2(f, tmp / f.name)
        if not (tmp / "tokenizer.json").is_file():
            be.save(str(tmp / "tokenizer.json"))
        (tmp / TRIM_FILE).write_text(json.dumps({"kept_ids": kept_ids, "lang": lang, "original_vocab_size": V,
                                                 "n_sentences": len(sentences), "source": str(model_dir)}))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return {"kept": len(kept_ids), "original": V}


def trim_main(argv: list[str]) -> int:
    args = trim_parser().parse_args(argv)
    if args.sentences is not None:
        from vislab.io import require_file

        sentences = [ln.strip() for ln in require_file(args.sentences, "sentence file").read_text(encoding="utf-8").splitlines() if ln.strip()]
    else:
        from flallm.data import read_split

        if args.data_root is None:
            raise VislabError("--data-source needs --data-root")
        sentences = [s["text"] for s in read_split({"source": args.data_source, "root": str(args.data_root),
                                                     "image_root": str(args.image_root) if args.image_root else None}, "train")]
    r = trim_mbart(args.model, args.out, args.lang, sentences, args.any_lang, args.overwrite)
    print(f"kept {r['kept']} of {r['original']} tokens from {len(sentences)} sentences -> {args.out}")
    return 0
