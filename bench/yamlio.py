"""YAML files validated by pydantic models, with every error located as ``file:line:column``.

PyYAML's composer keeps node positions; we build plain Python data from the node tree while
recording where each path (``("steps", 3, "current")``) starts, then translate pydantic's
error locations back into lines and columns. Duplicate keys, which plain ``yaml.safe_load``
silently collapses, are errors here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from bench.errors import ConfigError, InputError, InputErrors

PathKey = tuple[str | int, ...]
ModelT = TypeVar("ModelT", bound=BaseModel)


class LocatedData:
    """Data loaded from YAML plus the position (1-based line, column) of every path in it."""

    def __init__(self, data: Any, positions: dict[PathKey, tuple[int, int]], file: str) -> None:
        self.data = data
        self.positions = positions
        self.file = file

    def locate(self, path: PathKey) -> tuple[int | None, int | None]:
        """Position of ``path`` or of its nearest ancestor present in the file."""
        key = tuple(path)
        while key:
            if key in self.positions:
                return self.positions[key]
            key = key[:-1]
        return self.positions.get((), (None, None))

    def error(self, path: PathKey, message: str) -> ConfigError:
        line, column = self.locate(path)
        field = ".".join(str(p) for p in path) or None
        return ConfigError(message, file=self.file, line=line, column=column, field=field)


def _construct(node: yaml.Node, path: PathKey, positions: dict[PathKey, tuple[int, int]], file: str) -> Any:
    positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConfigError(
                    "YAML merge keys (<<) are not supported",
                    file=file, line=key_node.start_mark.line + 1, column=key_node.start_mark.column + 1,
                )
            key = _scalar(key_node)
            if not isinstance(key, (str, int, float, bool)) or isinstance(key, list):
                raise ConfigError(
                    "mapping keys must be plain scalars",
                    file=file, line=key_node.start_mark.line + 1, column=key_node.start_mark.column + 1,
                )
            if key in result:
                raise ConfigError(
                    f"duplicate key {key!r}",
                    file=file, line=key_node.start_mark.line + 1, column=key_node.start_mark.column + 1,
                )
            result[key] = _construct(value_node, (*path, str(key)), positions, file)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), positions, file) for i, item in enumerate(node.value)]
    return _scalar(node)


_SCALAR_LOADER = yaml.SafeLoader("")


def _scalar(node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return _SCALAR_LOADER.construct_object(node, deep=True)
    return None


def load_yaml(path: str | Path, text: str | None = None) -> LocatedData:
    """Parse a YAML file (or ``text`` attributed to ``path``) keeping node positions."""
    file = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError("file not found", file=file) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read file: {exc}", file=file) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"invalid YAML: {problem}", file=file, line=line, column=column) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    positions: dict[PathKey, tuple[int, int]] = {}
    if node is None:
        return LocatedData({}, {(): (1, 1)}, file)
    try:
        data = _construct(node, (), positions, file)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise ConfigError(
            f"invalid YAML value: {exc.problem}", file=file,
            line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None,
        ) from None
    return LocatedData(data, positions, file)


def validation_errors(exc: ValidationError, located: LocatedData) -> InputErrors:
    """Translate a pydantic ValidationError into located input errors."""
    errors: list[InputError] = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
        # pydantic adds the union member's tag name into the location; drop entries that are
        # not real keys of the document so the position stays precise.
        real: list[str | int] = []
        for part in loc:
            candidate = (*real, part if isinstance(part, int) else str(part))
            if candidate in located.positions or err["type"] in {"missing", "extra_forbidden"}:
                real.append(part)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}"
        elif err["type"] == "missing":
            msg = f"missing required key {loc[-1]!r}"
        elif err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        errors.append(located.error(tuple(real), msg))
    return InputErrors(errors)


def load_model(model: type[ModelT], path: str | Path, *, text: str | None = None,
               context: Mapping[str, Any] | None = None) -> ModelT:
    """Load ``path`` and validate it as ``model``; raise located :class:`InputErrors`."""
    located = load_yaml(path, text)
    if not isinstance(located.data, dict):
        raise located.error((), "the file must hold a mapping at its top level")
    try:
        return model.model_validate(located.data, context=dict(context or {}))
    except ValidationError as exc:
        raise validation_errors(exc, located) from None
