"""Frozen, typed, nested configs: defaults and one-line docs live in the dataclass fields, once.

``option(default, doc)`` declares a field; ``nested(Cls, doc)`` a field that is itself a config (its
default is ``Cls()``, so every default exists in exactly one place). Nested fields are addressed with
dots: ``algo.model.lr``, ``algo.planner.population``, ``algo.trust_region.max_kl``.

``with_overrides(cfg, {"model.lr": 1e-3, ...}, "algo")`` returns a new config with type-checked values,
fails loudly (with close matches) on unknown keys at any depth, then validates the whole tree. Configs
are never mutated: derived values are computed by methods.

A config class may define ``validate(self, key)``: ``key(name)`` is the dotted name a user sets for
field ``name`` (``algo.model.elites``), so errors of a nested part name the key that sets it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin

from marlkit.core.errors import MarlkitError, suggest

C = TypeVar("C")
KeyFn = Callable[[str], str]


def option(default: Any, doc: str) -> Any:
    """A config field with its default and one-line documentation."""
    if isinstance(default, list | dict):
        raise TypeError("use tuples for sequence defaults: configs are frozen")
    return dataclasses.field(default=default, metadata={"doc": doc})


def nested(cls: type, doc: str) -> Any:
    """A field holding the config ``cls``; its defaults are ``cls``'s own."""
    return dataclasses.field(default_factory=cls, metadata={"doc": doc, "nested": True})


def is_config(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def describe(cfg: Any, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """``(dotted name, type, value, doc)`` of every leaf field of the config instance ``cfg``, for ``--help``."""
    hints = _hints(type(cfg))
    rows: list[tuple[str, str, Any, str]] = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if is_config(value):
            rows += describe(value, f"{prefix}{f.name}.")
        else:
            rows.append((prefix + f.name, _type_name(hints[f.name]), value, f.metadata.get("doc", "")))
    return rows


def leaf_keys(cfg: Any, prefix: str = "") -> list[str]:
    return [name for name, *_ in describe(cfg, prefix)]


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "|".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def coerce(name: str, tp: Any, value: Any) -> Any:
    """Convert ``value`` to the field type ``tp`` or raise a one-line error."""
    origin = get_origin(tp)
    if origin is Literal:
        if value not in get_args(tp):
            raise MarlkitError(
                f"{name} must be one of {', '.join(repr(a) for a in get_args(tp))}, got {value!r}"
                f"{suggest(str(value), [str(a) for a in get_args(tp)])}"
            )
        return value
    if origin in (types.UnionType, typing.Union):
        for arg in get_args(tp):
            if arg is type(None) and value is None:
                return None
            try:
                return coerce(name, arg, value)
            except MarlkitError:
                continue
        raise MarlkitError(f"{name}: {value!r} fits none of {_type_name(tp)}")
    if origin is tuple:
        items = value if isinstance(value, list | tuple) else [value]
        (item_type, *_rest) = get_args(tp)
        return tuple(coerce(name, item_type, v) for v in items)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise MarlkitError(f"{name} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise MarlkitError(f"{name} must be an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MarlkitError(f"{name} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise MarlkitError(f"{name} must be a string, got {value!r}")
        return value
    return value


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"lr": 1}}`` -> ``{"model.lr": 1}`` (config values are never mappings)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _unknown(cfg: Any, key: str, prefix: str) -> MarlkitError:
    valid = leaf_keys(cfg)
    # Close matches by whole key and by last part, so that "max_kll" finds "trust_region.max_kl".
    by_leaf: dict[str, list[str]] = {}
    for v in valid:
        by_leaf.setdefault(v.rsplit(".", 1)[-1], []).append(v)
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    leaves = difflib.get_close_matches(key.rsplit(".", 1)[-1], by_leaf, n=3, cutoff=0.5)
    close += [v for leaf in leaves for v in by_leaf[leaf]]
    close = list(dict.fromkeys(c for c in close if c != key))[:3]
    hint = f" Did you mean {', '.join(repr(prefix + c) for c in close)}?" if close else ""
    shown = ", ".join(valid) if len(valid) <= 60 else ", ".join(valid[:60]) + ", ..."
    return MarlkitError(f"unknown key '{prefix}{key}'.{hint} Valid {prefix.rstrip('.') or 'keys'}: {shown}")


def _apply(cfg: C, overrides: Mapping[str, Any], prefix: str) -> C:
    hints = _hints(type(cfg))
    names = {f.name for f in dataclasses.fields(cfg)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    inner: dict[str, dict[str, Any]] = {}
    for key, value in flatten(overrides).items():
        head, dot, rest = key.partition(".")
        if head not in names or (dot and not is_config(getattr(cfg, head))):
            raise _unknown(cfg, key, prefix)
        if is_config(getattr(cfg, head)):
            if not dot:
                raise MarlkitError(
                    f"'{prefix}{key}' is a group of options; set its keys, e.g. "
                    f"'{prefix}{leaf_keys(getattr(cfg, head), head + '.')[0]}=...'"
                )
            inner.setdefault(head, {})[rest] = value
        else:
            changes[head] = coerce(prefix + key, hints[head], value)
    for head, sub in inner.items():
        changes[head] = _apply(getattr(cfg, head), sub, f"{prefix}{head}.")
    return dataclasses.replace(cfg, **changes)  # type: ignore[type-var]


def validate(cfg: Any, prefix: str = "") -> None:
    """Validate every nested part (innermost first), then ``cfg`` itself; keys are named with ``prefix``.

    Rules that hold for every config come first: every number is finite (NaN and inf are never a
    valid setting), learning rates (``lr``, ``*_lr``) are positive, and layer sizes (``hidden``) are
    positive integers. Each config's own ``validate(key)`` adds its ranges."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if is_config(value):
            validate(value, f"{prefix}{f.name}.")
        else:
            _check_common(f.name, value, prefix + f.name)
    check = getattr(cfg, "validate", None)
    if check is not None:
        check(lambda name: prefix + name)


def _check_common(name: str, value: Any, key: str) -> None:
    numbers = value if isinstance(value, (tuple, list)) else (value,)
    for x in numbers:
        if isinstance(x, float) and not math.isfinite(x):
            raise MarlkitError(f"{key} must be a finite number, got {value!r}")
    if (name == "lr" or name.endswith("_lr")) and isinstance(value, (int, float)) and not value > 0:
        raise MarlkitError(f"{key} must be > 0, got {value!r}")
    if name == "hidden" and not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in numbers):
        raise MarlkitError(f"{key} must be a list of positive layer sizes such as [64, 64], got {list(numbers)}")


def with_overrides(cfg: C, overrides: Mapping[str, Any], section: str = "") -> C:
    """A copy of ``cfg`` with ``overrides`` (dotted keys or nested mappings) applied, type-checked and validated."""
    prefix = f"{section}." if section else ""
    new = _apply(cfg, overrides, prefix)
    validate(new, prefix)
    return new


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested parts become nested dicts (the layout of ``config.json``)."""
    return {f.name: to_dict(v) if is_config(v := getattr(cfg, f.name)) else v for f in dataclasses.fields(cfg)}


def require(condition: bool, message: str) -> None:
    if not condition:
        raise MarlkitError(message)


def require_at_least(cfg: Any, names: tuple[str, ...], minimum: float, key: KeyFn) -> None:
    """``key(name) must be >= minimum, got value`` for the first field of ``names`` below ``minimum``."""
    for name in names:
        value = getattr(cfg, name)
        require(value >= minimum, f"{key(name)} must be >= {minimum}, got {value}")
