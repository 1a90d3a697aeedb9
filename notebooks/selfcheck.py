"""Self-check cells of the labs: feedback on an answer without shipping the answer (not part of kernelext).

A student's answer is first put in a canonical form for its :class:`Kind` (so ``["start", "pause"]``
matches ``{"pause", "start"}`` and ``"44"`` matches ``44``), then compared with *digests*: salted SHA-256
hashes of canonical answers. The cell holds the digest of the right answer and those of the wrong answers
a teacher expects, each with its own hint; the explanation shown for a right answer is sealed with the
right answer itself, so nothing in the student's copy reads as the answer. (An answer with few possible
values can still be guessed by trying them all, as it could in the cell itself.) The autograder's own
tests are nbgrader hidden tests: they compare in plain form and are not in the student's copy.

A teacher writing a new exercise prints what its check cell needs with::

    python notebooks/selfcheck.py "Exercise 1" names "start,pause" "why it is right"
    python notebooks/selfcheck.py "Exercise 1" names "start" -    # the digest of a wrong answer, for a hint
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import sys
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

#: Mixed into every digest, so a table of digests from elsewhere does not match these.
SALT = "kernelext-labs-1"
#: Hex digits of a digest kept in a cell: enough to tell answers apart, short enough to read.
DIGEST_CHARS = 16
_BOOL_WORDS = {"true": True, "yes": True, "y": True, "false": False, "no": False, "n": False}


class Kind(Enum):
    """What an answer is, which decides when two answers are the same."""

    NAMES = "names"      # a set of words: any iterable (or "a, b") of names, order and case ignored
    NUMBER = "number"    # an integer: 44, "44", 44.0
    NUMBERS = "numbers"  # an ordered sequence of integers: [0, 137], (0, "137"), "0, 137"
    FLAG = "flag"        # a yes/no: True, "true", "yes"
    OPTION = "option"    # a keyword or flag name: leave_running, "--leave-running", "leave-running"
    TEXT = "text"        # a string, surrounding blanks and quotes ignored


class AnswerTypeError(TypeError):
    """The answer cannot be read as its kind; the message says what was expected."""


def _number(value: Any) -> int:
    if isinstance(value, bool):
        raise AnswerTypeError(f"expected a number, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise AnswerTypeError(f"expected a whole number, got {value!r}")


def _words(value: Any) -> list[str]:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, Iterable):
        raise AnswerTypeError(f"expected a collection of names, got {value!r}")
    words = []
    for item in value:
        if not isinstance(item, str):
            raise AnswerTypeError(f"expected names (strings), got {item!r}")
        words.append(item.strip().strip("'\"").removesuffix("()").lower())
    return words


def canonical(kind: Kind, value: Any) -> str:
    """The answer in one canonical text form; raises AnswerTypeError when it cannot be read as ``kind``."""
    if kind is Kind.NAMES:
        return ",".join(sorted(set(_words(value))))
    if kind is Kind.NUMBER:
        return str(_number(value))
    if kind is Kind.NUMBERS:
        items = value.replace(",", " ").split() if isinstance(value, str) else value
        if not isinstance(items, Iterable):
            raise AnswerTypeError(f"expected a sequence of numbers, got {value!r}")
        return ",".join(str(_number(v)) for v in items)
    if kind is Kind.FLAG:
        if isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return str(_BOOL_WORDS[value.strip().lower()])
        raise AnswerTypeError(f"expected True or False, got {value!r}")
    if not isinstance(value, str):
        raise AnswerTypeError(f"expected a string, got {value!r}")
    text = value.strip().strip("'\"").strip()
    return text.lstrip("-").replace("-", "_").removesuffix("=true").lower() if kind is Kind.OPTION else text


def equivalent(kind: Kind, answer: Any, expected: Any) -> bool:
    """True if ``answer`` is ``expected`` once both are in canonical form (what hidden tests assert)."""
    try:
        return canonical(kind, answer) == canonical(kind, expected)
    except AnswerTypeError:
        return False


def digest(exercise: str, kind: Kind, value: Any) -> str:
    text = f"{SALT}\0{exercise}\0{kind.value}\0{canonical(kind, value)}"
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]


def _keystream(exercise: str, form: str, length: int) -> bytes:
    key = hashlib.sha256(f"{SALT}\0seal\0{exercise}\0{form}".encode()).digest()
    blocks = (hashlib.sha256(key + i.to_bytes(4, "big")).digest() for i in range((length + 31) // 32))
    return b"".join(blocks)[:length]


def seal(exercise: str, kind: Kind, value: Any, message: str) -> str:
    """``message`` encrypted with the canonical answer: only the right answer opens it."""
    data = message.encode()
    stream = _keystream(exercise, canonical(kind, value), len(data))
    return base64.b64encode(bytes(a ^ b for a, b in zip(data, stream, strict=True))).decode()


def _unseal(exercise: str, form: str, token: str) -> str:
    data = base64.b64decode(token)
    return bytes(a ^ b for a, b in zip(data, _keystream(exercise, form, len(data)), strict=True)).decode()


def self_check(exercise: str, answer: Any, kind: Kind, *, right: str, explain: str,
               hints: Mapping[str, str], hint: str) -> bool:
    """Print one line of feedback on ``answer``: right (and why), or the hint for this wrong answer.

    ``right`` is the digest of the right answer, ``explain`` the sealed explanation, ``hints`` the digests
    of expected wrong answers with their hints, ``hint`` the one for any other answer. ``None`` (or an
    empty collection) is "not answered yet".
    """
    if answer is None or (kind is Kind.NAMES and not isinstance(answer, str) and not answer) or (
            kind is Kind.NUMBERS and isinstance(answer, (list, tuple)) and None in answer):
        print(f"… {exercise}: not answered yet. Hint: {hint}")
        return False
    try:
        form = canonical(kind, answer)
        mine = digest(exercise, kind, answer)
    except AnswerTypeError as exc:
        print(f"✘ {exercise}: {exc}.")
        return False
    if hmac.compare_digest(mine, right):
        print(f"✔ {exercise}: right. {_unseal(exercise, form, explain)}")
        return True
    print(f"✘ {exercise}: not quite. Hint: {hints.get(mine, hint)}")
    return False


def main(argv: list[str]) -> None:
    exercise, kind_name, value, message = argv
    kind = Kind(kind_name)
    parsed: Any = value.split(",") if kind in (Kind.NAMES, Kind.NUMBERS) else value
    print(f"digest:  {digest(exercise, kind, parsed)!r}")
    if message != "-":
        print(f"explain: {seal(exercise, kind, parsed, message)!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
