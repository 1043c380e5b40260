"""Toy face anti-spoofing data and real-dataset readers.

* :class:`ToyFaces` -- deterministic toy dataset: live faces (procedural + scikit-image's LFW subset
  and astronaut) under physical, adversarial and digital-editing attacks, in capture domains
  O / C / I / M (+ U). Items: ``image`` (3,H,W) in [0,1], ``label`` (0 live, 1 physical,
  2 adversarial, 3 digital editing), ``live`` (1/0), ``attack``, ``domain``, ``identity``, ``video``,
  ``frame``, ``depth`` (1,H,W).
* protocols: :func:`leave_one_domain_out` (O/C/I/M), :func:`uniattack_protocol` (p1, p2.1, p2.2).
* attacks and domains as separate seedable transforms: :data:`ATTACKS`, :data:`DOMAINS`, :func:`camera`.
* real-dataset readers, one per published layout (:mod:`vislab.faces.layouts`): :func:`mcio_dataset`
  (CASIA-FAS-Benchmark lists), :func:`flip_dataset`, :func:`oulu_dataset`, :func:`casia_fasd_dataset`,
  :func:`replay_attack_dataset`, :func:`msu_mfsd_dataset`, :func:`siw_dataset`, :func:`uniattack_dataset`,
  :func:`read_list_dataset` -> :class:`FaceFrames` (:mod:`vislab.faces.readers`).
* ``vislab toy faces --out DIR`` (:mod:`vislab.faces.cli`), the CNN signal check (:mod:`vislab.faces.check`).

See ``README.md`` in this folder for the conventions and the layouts.
"""

from vislab.faces.attacks import (
    ADVERSARIAL,
    ALL_ATTACKS,
    ATTACKS,
    DIGITAL,
    DIGITAL_EDITING,
    LABEL_NAMES,
    PHYSICAL,
    Attack,
    attack_label,
    get_attack,
)
from vislab.faces.domains import DOMAINS, MCIO, Domain, camera, get_domain
from vislab.faces.layouts import (
    casia_fasd_dataset,
    flip_dataset,
    lab_dataset,
    mcio_dataset,
    msu_mfsd_dataset,
    oulu_dataset,
    read_list_dataset,
    replay_attack_dataset,
    resolve_protocol,
    siw_dataset,
    uniattack_dataset,
)
from vislab.faces.protocols import (
    UNIATTACK_PROTOCOLS,
    leave_one_domain_out,
    parse_protocol,
    uniattack_attacks,
    uniattack_protocol,
)
from vislab.faces.readers import FaceFrames
from vislab.faces.toy import (
    FaceRecord,
    ToyFaces,
    balanced_weights,
    cache_root,
    render_sample,
    split_identities,
)

__all__ = [
    "siw_dataset",
    "resolve_protocol",
    "replay_attack_dataset",
    "msu_mfsd_dataset",
    "lab_dataset",
    "casia_fasd_dataset",
    "ADVERSARIAL",
    "ALL_ATTACKS",
    "ATTACKS",
    "Attack",
    "DIGITAL",
    "DIGITAL_EDITING",
    "DOMAINS",
    "Domain",
    "FaceFrames",
    "FaceRecord",
    "LABEL_NAMES",
    "MCIO",
    "PHYSICAL",
    "ToyFaces",
    "UNIATTACK_PROTOCOLS",
    "attack_label",
    "balanced_weights",
    "cache_root",
    "camera",
    "flip_dataset",
    "get_attack",
    "get_domain",
    "leave_one_domain_out",
    "mcio_dataset",
    "oulu_dataset",
    "parse_protocol",
    "read_list_dataset",
    "render_sample",
    "split_identities",
    "uniattack_attacks",
    "uniattack_dataset",
    "uniattack_protocol",
]
