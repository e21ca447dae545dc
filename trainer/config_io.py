"""Reading, checking and writing the training configuration's raw tables.

Why apart from the dataclasses: the loader is generic (it builds any dataclass tree from nested
tables with typed, named errors) and the TOML writer exists only because the stdlib reads TOML
but cannot write it; neither knows what a training run is.

Overrides are ``section.key=value`` with ``value`` parsed as a TOML literal (``3``, ``1e-6``,
``true``, ``[1, 2]``, ``"text"``) and taken as a plain string when it is not one. Optional
fields accept ``none``/``null`` to unset them. ``None`` fields are left out of TOML (it has no
null) — every optional field defaults to ``None``, so the round trip holds.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import tomllib
import types
from dataclasses import fields
from pathlib import Path
from typing import Any, Iterable, Union, get_args, get_origin, get_type_hints

from ..core.errors import Ar3dError


class ConfigError(Ar3dError, ValueError):
    """The training configuration is invalid; the message names the key and the fix."""


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw table of a .toml / .yaml / .yml / .json config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' not found; pass an existing .toml or .yaml file")
    try:
        text = path.read_text()
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"config file '{path}': unknown extension '{path.suffix}'; use .toml, .yaml/.yml or .json")
    except ConfigError:
        raise
    except Exception as e:  # tomllib/yaml/json parse errors carry the line number
        raise ConfigError(f"cannot parse config file '{path}': {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a table of sections, not {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b.c=value"`` → (["a", "b", "c"], value), value a TOML literal or else the string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part.strip() for part in key.split(".")):
        raise ConfigError(f"override '{text}' is not section.key=value (e.g. --set rollout.group_size=4)")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return [p.strip() for p in key.split(".")], value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Set each ``section.key=value`` in the raw table (in place; later overrides win)."""
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for i, k in enumerate(keys[:-1]):
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{text}': '{'.'.join(keys[: i + 1])}' is a value, not a table")
        node[keys[-1]] = value
    return data



# --- building dataclasses from raw tables ----------------------------------------------------
def build_dataclass(cls, data: Any, prefix: str):
    where = f"[{prefix}]" if prefix else "the top level (sections)"
    if not isinstance(data, dict):
        raise ConfigError(f"'{prefix}' must be a table of keys, got {data!r}")
    hints = get_type_hints(cls)
    valid = [f.name for f in fields(cls)]
    unknown = [k for k in data if k not in valid]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(str(k), valid, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(
            f"unknown config key '{_join(prefix, k)}'{hint}; valid keys in {where}: {', '.join(valid)}"
        )
    kwargs = {k: _coerce(v, hints[k], _join(prefix, k)) for k, v in data.items()}
    return cls(**kwargs)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError:
                pass
        raise _type_error(key, tp, value)
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        if isinstance(value, (list, tuple)):
            return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
            if len(value) == len(args):
                return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    elif origin is dict or tp is dict:
        if isinstance(value, dict):
            return dict(value)
    else:  # pragma: no cover - a field type this loader does not know
        raise TypeError(f"config field '{key}' has an unsupported type {tp}")
    raise _type_error(key, tp, value)


def _type_error(key: str, tp: Any, value: Any) -> ConfigError:
    return ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _type_name(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or none" if type(None) in args else "")
    if origin is list:
        return f"a list of {_type_name(args[0])}"
    if origin is tuple:
        return f"a list of {len(args)} {_type_name(args[0])}" if args and args[-1] is not Ellipsis else "a list"
    if origin is dict or tp is dict:
        return "a table"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def field_in(message: str, section: Any, default: str = "") -> str:
    """The section field a ValueError message starts with (for a precise key in the report)."""
    names = sorted((f.name for f in fields(section)), key=len, reverse=True)
    return next((n for n in names if message.startswith(n)), default or names[-1])


def plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


# --- a tiny TOML writer (tomllib reads only) ---------------------------------------------------
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def dumps_toml(data: dict[str, Any]) -> str:
    """TOML text of nested dicts of str/int/float/bool/lists; ``None`` values are left out."""
    lines: list[str] = []

    def table(d: dict, prefix: str) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict) and v is not None}
        subtables = {k: v for k, v in d.items() if isinstance(v, dict)}
        if prefix and (scalars or not subtables):
            lines.append(f"\n[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
        for k, v in subtables.items():
            table(v, f"{prefix}.{_toml_key(k)}" if prefix else _toml_key(k))

    table(data, "")
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items() if x is not None)
        return "{" + items + "}"
    raise ConfigError(f"cannot write {v!r} ({type(v).__name__}) to TOML")
