"""Safe expressions for procedures: end conditions, limits, setpoints, checks.

A small tokenizer and recursive-descent parser build an AST; nothing ever goes through Python's
``eval``/``exec``/``compile``. The AST is compiled once into a tree of closures, so evaluating
``abs_current < 0.02C`` on every sample costs about a microsecond.

Grammar (lowest precedence first)::

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := sum [("<" | "<=" | ">" | ">=" | "==" | "!=") sum]     # no chaining
    sum     := product (("+" | "-") product)*
    product := unary (("*" | "/") unary)*
    unary   := ("-" | "+") unary | primary
    primary := NUMBER[UNIT] | "true" | "false" | STRING (only as an operand of == / !=)
             | NAME | FUNCTION "(" expr ("," expr)* ")" | "(" expr ")"

Names are identifiers joined by dots (``supply.current_max``, ``charge.ah``); they are looked
up in the environment as whole strings, never as attribute access. Functions come from
:data:`FUNCTION_ARITY` only.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from bench.errors import ConfigError, ProcedureError
from bench.procedure.units import C_RATE, UNITS, describe

Value = Any  # float | bool | str at run time
Env = Mapping[str, Any]
Functions = Mapping[str, Callable[..., Any]]
Compiled = Callable[[Env, Functions], Any]

#: Allowed functions -> (min args, max args). ``ocv_soc`` is supplied by the engine (cell V -> %).
FUNCTION_ARITY: dict[str, tuple[int, int]] = {
    "abs": (1, 1),
    "min": (2, 16),
    "max": (2, 16),
    "round": (1, 2),
    "clamp": (3, 3),
    "ocv_soc": (1, 1),
}


def _clamp(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


def _round(x: float, digits: float = 0) -> float:
    return round(x, int(digits))


BUILTIN_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs, "min": min, "max": max, "round": _round, "clamp": _clamp,
}

# Words that look like Python and must not be mistaken for names.
_FORBIDDEN_WORDS = frozenset({
    "lambda", "import", "from", "def", "class", "if", "else", "for", "while", "in", "is", "yield",
    "return", "await", "async", "del", "global", "nonlocal", "with", "as", "pass", "raise", "try",
    "except", "finally", "assert", "None", "eval", "exec", "compile", "open", "getattr", "setattr",
})

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?P<unit>[A-Za-z%][A-Za-z0-9%]*)?
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<string>"[^"]*"|'[^']*')
  | (?P<op><=|>=|==|!=|<|>|\+|-|\*|/|\(|\)|,)
    """,
    re.VERBOSE,
)

_CHAR_HINTS = {
    ".": "attribute access is not allowed",
    "[": "subscripts are not allowed",
    "]": "subscripts are not allowed",
    "=": "assignment is not allowed (use == to compare)",
    "'": "unterminated string",
    '"': "unterminated string",
    "%": "'%' is only allowed as a unit right after a number (3%)",
}


class ExprSyntaxError(Exception):
    """A problem at ``offset`` (0-based) inside the expression text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True)
class Token:
    kind: str        # number | name | string | op | end
    text: str
    offset: int
    unit: str | None = None


def tokenize(text: str) -> list[Token]:
    """Tokens of ``text``; a character that starts no token becomes an ``error`` token so the
    parser reports problems in reading order (``__import__`` before the ``.`` after it)."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            char = text[pos]
            tokens.append(Token("error", _CHAR_HINTS.get(char, f"unexpected character {char!r}"), pos))
            return tokens
        kind = match.lastgroup or ""
        if kind == "unit":  # lastgroup is the last group that matched: the unit after a number
            kind = "number"
        if kind == "number":
            tokens.append(Token("number", match.group("number"), pos, match.group("unit")))
        elif kind != "space":
            tokens.append(Token(kind, match.group(0), pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# ---------------------------------------------------------------------------------------------
# AST. ``kind`` is the static type: "num", "bool", "str" or "any" (a name: known only at run time).


@dataclass(frozen=True)
class Node:
    offset: int

    @property
    def kind(self) -> str:
        return "any"


@dataclass(frozen=True)
class Number(Node):
    value: float
    unit: str | None

    @property
    def kind(self) -> str:
        return "num"


@dataclass(frozen=True)
class Boolean(Node):
    value: bool

    @property
    def kind(self) -> str:
        return "bool"


@dataclass(frozen=True)
class String(Node):
    value: str

    @property
    def kind(self) -> str:
        return "str"


@dataclass(frozen=True)
class Name(Node):
    name: str


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "-" or "not"
    operand: Node

    @property
    def kind(self) -> str:
        return "bool" if self.op == "not" else "num"


@dataclass(frozen=True)
class Binary(Node):
    op: str  # + - * / < <= > >= == != and or
    left: Node
    right: Node

    @property
    def kind(self) -> str:
        return "num" if self.op in _ARITHMETIC else "bool"


@dataclass(frozen=True)
class Call(Node):
    function: str
    args: tuple[Node, ...]

    @property
    def kind(self) -> str:
        return "num"


_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
}
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def token(self) -> Token:
        token = self.tokens[self.index]
        if token.kind == "error":
            raise ExprSyntaxError(token.text, token.offset)
        return token

    def take(self) -> Token:
        token = self.token
        self.index += 1
        return token

    def is_op(self, *ops: str) -> bool:
        return self.token.kind == "op" and self.token.text in ops

    def is_word(self, word: str) -> bool:
        return self.token.kind == "name" and self.token.text == word

    def parse(self) -> Node:
        if self.token.kind == "end":
            raise ExprSyntaxError("empty expression", 0)
        node = self.parse_or()
        if self.token.kind != "end":
            raise self.unexpected()
        if node.kind == "str":
            raise ExprSyntaxError("strings are only allowed as an operand of == or !=", node.offset)
        return node

    def unexpected(self) -> ExprSyntaxError:
        token = self.token
        if token.kind == "end":
            return ExprSyntaxError("unexpected end of expression", token.offset)
        if token.kind == "op" and token.text == "(":
            return ExprSyntaxError("only the allowed functions can be called", token.offset)
        first = token.text.split(".")[0]
        if token.kind == "name" and first in _FORBIDDEN_WORDS:
            return ExprSyntaxError(f"{first!r} is not allowed in expressions", token.offset)
        return ExprSyntaxError(f"unexpected {token.text!r}", token.offset)

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self.is_word("or"):
            self.take()
            node = Binary(node.offset, "or", _logical(node), _logical(self.parse_and()))
        return node

    def parse_and(self) -> Node:
        node = self.parse_not()
        while self.is_word("and"):
            self.take()
            node = Binary(node.offset, "and", _logical(node), _logical(self.parse_not()))
        return node

    def parse_not(self) -> Node:
        if self.is_word("not"):
            offset = self.take().offset
            return Unary(offset, "not", _logical(self.parse_not()))
        return self.parse_compare()

    def parse_compare(self) -> Node:
        left = self.parse_sum()
        if not self.is_op(*_COMPARISONS):
            return left
        op = self.take()
        right = self.parse_sum()
        if self.is_op(*_COMPARISONS):
            raise ExprSyntaxError("chained comparisons are not allowed: use 'and'", self.token.offset)
        if op.text in ("==", "!="):
            for side in (left, right):
                if side.kind == "str" and not isinstance(side, String):
                    raise ExprSyntaxError("strings are only allowed as an operand of == or !=", side.offset)
        else:
            left, right = _numeric(left), _numeric(right)
        return Binary(left.offset, op.text, left, right)

    def parse_sum(self) -> Node:
        node = self.parse_product()
        while self.is_op("+", "-"):
            op = self.take()
            node = Binary(node.offset, op.text, _numeric(node), _numeric(self.parse_product()))
        return node

    def parse_product(self) -> Node:
        node = self.parse_unary()
        while self.is_op("*", "/"):
            op = self.take()
            if self.is_op("*"):
                raise ExprSyntaxError("'**' is not allowed", op.offset)
            node = Binary(node.offset, op.text, _numeric(node), _numeric(self.parse_unary()))
        return node

    def parse_unary(self) -> Node:
        if self.is_op("-"):
            offset = self.take().offset
            return Unary(offset, "-", _numeric(self.parse_unary()))
        if self.is_op("+"):
            self.take()
            return _numeric(self.parse_unary())
        return self.parse_postfix()

    def parse_postfix(self) -> Node:
        node = self.parse_primary()
        if self.token.kind == "op" and self.token.text == "(":
            raise ExprSyntaxError("only the allowed functions can be called", self.token.offset)
        return node

    def parse_primary(self) -> Node:
        token = self.token
        if token.kind == "number":
            self.take()
            return _number(token)
        if token.kind == "string":
            self.take()
            return String(token.offset, token.text[1:-1])
        if token.kind == "op" and token.text == "(":
            self.take()
            node = self.parse_or()
            if not self.is_op(")"):
                raise self.unexpected() if self.token.kind != "end" else ExprSyntaxError(
                    "missing ')'", self.token.offset)
            self.take()
            return node
        if token.kind == "name":
            return self.parse_name()
        raise self.unexpected()

    def parse_name(self) -> Node:
        token = self.take()
        name = token.text
        if name in ("true", "false"):
            return Boolean(token.offset, name == "true")
        if name in ("and", "or", "not"):
            raise ExprSyntaxError(f"{name!r} needs an operand before it", token.offset)
        first = name.split(".")[0]
        if first in _FORBIDDEN_WORDS:
            raise ExprSyntaxError(f"{first!r} is not allowed in expressions", token.offset)
        if any(part.startswith("__") for part in name.split(".")):
            raise ExprSyntaxError(f"names starting with '__' are not allowed: {name!r}", token.offset)
        if not self.is_op("("):
            return Name(token.offset, name)
        if name not in FUNCTION_ARITY:
            allowed = ", ".join(sorted(FUNCTION_ARITY))
            raise ExprSyntaxError(f"unknown function {name!r} (allowed: {allowed})", token.offset)
        self.take()
        args: list[Node] = []
        if not self.is_op(")"):
            args.append(_numeric(self.parse_or()))
            while self.is_op(","):
                self.take()
                args.append(_numeric(self.parse_or()))
        if not self.is_op(")"):
            raise self.unexpected() if self.token.kind != "end" else ExprSyntaxError(
                "missing ')'", self.token.offset)
        self.take()
        low, high = FUNCTION_ARITY[name]
        if not low <= len(args) <= high:
            wanted = str(low) if low == high else f"{low} to {high}"
            raise ExprSyntaxError(f"{name}() takes {wanted} arguments, got {len(args)}", token.offset)
        return Call(token.offset, name, tuple(args))


def _number(token: Token) -> Number:
    value = float(token.text)
    if token.unit is None:
        return Number(token.offset, value, None)
    unit = UNITS.get(token.unit)
    if unit is None:
        known = ", ".join(UNITS)
        raise ExprSyntaxError(f"unknown unit {token.unit!r} (known: {known})", token.offset + len(token.text))
    if token.unit == C_RATE:
        return Number(token.offset, value, C_RATE)
    return Number(token.offset, value * unit.factor, token.unit)


def _numeric(node: Node) -> Node:
    if node.kind == "bool":
        raise ExprSyntaxError("expected a number here, got a condition", node.offset)
    if node.kind == "str":
        raise ExprSyntaxError("strings are only allowed as an operand of == or !=", node.offset)
    return node


def _logical(node: Node) -> Node:
    if node.kind == "num":
        raise ExprSyntaxError("expected a condition here (a comparison or true/false), got a number",
                              node.offset)
    if node.kind == "str":
        raise ExprSyntaxError("strings are only allowed as an operand of == or !=", node.offset)
    return node


# ---------------------------------------------------------------------------------------------
# Compilation into closures.


class _MissingValueError(Exception):
    """A name or function missing while constant-folding."""


def _compile(node: Node, capacity_ah: float | None) -> Compiled:
    if _is_constant(node, capacity_ah):
        try:
            value = _constant(node, capacity_ah)
        except (ZeroDivisionError, TypeError, ValueError) as exc:
            failure = exc

            def fail(env: Env, fns: Functions) -> Any:
                raise failure
            return fail
        return lambda env, fns: value
    if isinstance(node, Number):  # an unbound C-rate: resolve against the run's nominal capacity
        rate = node.value
        return lambda env, fns: rate * env["capacity_nominal"]
    if isinstance(node, Name):
        name = node.name
        return lambda env, fns: env[name]
    if isinstance(node, Unary):
        operand = _compile(node.operand, capacity_ah)
        if node.op == "not":
            return lambda env, fns: not operand(env, fns)
        return lambda env, fns: -operand(env, fns)
    if isinstance(node, Binary):
        return _compile_binary(node, capacity_ah)
    if isinstance(node, Call):
        args = tuple(_compile(arg, capacity_ah) for arg in node.args)
        name = node.function
        builtin = BUILTIN_FUNCTIONS.get(name)

        def call(env: Env, fns: Functions) -> Any:
            function = fns.get(name, builtin)
            if function is None:
                raise _MissingValueError(f"function {name}() is not available here")
            return function(*(arg(env, fns) for arg in args))
        return call
    raise AssertionError(f"unhandled node {node!r}")


def _compile_binary(node: Binary, capacity_ah: float | None) -> Compiled:
    left = _compile(node.left, capacity_ah)
    right = _compile(node.right, capacity_ah)
    if node.op == "and":
        return lambda env, fns: left(env, fns) and right(env, fns)
    if node.op == "or":
        return lambda env, fns: left(env, fns) or right(env, fns)
    function = _ARITHMETIC.get(node.op) or _COMPARISONS[node.op]
    # The hot path is "name OP constant": one closure, one dict lookup, one comparison.
    if isinstance(node.left, Name) and _is_constant(node.right, capacity_ah):
        name, constant = node.left.name, _constant(node.right, capacity_ah)
        return lambda env, fns: function(env[name], constant)
    return lambda env, fns: function(left(env, fns), right(env, fns))


def _walk(node: Node) -> list[Node]:
    children: list[Node] = [node]
    if isinstance(node, Unary):
        children += _walk(node.operand)
    elif isinstance(node, Binary):
        children += _walk(node.left) + _walk(node.right)
    elif isinstance(node, Call):
        for arg in node.args:
            children += _walk(arg)
    return children


def _is_constant(node: Node, capacity_ah: float | None) -> bool:
    for sub in _walk(node):
        if isinstance(sub, Name):
            return False
        if isinstance(sub, Call) and sub.function not in BUILTIN_FUNCTIONS:
            return False
        if isinstance(sub, Number) and sub.unit == C_RATE and capacity_ah is None:
            return False
    return True


def _constant(node: Node, capacity_ah: float | None) -> Any:
    env = {"capacity_nominal": capacity_ah} if capacity_ah is not None else {}
    return _interpret(node, env, BUILTIN_FUNCTIONS)


def _interpret(node: Node, env: Env, fns: Functions) -> Any:
    """Direct tree-walking evaluator, for constant folding and validation-time partial evaluation."""
    if isinstance(node, (Boolean, String)):
        return node.value
    if isinstance(node, Number):
        if node.unit == C_RATE:
            if "capacity_nominal" not in env:
                raise _MissingValueError("capacity_nominal")
            return node.value * env["capacity_nominal"]
        return node.value
    if isinstance(node, Name):
        if node.name not in env:
            raise _MissingValueError(node.name)
        return env[node.name]
    if isinstance(node, Unary):
        value = _interpret(node.operand, env, fns)
        return (not value) if node.op == "not" else -value
    if isinstance(node, Binary):
        if node.op == "and":
            return _interpret(node.left, env, fns) and _interpret(node.right, env, fns)
        if node.op == "or":
            return _interpret(node.left, env, fns) or _interpret(node.right, env, fns)
        function = _ARITHMETIC.get(node.op) or _COMPARISONS[node.op]
        return function(_interpret(node.left, env, fns), _interpret(node.right, env, fns))
    if isinstance(node, Call):
        callee = fns.get(node.function) or BUILTIN_FUNCTIONS.get(node.function)
        if callee is None:
            raise _MissingValueError(node.function)
        return callee(*(_interpret(arg, env, fns) for arg in node.args))
    raise AssertionError(f"unhandled node {node!r}")


# ---------------------------------------------------------------------------------------------
# Units (dimensions) check.


def _dimension(node: Node, name_dims: Mapping[str, str | None],
               problems: list[tuple[int, str]]) -> str | None:
    """Dimension of ``node`` ("V", "A", ...) or None when unknown/dimensionless; records clashes."""
    if isinstance(node, Number):
        return UNITS[node.unit].dimension if node.unit else None
    if isinstance(node, Name):
        return name_dims.get(node.name)
    if isinstance(node, Unary):
        inner = _dimension(node.operand, name_dims, problems)
        return None if node.op == "not" else inner
    if isinstance(node, Call):
        dims = [_dimension(arg, name_dims, problems) for arg in node.args]
        if node.function == "ocv_soc":
            return "%"
        if node.function == "round":
            return dims[0]
        return _common(dims, node, problems)
    if isinstance(node, Binary):
        left = _dimension(node.left, name_dims, problems)
        right = _dimension(node.right, name_dims, problems)
        if node.op in ("and", "or"):
            return None
        if node.op == "*":
            return left if right is None else right if left is None else None
        if node.op == "/":
            return left if right is None else None
        common = _common([left, right], node, problems)
        return None if node.op in _COMPARISONS else common
    return None


def _common(dims: list[str | None], node: Node, problems: list[tuple[int, str]]) -> str | None:
    known = {d for d in dims if d is not None}
    if len(known) > 1:
        names = " and ".join(describe(d) for d in sorted(known))
        problems.append((node.offset, f"mixes units: {names}"))
        return None
    return next(iter(known), None)


# ---------------------------------------------------------------------------------------------


class Expr:
    """A parsed expression that remembers its source text and where it came from."""

    __slots__ = ("_compiled", "_names", "_node", "capacity_ah", "column", "exact", "file", "line", "text")

    _EMPTY: ClassVar[Mapping[str, Callable[..., Any]]] = {}

    def __init__(self, text: str, node: Node, *, file: str | None = None, line: int | None = None,
                 column: int | None = None, exact: bool = True, capacity_ah: float | None = None) -> None:
        self.text = text
        self.file = file
        self.line = line
        self.column = column
        self.exact = exact  # True when text[i] sits at column + i on ``line`` of the file
        self.capacity_ah = capacity_ah
        self._node = node
        self._compiled = _compile(node, capacity_ah)
        #: the names it reads, found once: lacks_value runs every sample for a limit's ``when``
        #: and a step's end conditions
        self._names = tuple(sorted({n.name for n in _walk(node) if isinstance(n, Name)}))

    @classmethod
    def parse(cls, text: str, *, file: str | None = None, line: int | None = None,
              column: int | None = None) -> Expr:
        """Parse ``text``; raise ConfigError at the exact column of the problem inside the file."""
        try:
            node = _Parser(text).parse()
        except ExprSyntaxError as exc:
            col = column + exc.offset if column is not None else exc.offset + 1
            raise ConfigError(f"expression {text!r}: {exc.message}",
                              file=file, line=line, column=col) from None
        return cls(text, node, file=file, line=line, column=column)

    # -- introspection ---------------------------------------------------------------------
    @property
    def node(self) -> Node:
        return self._node

    @property
    def kind(self) -> str:
        """Static type: "num", "bool" or "any" (depends on names)."""
        return self._node.kind

    def names(self) -> set[str]:
        return set(self._names)

    def lacks_value(self, env: Mapping[str, Any]) -> bool:
        """True when a quantity this expression reads is in ``env`` without a value yet (None: a
        BMS value not received): the expression cannot be judged now, which is not an error."""
        return any(env.get(name, 0) is None for name in self._names)

    def nodes(self) -> list[Node]:
        """Every node of the expression tree, root first."""
        return _walk(self._node)

    def name_offsets(self) -> list[tuple[str, int]]:
        return [(n.name, n.offset) for n in _walk(self._node) if isinstance(n, Name)]

    def functions(self) -> set[str]:
        return {n.function for n in _walk(self._node) if isinstance(n, Call)}

    def uses_c_rate(self) -> bool:
        return any(isinstance(n, Number) and n.unit == C_RATE for n in _walk(self._node))

    def is_constant(self) -> bool:
        return _is_constant(self._node, self.capacity_ah)

    def dimension(self, name_dims: Mapping[str, str | None]) -> tuple[str | None, list[tuple[int, str]]]:
        """(dimension of the result or None, [(offset, problem)]) given the names' dimensions."""
        problems: list[tuple[int, str]] = []
        return _dimension(self._node, name_dims, problems), problems

    # -- positions -------------------------------------------------------------------------
    def locate(self, offset: int = 0) -> tuple[int | None, int | None]:
        if self.column is None:
            return self.line, None
        return self.line, self.column + offset if self.exact else self.column

    def error(self, message: str, offset: int = 0) -> ConfigError:
        line, column = self.locate(offset)
        return ConfigError(message, file=self.file, line=line, column=column)

    def where(self) -> str:
        return self.error("").format().rstrip(": ") or "<expression>"

    def set_origin(self, file: str | None, line: int | None, column: int | None, exact: bool) -> None:
        self.file, self.line, self.column, self.exact = file, line, column, exact

    # -- evaluation ------------------------------------------------------------------------
    def bind_units(self, capacity_ah: float) -> Expr:
        """A copy with C-rates resolved to amperes against ``capacity_ah`` (and constants folded)."""
        return Expr(self.text, self._node, file=self.file, line=self.line, column=self.column,
                    exact=self.exact, capacity_ah=capacity_ah)

    def evaluate(self, env: Env, functions: Functions | None = None) -> Any:
        """Value of the expression; unbound C-rates use ``env["capacity_nominal"]``.

        ``functions`` adds to or overrides the built-ins (the engine passes ``ocv_soc``).
        """
        try:
            return self._compiled(env, functions if functions is not None else self._EMPTY)
        except KeyError as exc:
            raise ProcedureError(f"{self.where()}: {self.text!r}: no value for {exc.args[0]!r}") from None
        except _MissingValueError as exc:
            raise ProcedureError(f"{self.where()}: {self.text!r}: {exc}") from None
        except ZeroDivisionError:
            raise ProcedureError(f"{self.where()}: {self.text!r}: division by zero") from None
        except (TypeError, ValueError) as exc:
            raise ProcedureError(f"{self.where()}: {self.text!r}: {exc}") from None

    def fold(self, env: Env, functions: Functions | None = None) -> Any:
        """Partial evaluation for validation: the value if every name is in ``env``, else None."""
        if self.capacity_ah is not None and "capacity_nominal" not in env:
            env = {**env, "capacity_nominal": self.capacity_ah}
        return fold_node(self._node, env, functions)

    # -- dunder ------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Expr({self.text!r})"

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and other.text == self.text and other.capacity_ah == self.capacity_ah

    def __hash__(self) -> int:
        return hash(self.text)

    # -- pydantic --------------------------------------------------------------------------
    @classmethod
    def _from_value(cls, value: Any) -> Expr:
        if isinstance(value, Expr):
            return value
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        elif isinstance(value, str):
            text = value
        else:
            raise PydanticCustomError("expression_type", "expected an expression (text or number), got {got}",
                                      {"got": type(value).__name__})
        try:
            return cls(text, _Parser(text).parse())
        except ExprSyntaxError as exc:
            raise PydanticCustomError("expression", "expression '{text}': {problem}",
                                      {"text": text, "problem": exc.message, "offset": exc.offset}) from None

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._from_value,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda e: e.text),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {
            "anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}],
            "description": "expression: numbers with units (3.65V, 50mA, 0.5C, 8h), names, "
                           "+ - * /, comparisons, and/or/not, functions "
                           + ", ".join(sorted(FUNCTION_ARITY)),
        }


def fold_node(node: Node, env: Env, functions: Functions | None = None) -> Any:
    """Value of a sub-expression if every name it uses is in ``env``, else None (validation)."""
    try:
        return _interpret(node, env, {**BUILTIN_FUNCTIONS, **(functions or {})})
    except (_MissingValueError, ZeroDivisionError, TypeError, ValueError):
        return None
