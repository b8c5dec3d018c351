"""YAML files validated by pydantic models, with every error located as ``file:line:column``.

PyYAML's composer keeps node positions; we build plain Python data from the node tree while
recording where each path (``("steps", 3, "current")``) starts, then translate pydantic's
error locations back into lines and columns. Duplicate keys, which plain ``yaml.safe_load``
silently collapses, are errors here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader, ReaderError
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from bench.errors import ConfigError, InputError, InputErrors

PathKey = tuple[str | int, ...]
ModelT = TypeVar("ModelT", bound=BaseModel)

# Bounds on every YAML input (issue 15, point 3). An alias is a reference, so nine lines of nine
# aliases each expand to 9**9 nodes ("billion laughs"): composing stays cheap, building the data
# does not. The largest file in the repository is about 12 kB with some 1 500 nodes and no alias;
# the bounds leave ample room and answer any file within a second (PyYAML's pure-Python composer,
# which keeps node positions, reads about 400 kB/s).
MAX_FILE_BYTES = 256 * 1024
MAX_ALIASES = 100
MAX_NODES = 100_000  # after alias expansion
MAX_DEPTH = 64


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


class _PythonEvents(Reader, Scanner, Parser):
    """PyYAML's pure-Python reader, scanner and parser: the events when libyaml is not built in."""

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)


class _BoundedComposer(Composer):
    """A safe loader's composer that keeps every bound while it reads, before any data is built
    (the events come from the parser class it is combined with: :func:`_loader_class`).

    An alias adds the size of the subtree it refers to, so the count is that of the data the file
    expands to; the error points at the alias (or node) that crosses the bound.
    """

    events: Any = _PythonEvents
    # from the parser class combined with this one (annotations only: its methods are found there)
    peek_event: Callable[[], Any]
    dispose: Callable[[], None]

    def __init__(self, stream: str, file: str) -> None:
        self.events.__init__(self, stream)
        SafeConstructor.__init__(self)  # type: ignore[arg-type]
        Resolver.__init__(self)  # type: ignore[arg-type]
        Composer.__init__(self)
        self.file = file
        self.aliases = 0
        self.nodes = 0        # after alias expansion
        self.depth = 0
        self.open_anchors: list[str] = []  # anchors of the collections being composed
        self.extent: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, height), for aliases

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _bound_error(f"more than {MAX_ALIASES} YAML aliases", event.start_mark, self.file)
            if event.anchor in self.open_anchors:
                raise _bound_error(f"alias *{event.anchor} refers to a node that contains it",
                                   event.start_mark, self.file)
            node = super().compose_node(parent, index)
            if node is not None:  # an unknown anchor raised in the composer already
                size, height = self._extent(node)
                self._count(size, self.depth + height, event.start_mark)
            return node
        self._count(1, self.depth + 1, event.start_mark)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self.open_anchors.append(anchor)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1
            if anchor is not None:
                self.open_anchors.pop()

    def _count(self, nodes: int, depth: int, mark: Any) -> None:
        self.nodes += nodes
        if self.nodes > MAX_NODES:
            raise _bound_error(f"more than {MAX_NODES} YAML nodes once aliases are expanded", mark, self.file)
        if depth > MAX_DEPTH:
            raise _bound_error(f"YAML nested deeper than {MAX_DEPTH} levels"
                               + (" once aliases are expanded" if self.aliases else ""), mark, self.file)

    def _extent(self, node: yaml.Node) -> tuple[int, int]:
        """(nodes, height) of the data ``node`` expands to; memoised, so linear in the file."""
        known = self.extent.get(id(node))
        if known is not None:
            return known
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        size, height = 1, 1
        for child in children:
            child_size, child_height = self._extent(child)
            size += child_size
            height = max(height, child_height + 1)
            if size > MAX_NODES:  # no need to know how far beyond
                break
        self.extent[id(node)] = (size, height)
        return size, height


def _loader_class(events: type) -> type[_BoundedComposer]:
    """The bounded loader reading the events of ``events`` (libyaml's or PyYAML's parser)."""
    return type(f"_Bounded{events.__name__}Loader", (_BoundedComposer, events, SafeConstructor, Resolver),
                {"events": events})


# libyaml's parser hands the composer the same events with the same marks ~4x faster (the
# calibration's procedure 18 -> 4 ms, the UDS map 16 -> 7.5 ms: part of every `bench run`'s
# start; issue 17); its error messages are worded a little differently, with the same positions.
_BoundedLoader = _loader_class(yaml.cyaml.CParser if yaml.__with_libyaml__  # type: ignore[attr-defined]
                               else _PythonEvents)


def _bound_error(what: str, mark: Any, file: str) -> ConfigError:
    return ConfigError(f"{what}: refused (a bound on every input file; aliases that expand "
                       "without limit are a known attack)", file=file,
                       line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None)


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


def read_input(path: str | Path) -> str:
    """Text of an input file, refusing one larger than :data:`MAX_FILE_BYTES` before reading it."""
    file = str(path)
    try:
        with Path(path).open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("file not found", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc}", file=file) from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"larger than {MAX_FILE_BYTES} bytes: refused (input files are a few kB)",
                          file=file)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read file: not UTF-8: {exc}", file=file) from None


def _character_index(text: str, error: ReaderError) -> int:
    """Where in ``text`` the reader refused a character. libyaml counts its ``position`` in
    UTF-8 bytes, not characters: any non-ASCII character before it would shift a line/column
    taken from it. The refused character is the first of its kind in the text (the reader stops
    at the first character it does not allow), so it is looked up; the byte count otherwise."""
    character = error.character if isinstance(error.character, str) else chr(error.character)
    found = text.find(character)
    if found >= 0:
        return found
    return len(text.encode("utf-8")[: error.position or 0].decode("utf-8", "ignore"))


def load_yaml(path: str | Path, text: str | None = None) -> LocatedData:
    """Parse a YAML file (or ``text`` attributed to ``path``) keeping node positions."""
    file = str(path)
    if text is None:
        text = read_input(path)
    elif len(text) > MAX_FILE_BYTES:
        raise ConfigError(f"larger than {MAX_FILE_BYTES} characters: refused", file=file)
    loader: _BoundedComposer | None = None
    try:
        loader = _BoundedLoader(text, file)
        node = loader.get_single_node()
    except ReaderError as exc:  # a character YAML does not allow (e.g. a control character)
        at = _character_index(text, exc)
        raise ConfigError(f"invalid YAML: {str(exc).splitlines()[0]}", file=file,
                          line=text.count("\n", 0, at) + 1, column=at - text.rfind("\n", 0, at)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"invalid YAML: {problem}", file=file, line=line, column=column) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    finally:
        if loader is not None:
            loader.dispose()
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
