"""Shared fixtures of flallm's tests: a tiny config, the toy tokenizer, a tiny finished run."""

from __future__ import annotations

import copy
import os

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

TINY = {
    "data": {"synthetic": {"n_train": 16, "n_dev": 8, "n_test": 8}},
    "stage1": {"epochs": 1, "batch_size": 8, "val_every": 1},
    "stage2": {"epochs": 1, "batch_size": 8, "val_every": 1},
    "eval_batch_size": 8,
    "pictures": {"n_clips": 2},
    "trainer": {"enable_progress_bar": False},
}


@pytest.fixture
def tiny_overrides():
    return copy.deepcopy(TINY)


@pytest.fixture(scope="session")
def cfg():
    from vislab.config import deep_merge
    from vislab.run import load_preset

    return deep_merge(load_preset("flallm"), TINY)


@pytest.fixture(scope="session")
def splits(cfg):
    from flallm.data import load_splits

    return load_splits(cfg["data"])


@pytest.fixture(scope="session")
def tok(splits):
    from flallm.tokenizer import SignTokenizer

    return SignTokenizer.build_word_level([s["text"] for s in splits["train"]], "xx_XX")


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """The embedded default on a tiny budget, run once for the tests that inspect its outputs."""
    from flallm.train import train
    from vislab.testing import make_run

    out = tmp_path_factory.mktemp("run")
    run = make_run("flallm", out, copy.deepcopy(TINY))
    result = train(run)
    return out, result


# ----------------------------------------------------------------------------- replica trees
GERMAN = ["und nun die wettervorhersage für morgen donnerstag", "am tag regnet es im norden", "im süden bleibt es meist trocken",
          "morgen wird es freundlich", "in der nacht gibt es frost", "der wind weht schwach", "es wird kühler", "guten abend liebe zuschauer"]
CHINESE = ["今天天气很好，我们去公园。", "你好，我叫小明。", "我们明天见。", "他喜欢看书吗？", "请坐。", "谢谢你的帮助。", "现在几点了？", "我想喝水。"]
ENGLISH = ["Hi, I'm going to show you how to tie a knot.", "First, hold the rope in your left hand.", "Now pull it tight.",
           "That's all there is to it.", "Let's start with the basics.", "Keep your hands relaxed.", "Try it again slowly.", "Thanks for watching."]


def _clip_frames(n_frames: int, seed: int):
    from flallm.world import make_split

    f = make_split(1, seed=seed)[0]["frames"]
    return f[:n_frames]


def phoenix14t_replica(root):
    """RWTH-PHOENIX-Weather 2014 T as unpacked from ``phoenix-2014-T.v3.tar.gz``
    (www-i6.informatik.rwth-aachen.de/~koller/RWTH-PHOENIX-2014-T/): ``annotations/manual/PHOENIX-2014-T.{train,dev,test}.corpus.csv``
    ('|'-separated, header name|video|start|end|speaker|orth|translation; video = ``<name>/1/*.png``, start/end -1) and frames
    ``features/fullFrame-210x260px/{split}/<name>/images0001.png`` ... (tiny frames here)."""
    from PIL import Image

    ann = root / "annotations" / "manual"
    ann.mkdir(parents=True)
    k = 0
    for split, n in (("train", 4), ("dev", 2), ("test", 2)):
        lines = ["name|video|start|end|speaker|orth|translation"]
        for i in range(n):
            name = f"{['01April_2010_Thursday_heute', '05May_2011_Thursday_tagesschau'][i % 2]}-{6694 + k}"
            d = root / "features" / "fullFrame-210x260px" / split / name
            d.mkdir(parents=True)
            for j, f in enumerate(_clip_frames(9, k)):
                Image.fromarray(f).save(d / f"images{j + 1:04d}.png")
            lines.append(f"{name}|{name}/1/*.png|-1|-1|Signer0{1 + k % 9}|JETZT WETTER MORGEN|{GERMAN[k]}")
            k += 1
        (ann / f"PHOENIX-2014-T.{split}.corpus.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def csl_daily_replica(root):
    """CSL-Daily as distributed (ustc-slr.github.io/datasets/2021_csl_daily/): ``sentence_label/csl2020ct_v2.pkl`` (a dict with
    ``info``: one {name, length, label_gloss, label_char, label_word, label_postag} per sentence, plus the gloss/char/word maps),
    ``sentence_label/split_1.txt`` (``Name|Split``, values train/dev/test) and frames ``sentence/frames_512x512/<name>/000000.jpg`` ..."""
    import pickle

    from PIL import Image

    (root / "sentence_label").mkdir(parents=True)
    info, split_lines = [], ["Name|Split"]
    for k, (split, text) in enumerate(zip(["train"] * 4 + ["dev"] * 2 + ["test"] * 2, CHINESE)):
        name = f"S{k:06d}_P0000_T00"
        d = root / "sentence" / "frames_512x512" / name
        d.mkdir(parents=True)
        for j, f in enumerate(_clip_frames(9, 20 + k)):
            Image.fromarray(f).save(d / f"{j:06d}.jpg")
        info.append({"name": name, "length": 9, "label_gloss": ["你好"], "label_char": list(text), "label_word": [text],
                     "label_postag": ["n"], "signer": k % 10})
        split_lines.append(f"{name}|{split}")
    with open(root / "sentence_label" / "csl2020ct_v2.pkl", "wb") as fh:
        pickle.dump({"info": info, "gloss_map": ["你好"], "char_map": sorted({c for t in CHINESE for c in t}), "word_map": CHINESE}, fh)
    (root / "sentence_label" / "split_1.txt").write_text("\n".join(split_lines) + "\n", encoding="utf-8")
    return root


def write_mp4(path, frames) -> None:
    import cv2
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (frames.shape[2], frames.shape[1]))
    for f in frames:
        w.write(np.ascontiguousarray(f[..., ::-1]))
    w.release()


def how2sign_replica(root):
    """How2Sign as downloaded (how2sign.github.io): ``how2sign_realigned_{train,val,test}.csv`` (tab-separated: VIDEO_ID,
    VIDEO_NAME, SENTENCE_ID, SENTENCE_NAME, START_REALIGNED, END_REALIGNED, SENTENCE) and the sentence clips
    ``{train,val,test}_rgb_front_clips/raw_videos/<SENTENCE_NAME>.mp4``."""
    root.mkdir(parents=True)
    cols = "VIDEO_ID\tVIDEO_NAME\tSENTENCE_ID\tSENTENCE_NAME\tSTART_REALIGNED\tEND_REALIGNED\tSENTENCE"
    k = 0
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        rows = [cols]
        for i in range(n):
            vid = ["-fZc293MpJk", "g3Cc_1-V31g"][i % 2]
            name = f"{vid}_{i}-1-rgb_front"
            write_mp4(root / f"{split}_rgb_front_clips" / "raw_videos" / f"{name}.mp4", _clip_frames(12, 40 + k))
            rows.append(f"{vid}\t{vid}-1-rgb_front\t{vid}_{i}\t{name}\t{1.5 * i:.2f}\t{1.5 * i + 1.2:.2f}\t{ENGLISH[k]}")
            k += 1
        (root / f"how2sign_realigned_{split}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def tiny_mbart_folder(root, form: str = "tokenizer.json"):
    """A tiny mBART in the layout of the hub's ``facebook/mbart-large-cc25`` folder (config.json, the weights,
    ``sentencepiece.bpe.model`` and ``tokenizer.json``). The sentencepiece model is trained here (BPE, NFKC normalisation, ids unk 0 bos 1 eos 2,
    like mBART's) on the replica sentences. ``form``: "tokenizer.json" (the hub layout: the fast tokenizer, with the
    sentencepiece normaliser as ``Precompiled``) or "sentencepiece" (``sentencepiece.bpe.model`` only)."""
    import io

    import sentencepiece as spm
    import torch
    from flallm.model import mbart_config
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import normalizers
    from transformers import AutoTokenizer, MBartForConditionalGeneration

    root.mkdir(parents=True)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter((GERMAN + CHINESE + ENGLISH) * 10), model_writer=buf, vocab_size=160,
                                   model_type="bpe", character_coverage=1.0, normalization_rule_name="nmt_nfkc",
                                   unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
    (root / "sentencepiece.bpe.model").write_bytes(buf.getvalue())
    mbart_config(8, 16, 1, 1, 2, 32, max_positions=64).save_pretrained(str(root))  # model_type mbart, for AutoTokenizer
    backend = AutoTokenizer.from_pretrained(str(root), local_files_only=True).backend_tokenizer
    V = backend.get_vocab_size(with_added_tokens=True)
    torch.manual_seed(0)
    MBartForConditionalGeneration(mbart_config(V, 16, 1, 1, 2, 32, max_positions=64)).save_pretrained(str(root))
    if form == "tokenizer.json":
        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString(buf.getvalue())
        backend.normalizer = normalizers.Sequence([normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap),
                                                   normalizers.Replace(" {2,}", " ")])
        backend.save(str(root / "tokenizer.json"))
    return root


@pytest.fixture(scope="session")
def replicas(tmp_path_factory):
    base = tmp_path_factory.mktemp("replicas")
    return {"phoenix14t": phoenix14t_replica(base / "PHOENIX-2014-T"), "csl_daily": csl_daily_replica(base / "CSL-Daily"),
            "how2sign": how2sign_replica(base / "How2Sign"),
            "mbart": tiny_mbart_folder(base / "mbart-large-cc25", "tokenizer.json"),
            "mbart_spm": tiny_mbart_folder(base / "mbart-spm-only", "sentencepiece"),
            "texts": {"de": GERMAN, "zh": CHINESE, "en": ENGLISH}}


@pytest.fixture
def mp4_writer():
    return write_mp4
