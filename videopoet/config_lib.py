"""Typed views of ml_collections configs, with errors that name the key.

Configs are `ml_collections.ConfigDict`s built by `configs/<family>.py`
`get_config(arg)` and locked by `config_flags` (so `--config.modle.width=3`
is already an error naming `modle`). Library code never reads a ConfigDict
field by field: it turns a section into a frozen dataclass with
`from_config(Cls, config.section, 'config.section')`, which checks

  * that every key of the section is a field of `Cls` (typos name the key),
  * that each value has the field's type (`int`, `float`, `bool`, `str`,
    tuples of those, `Literal[...]` choices, `Optional[...]`), naming the key
    and what is allowed,

and then calls `Cls(**section)`. Nested dataclass fields are checked the same
way, so one call validates a whole tree.
"""

import dataclasses
import json
import types
import typing
from typing import Any, Literal, TypeVar

import ml_collections

T = TypeVar("T")


class ConfigError(ValueError):
  """A config key that does not exist, or a value that is not allowed."""


def _describe(tp: Any) -> str:
  origin = typing.get_origin(tp)
  if origin is Literal:
    return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
  if origin in (typing.Union, types.UnionType):
    return " or ".join(_describe(a) for a in typing.get_args(tp))
  if origin is tuple:
    args = typing.get_args(tp)
    if len(args) == 2 and args[1] is Ellipsis:
      return f"a tuple of {_describe(args[0])}"
    return "a tuple (" + ", ".join(_describe(a) for a in args) + ")"
  if tp is type(None):
    return "None"
  return getattr(tp, "__name__", str(tp))


def _matches(value: Any, tp: Any) -> bool:
  """Whether `value` is acceptable for the annotation `tp`."""
  if tp is Any:
    return True
  origin = typing.get_origin(tp)
  if origin is Literal:
    return value in typing.get_args(tp)
  if origin in (typing.Union, types.UnionType):
    return any(_matches(value, a) for a in typing.get_args(tp))
  if origin in (tuple, list):
    if not isinstance(value, (tuple, list)):
      return False
    args = typing.get_args(tp)
    if not args:
      return True
    if len(args) == 2 and args[1] is Ellipsis:
      return all(_matches(v, args[0]) for v in value)
    return len(args) == len(value) and all(
        _matches(v, a) for v, a in zip(value, args)
    )
  if origin is dict or tp is dict:
    return isinstance(value, (dict, ml_collections.ConfigDict))
  if tp is type(None):
    return value is None
  if tp is float:  # An int is a fine float (`--config.lr=1`).
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  if tp is int:
    return isinstance(value, int) and not isinstance(value, bool)
  if isinstance(tp, type):
    return isinstance(value, tp)
  return True


def _coerce(value: Any, tp: Any) -> Any:
  """Lists become tuples and ints become floats where the field says so."""
  origin = typing.get_origin(tp)
  if origin in (typing.Union, types.UnionType):
    for a in typing.get_args(tp):
      if _matches(value, a):
        return _coerce(value, a)
  if origin is tuple and isinstance(value, (list, tuple)):
    args = typing.get_args(tp)
    if len(args) == 2 and args[1] is Ellipsis:
      return tuple(_coerce(v, args[0]) for v in value)
    return tuple(_coerce(v, a) for v, a in zip(value, args))
  if tp is float and isinstance(value, int):
    return float(value)
  return value


def from_config(cls: type[T], section: Any, path: str = "config") -> T:
  """Builds dataclass `cls` from a config section, validating every key.

  Args:
    cls: a dataclass whose fields are annotated with the allowed types.
    section: a `ConfigDict` or a plain mapping.
    path: the dotted name of `section`, used in error messages.

  Returns:
    An instance of `cls`.

  Raises:
    ConfigError: naming the first unknown key or ill-typed value.
  """
  if isinstance(section, ml_collections.ConfigDict):
    section = section.to_dict()
  if not isinstance(section, dict):
    raise ConfigError(f"{path} must be a config section, got {section!r}")
  hints = typing.get_type_hints(cls)
  fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
  unknown = sorted(set(section) - set(fields))
  if unknown:
    raise ConfigError(
        f"{path}.{unknown[0]} is not a config key; the keys of {path} are: "
        + ", ".join(sorted(fields))
    )
  kwargs = {}
  for name, value in section.items():
    tp = hints[name]
    key = f"{path}.{name}"
    if dataclasses.is_dataclass(tp):
      kwargs[name] = from_config(tp, value, key)
      continue
    if not _matches(value, tp):
      raise ConfigError(
          f"{key}={value!r} is not allowed: it must be {_describe(tp)}"
      )
    kwargs[name] = _coerce(value, tp)
  try:
    return cls(**kwargs)
  except TypeError as e:  # A required field with no value in the config.
    raise ConfigError(f"{path}: {e}") from None


def to_json(config: ml_collections.ConfigDict) -> str:
  """The config as indented JSON, for `config.json` in the workdir."""
  return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)
