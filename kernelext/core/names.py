"""Random container names, as podman gives them (``adjective_surname``)."""

from __future__ import annotations

import secrets

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
    return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_SURNAMES)}_{secrets.token_hex(2)}"
