"""Evaluation protocols on the toy faces, mirroring the real benchmarks.

* :func:`leave_one_domain_out` -- the O/C/I/M protocol (e.g. "O-C-I@M": train on O, C, I; test on M).
  ``train`` = source domains, train identities; ``dev`` = source domains, dev identities (choose the
  threshold here); ``test`` = the target domain, test identities. Default attacks: print and replay
  (the MCIO attack types); pass ``attacks=`` for more.
* :func:`uniattack_protocol` -- UniAttackData's protocols on the "U" domain:
  ``"p1"`` all attack families in every split, with the digital-editing *methods* differing between
  splits (train: faceswap + attribute, dev: reenact, test: gan + reenact), as the real P1 holds out
  editing methods; ``"p2.1"`` unseen physical (train/dev: live + adversarial + editing; test: live +
  physical); ``"p2.2"`` unseen digital (train/dev: live + physical; test: live + adversarial + editing).
  Identities are disjoint across splits.

Each returns ``{"train": ToyFaces, "dev": ToyFaces, "test": ToyFaces}``.
"""

from __future__ import annotations

from collections.abc import Sequence

from vislab.faces import attacks as A
from vislab.faces.domains import MCIO
from vislab.faces.toy import ToyFaces

UNIATTACK_PROTOCOLS = ("p1", "p2.1", "p2.2")

# (train, dev, test) attack lists per UniAttackData protocol
_P1_EDIT = {"train": ("faceswap", "attribute"), "dev": ("reenact",), "test": ("gan", "reenact")}


def uniattack_attacks(protocol: str, split: str) -> tuple[str, ...]:
    """The attack types present in ``split`` of UniAttackData protocol ``protocol`` (toy version)."""
    p = protocol.lower().removeprefix("uniattackdata@")
    if p not in UNIATTACK_PROTOCOLS:
        raise ValueError(f"unknown UniAttackData protocol {protocol!r}; known: {', '.join(UNIATTACK_PROTOCOLS)}")
    if split not in ("train", "dev", "test"):
        raise ValueError(f"split must be train, dev or test, got {split!r}")
    if p == "p1":
        return A.PHYSICAL + A.ADVERSARIAL + _P1_EDIT[split]
    if p == "p2.1":  # unseen physical
        return A.PHYSICAL if split == "test" else A.ADVERSARIAL + A.DIGITAL_EDITING
    return A.ADVERSARIAL + A.DIGITAL_EDITING if split == "test" else A.PHYSICAL  # p2.2: unseen digital


def parse_protocol(name: str) -> tuple[list[str], str]:
    """``"O-C-I@M"`` -> (["O", "C", "I"], "M")."""
    if "@" not in name:
        raise ValueError(f"protocol {name!r}: expected SOURCES@TARGET such as O-C-I@M")
    src, tgt = name.split("@", 1)
    sources = [s for s in src.replace(",", "-").split("-") if s]
    if not sources or not tgt:
        raise ValueError(f"protocol {name!r}: expected SOURCES@TARGET such as O-C-I@M")
    return sources, tgt


def leave_one_domain_out(
    target: str,
    domains: Sequence[str] = MCIO,
    attacks: Sequence[str] = ("print", "replay"),
    identities: int = 12,
    **kwargs,
) -> dict[str, ToyFaces]:
    """Sources = ``domains`` minus ``target`` (or a protocol string "O-C-I@M" as ``target``)."""
    if "@" in target:
        sources, target = parse_protocol(target)
    else:
        sources = [d for d in domains if d != target]
    if target in sources:
        raise ValueError(f"target domain {target!r} is also a source")
    if len(sources) < 1:
        raise ValueError("leave-one-domain-out needs at least one source domain")
    return {
        "train": ToyFaces(domains=sources, attacks=attacks, identities=identities, split="train", **kwargs),
        "dev": ToyFaces(domains=sources, attacks=attacks, identities=identities, split="dev", **kwargs),
        "test": ToyFaces(domains=[target], attacks=attacks, identities=identities, split="test", **kwargs),
    }


def uniattack_protocol(protocol: str = "p1", domain: str = "U", identities: int = 16, **kwargs) -> dict[str, ToyFaces]:
    """UniAttackData protocol ``p1`` / ``p2.1`` / ``p2.2`` on the toy faces (see the module docstring)."""
    return {
        split: ToyFaces(domains=[domain], attacks=uniattack_attacks(protocol, split), identities=identities, split=split, **kwargs)
        for split in ("train", "dev", "test")
    }
