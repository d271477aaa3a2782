"""Magic recipient numbers: valid Indonesian numbers that make the sandbox misbehave on purpose.

`6281190SSS000` answers status -SSS; `6281191L…` to `6281195K…` choose a DR letter, a slow,
dropped or hanging reply, or K transient -26 answers. For the table, see sandbox/README.md
("Magic recipient numbers").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DR_LETTERS = {"1": "D", "2": "U", "3": "F", "4": "R", "5": "E", "6": "P", "7": "X"}

_STATUS = re.compile(r"6281190(\d{3})000")
_LETTER = re.compile(r"6281191([1-7])00000")
_LATENCY = re.compile(r"6281192(\d{4})00")
_TRANSIENT = re.compile(r"6281195(\d)00000")


@dataclass(frozen=True, slots=True)
class Magic:
    """What a magic number asks for; the default instance asks for nothing."""

    status: int | None = None  # fixed reply status
    dr_letter: str | None = None  # final delivery letter
    latency_s: float = 0.0  # extra delay before the reply
    drop: bool = False  # abort the connection after accepting
    hang: bool = False  # hold the reply for hang_s after accepting
    transient: int = 0  # answer -26 this many times first


NONE = Magic()


def parse(gsm: str) -> Magic:
    """The magic behaviour of a recipient number (NONE for an ordinary number)."""
    if not gsm.startswith("628119") or len(gsm) != 13:
        return NONE
    if gsm == "6281193000000":
        return Magic(drop=True)
    if gsm == "6281194000000":
        return Magic(hang=True)
    for pattern, build in _BUILDERS:
        found = pattern.fullmatch(gsm)
        if found:
            return build(found.group(1))
    return NONE


def _status(digits: str) -> Magic:
    return Magic(status=-int(digits)) if int(digits) else NONE


_BUILDERS = (
    (_STATUS, _status),
    (_LETTER, lambda d: Magic(dr_letter=DR_LETTERS[d])),
    (_LATENCY, lambda d: Magic(latency_s=int(d) / 1000)),
    (_TRANSIENT, lambda d: Magic(transient=int(d))),
)
