"""Frozen, typed configs: defaults and one-line docs live in the dataclass fields.

``option(default, doc)`` declares a field; ``with_overrides(cfg, {...})`` returns a new config with
type-checked values and fails loudly (with close matches) on unknown keys. Configs are never
mutated: derived values are computed by methods.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin

from marlkit.errors import MarlkitError, suggest

C = TypeVar("C")


def option(default: Any, doc: str) -> Any:
    """A config field with its default and one-line documentation."""
    if isinstance(default, list | dict):
        raise TypeError("use tuples for sequence defaults: configs are frozen")
    return dataclasses.field(default=default, metadata={"doc": doc})


def describe(cls: type) -> list[tuple[str, str, Any, str]]:
    """``(name, type, default, doc)`` of every field, for ``--help``."""
    hints = typing.get_type_hints(cls)
    return [(f.name, _type_name(hints[f.name]), f.default, f.metadata.get("doc", "")) for f in dataclasses.fields(cls)]


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
        errors = []
        for arg in get_args(tp):
            if arg is type(None) and value is None:
                return None
            try:
                return coerce(name, arg, value)
            except MarlkitError as err:
                errors.append(str(err))
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


def with_overrides(cfg: C, overrides: Mapping[str, Any], section: str = "") -> C:
    """A copy of ``cfg`` with ``overrides`` applied, type-checked, then ``cfg.validate()`` if defined."""
    hints = typing.get_type_hints(type(cfg))
    names = [f.name for f in dataclasses.fields(cfg)]  # type: ignore[arg-type]
    prefix = f"{section}." if section else ""
    changes = {}
    for key, value in overrides.items():
        if key not in names:
            raise MarlkitError(
                f"unknown key '{prefix}{key}'.{suggest(key, names)} Valid {section or 'keys'}: {', '.join(names)}"
            )
        changes[key] = coerce(prefix + key, hints[key], value)
    new = dataclasses.replace(cfg, **changes)  # type: ignore[type-var]
    validate = getattr(new, "validate", None)
    if validate is not None:
        validate()
    return new


def to_dict(cfg: Any) -> dict[str, Any]:
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}


def algo_key(name: str) -> str:
    """The key a user sets for field ``name`` of an algorithm config."""
    return f"algo.{name}"


def require(condition: bool, message: str) -> None:
    if not condition:
        raise MarlkitError(message)


def require_at_least(cfg: Any, names: tuple[str, ...], minimum: float, key: Callable[[str], str]) -> None:
    """``key(name) must be >= minimum, got value`` for the first field of ``names`` below ``minimum``.
    ``key`` maps a field to the name the user sets (``algo.rollout_steps``)."""
    for name in names:
        value = getattr(cfg, name)
        require(value >= minimum, f"{key(name)} must be >= {minimum}, got {value}")


SECTIONS = ("algo", "env", "experiment")


def load_config_file(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A YAML, TOML or JSON file -> ``(top-level names, flat "section.key" overrides)``.

    Layout: optional top-level names (``algo_name``, ``env_name``; for sweeps ``algos``, ``envs``,
    ``seeds``, ``frames``) and the tables ``algo``, ``env`` and ``experiment``. A run's own
    ``config.json`` has this layout, so ``--config RUN/config.json`` re-creates that run."""
    import json
    import tomllib
    from pathlib import Path

    import yaml

    file = Path(path)
    if not file.exists():
        raise MarlkitError(f"config file {path} does not exist")
    text = file.read_text()
    try:
        if file.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        elif file.suffix == ".toml":
            data = tomllib.loads(text)
        elif file.suffix == ".json":
            data = json.loads(text)
        else:
            raise MarlkitError(f"config file {path} must end in .yaml, .yml, .toml or .json")
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise MarlkitError(f"cannot parse {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise MarlkitError(f"config file {path} must hold a mapping at the top level")
    names = {k: v for k, v in data.items() if k not in SECTIONS}
    valid = ("algo_name", "env_name", "algos", "envs", "seeds", "frames")
    for key in names:
        if key not in valid:
            raise MarlkitError(
                f"unknown top-level key '{key}' in {path}.{suggest(key, [*valid, *SECTIONS])} "
                f"Valid: {', '.join([*valid, *SECTIONS])}"
            )
    overrides = {}
    for section in SECTIONS:
        table = data.get(section) or {}
        if not isinstance(table, dict):
            raise MarlkitError(f"'{section}' in {path} must be a table of key = value")
        overrides.update({f"{section}.{k}": v for k, v in table.items()})
    return names, overrides
