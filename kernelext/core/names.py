"""Random container names, as podman gives them (``adjective_surname``)."""

from __future__ import annotations

import os

_ADJECTIVES = (
    "admiring", "brave", "busy", "clever", "cool", "eager", "elegant", "epic", "focused", "gallant", "happy",
    "hopeful", "jolly", "keen", "kind", "lucid", "modest", "nifty", "optimistic", "peaceful", "quirky",
    "relaxed", "serene", "sharp", "stoic", "sweet", "tender", "trusting", "vibrant", "wizardly", "zealous",
)
_SURNAMES = (
    "babbage", "bell", "curie", "darwin", "dijkstra", "einstein", "euler", "fermat", "feynman", "galileo",
    "gauss", "hamilton", "hopper", "kepler", "knuth", "lamarr", "lovelace", "mccarthy", "meitner", "newton",
    "noether", "pascal", "ritchie", "shannon", "thompson", "torvalds", "turing", "wozniak", "yalow",
)


def random_name() -> str:
    noise = os.urandom(4)
    return f"{_ADJECTIVES[noise[0] % len(_ADJECTIVES)]}_{_SURNAMES[noise[1] % len(_SURNAMES)]}_{noise[2:].hex()}"
