"""Anchor directions: the finite prompt contexts that make open-ended querying "semi-open" (paper Sec. 3.2).

An object direction is ``"{} <context>"`` and a style direction ``"<subject> {}"``; ``{}`` is filled with
the concept's *descriptor* (object: ``"a <cute-cat> cat"``; style: ``"in watercolor painting style"``).
The two 18-direction lists are the official ones; the ``toy_*`` lists are their toy-world analogues
(contexts and subjects the 32 px toy world can draw).
"""

from __future__ import annotations

from vislab.errors import VislabError

OBJECT_DIRECTIONS: tuple[str, ...] = tuple(
    "{} " + c
    for c in (
        "in a workshop", "in a museum", "on a plane", "on a boat", "in a laboratory", "at an aquarium",
        "on a subway", "in a pet store", "at a cafe", "in a gym", "at a bus stop", "in a garden",
        "at a train station", "in a junkyard", "in an alleyway", "in a schoolyard", "in a bank", "under a tree",
    )
)
STYLE_DIRECTIONS: tuple[str, ...] = tuple(
    s + " {}"
    for s in (
        "A tie", "candy", "A drum", "A koala", "Beach scene", "A shoe", "A pencil", "A kite", "A cheese",
        "A backpack", "A donut", "A leaf", "Moon", "A jacket", "A parrot", "A lantern", "A cluster of grapes", "A knife",
    )
)
# toy world: positions and a second object are the contexts the toy SD was trained on (the references
# sit in the centre, so "in the centre" is their own caption and not a direction)
TOY_OBJECT_DIRECTIONS: tuple[str, ...] = (
    "{} on the left", "{} on the right", "{} at the top", "{} at the bottom", "{} and a blue square",
    "{} and a green circle", "{} and a yellow ring", "{} and a red triangle", "{} and an orange cross", "{} and a purple square",
)
# toy world "style" = a texture shown on any subject, e.g. descriptor "in sks style"
TOY_STYLE_DIRECTIONS: tuple[str, ...] = (
    "a red circle {}", "a blue square {}", "a green triangle {}", "a yellow ring {}", "an orange cross {}",
    "a purple star {}", "a cyan circle {}", "a pink square {}",
)
DIRECTION_SETS = {
    "object": OBJECT_DIRECTIONS, "style": STYLE_DIRECTIONS,
    "toy_object": TOY_OBJECT_DIRECTIONS, "toy_style": TOY_STYLE_DIRECTIONS,
}


def direction_templates(spec: str | list[str] | tuple[str, ...], mode: str) -> list[str]:
    """The templates of a direction set: a name (``object``, ``style``, ``toy_object``, ``toy_style``,
    ``auto`` = the official set of ``mode``) or an explicit list of templates containing ``{}``."""
    if isinstance(spec, str):
        name = mode if spec == "auto" else spec
        if name not in DIRECTION_SETS:
            raise VislabError(f"unknown direction set {spec!r} (known: auto, {', '.join(DIRECTION_SETS)} or a list of templates)")
        return list(DIRECTION_SETS[name])
    out = [str(t) for t in spec]
    bad = [t for t in out if t.count("{}") != 1]
    if bad or not out:
        raise VislabError(f"every direction template needs exactly one '{{}}' (bad: {bad or 'empty list'})")
    return out


def style_descriptor(instance_prompt: str) -> str:
    """Style descriptor = ``"in " +`` the text after the last ``" in "`` of the init prompt
    (``"A cat in watercolor painting style"`` -> ``"in watercolor painting style"``)."""
    if " in " not in instance_prompt:
        raise VislabError(f"style prompt {instance_prompt!r} has no ' in <style>' part to take the style descriptor from")
    return "in " + instance_prompt.rsplit(" in ", 1)[1]


def direction_prompts(templates: list[str], descriptor: str) -> list[str]:
    """``p_d = template.format(descriptor)`` for every direction."""
    return [t.format(descriptor) for t in templates]
