"""User-facing errors: one line that says what is wrong and what is valid instead."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MarlkitError(ValueError):
    """Bad user input. The CLI prints ``str(err)`` as one line, without a traceback."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def suggest(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """A ``" Did you mean ...?"`` suffix naming the closest candidates, or ``""``."""
    matches = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)
    return f" Did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""
