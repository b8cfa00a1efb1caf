"""``module.path:Attr`` references, the way users name their own scenarios and algorithms."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from marlkit.core.errors import MarlkitError, suggest


def import_attr(spec: str, what: str) -> Any:
    """The attribute ``Attr`` of module ``module.path``; the working directory is importable, as with
    ``python -m`` (the ``marlkit`` console script would otherwise not see the user's own packages)."""
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise MarlkitError(f"cannot import module '{module_name}' for {what} '{spec}': {err}") from None
    if not hasattr(module, attr):
        public = [n for n in dir(module) if not n.startswith("_")]
        raise MarlkitError(f"module '{module_name}' has no attribute '{attr}'.{suggest(attr, public)}")
    return getattr(module, attr)
