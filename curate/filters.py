"""The one filter language of the CLI, the API and the UI, parsed into a safe Polars predicate.

    dataset == "bridge" and n_steps > 20 and instruction ~ "cup" and "clutter" in tags

Grammar (keywords are case-insensitive)::

    expr    := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | "(" expr ")" | test
    test    := field OP value             OP: == != < <= > >=
             | field "~" string           case-insensitive substring (any element, for list fields)
             | value ["not"] "in" field   membership in a list field, e.g. "clutter" in tags
             | field ["not"] "in" [v, …]  field is one of the values
             | field "is" ["not"] null
             | field                      a boolean field, e.g. success
    field   := name ("." name)*           e.g. embodiment.robot, source.format
    value   := "string" | 'string' | number | true | false | null

User text never becomes SQL: the parser only accepts the grammar above, fields are checked against
the table schema, and values become Polars literals. Errors point at the position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa

from curate.errors import FilterError

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<op>==|!=|<=|>=|<|>|~|\(|\)|\[|\]|,)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)
MAX_DEPTH = 50
MAX_CONDITIONS = 500
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false"}
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


@dataclass(frozen=True)
class Token:
    kind: str  # string | number | op | name | keyword | end
    value: Any
    pos: int


@dataclass(frozen=True)
class Field:
    path: tuple[str, ...]
    pos: int

    @property
    def name(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str
    value: Any
    pos: int


@dataclass(frozen=True)
class Contains:
    """`value in field` for a list field."""

    field: Field
    value: Any
    negate: bool
    pos: int


@dataclass(frozen=True)
class OneOf:
    field: Field
    values: tuple[Any, ...]
    negate: bool
    pos: int


@dataclass(frozen=True)
class IsNull:
    field: Field
    negate: bool


@dataclass(frozen=True)
class Truthy:
    field: Field


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Compare | Contains | OneOf | IsNull | Truthy | And | Or | Not


def _unescape(raw: str, pos: int, text: str) -> str:
    out, i = [], 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\":
            nxt = raw[i + 1] if i + 1 < len(raw) else ""
            if nxt not in _ESCAPES:
                raise FilterError(f"unknown escape '\\{nxt}' in string", text=text, position=pos + i + 1)
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos] in "\"'":
                raise FilterError("unterminated string", text=text, position=pos)
            raise FilterError(f"unexpected character {text[pos]!r}", text=text, position=pos)
        kind = m.lastgroup
        raw = m.group()
        if kind == "string":
            tokens.append(Token("string", _unescape(raw[1:-1], pos + 1, text), pos))
        elif kind == "number":
            tokens.append(Token("number", float(raw) if any(c in raw for c in ".eE") else int(raw), pos))
        elif kind == "op":
            tokens.append(Token("op", raw, pos))
        elif kind == "name":
            if raw.lower() in _KEYWORDS:
                tokens.append(Token("keyword", raw.lower(), pos))
            else:
                tokens.append(Token("name", raw, pos))
        pos = m.end()
    tokens.append(Token("end", None, len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def _fail(self, expected: str, tok: Token | None = None) -> FilterError:
        tok = tok or self.tok
        found = "the end of the filter" if tok.kind == "end" else repr(tok.value)
        return FilterError(f"expected {expected}, found {found}", text=self.text, position=tok.pos)

    def _accept(self, kind: str, value: Any = None) -> Token | None:
        tok = self.tok
        if tok.kind == kind and (value is None or tok.value == value):
            self.i += 1
            return tok
        return None

    def _expect(self, kind: str, value: Any, what: str) -> Token:
        tok = self._accept(kind, value)
        if tok is None:
            raise self._fail(what)
        return tok

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise self._fail("a condition such as dataset == \"bridge\"")
        node = self._or()
        if self.tok.kind != "end":
            raise self._fail("'and', 'or' or the end of the filter")
        return node

    def _or(self) -> Node:
        items = [self._and()]
        while self._accept("keyword", "or"):
            items.append(self._and())
            if len(items) > MAX_CONDITIONS:
                raise FilterError(f"more than {MAX_CONDITIONS} conditions joined by 'or'", text=self.text,
                                  position=self.tok.pos)
        return items[0] if len(items) == 1 else Or(tuple(items))

    def _and(self) -> Node:
        items = [self._not()]
        while self._accept("keyword", "and"):
            items.append(self._not())
            if len(items) > MAX_CONDITIONS:
                raise FilterError(f"more than {MAX_CONDITIONS} conditions joined by 'and'", text=self.text,
                                  position=self.tok.pos)
        return items[0] if len(items) == 1 else And(tuple(items))

    def _not(self) -> Node:
        if self._accept("keyword", "not"):
            if self.depth >= MAX_DEPTH:
                raise FilterError(f"'not' nested deeper than {MAX_DEPTH}", text=self.text, position=self.tok.pos)
            self.depth += 1
            node = Not(self._not())
            self.depth -= 1
            return node
        if self.tok.kind == "op" and self.tok.value == "(":
            if self.depth >= MAX_DEPTH:
                raise FilterError(f"parentheses nested deeper than {MAX_DEPTH}", text=self.text, position=self.tok.pos)
            self.i += 1
            self.depth += 1
            node = self._or()
            self._expect("op", ")", "')'")
            self.depth -= 1
            return node
        return self._test()

    def _value(self) -> Any:
        tok = self.tok
        if tok.kind in ("string", "number"):
            self.i += 1
            return tok.value
        if tok.kind == "keyword" and tok.value in ("true", "false", "null"):
            self.i += 1
            return {"true": True, "false": False, "null": None}[tok.value]
        raise self._fail("a value (a quoted string, a number, true, false or null)")

    def _field(self) -> Field:
        tok = self._accept("name")
        if tok is None:
            raise self._fail("a field name")
        return Field(tuple(tok.value.split(".")), tok.pos)

    def _test(self) -> Node:
        start = self.tok
        if start.kind in ("string", "number") or (start.kind == "keyword" and start.value in ("true", "false")):
            value = self._value()
            negate = bool(self._accept("keyword", "not"))
            self._expect("keyword", "in", "'in' after a value (as in \"clutter\" in tags)")
            return Contains(self._field(), value, negate, start.pos)
        field = self._field()
        tok = self.tok
        if tok.kind == "op" and tok.value in ("==", "!=", "<", "<=", ">", ">=", "~"):
            self.i += 1
            value = self._value()
            if tok.value == "~" and not isinstance(value, str):
                raise FilterError("'~' needs a quoted string on its right", text=self.text, position=tok.pos)
            return Compare(field, tok.value, value, tok.pos)
        if tok.kind == "keyword" and tok.value == "is":
            self.i += 1
            negate = bool(self._accept("keyword", "not"))
            self._expect("keyword", "null", "'null' after 'is'")
            return IsNull(field, negate)
        if tok.kind == "keyword" and tok.value in ("in", "not"):
            negate = bool(self._accept("keyword", "not"))
            self._expect("keyword", "in", "'in'")
            self._expect("op", "[", "'[' to start a list of values")
            values = [self._value()]
            while self._accept("op", ","):
                values.append(self._value())
            self._expect("op", "]", "',' or ']'")
            return OneOf(field, tuple(values), negate, tok.pos)
        ends_test = (tok.kind in ("end", "keyword") and tok.value in (None, "and", "or")) or (
            tok.kind == "op" and tok.value == ")")
        if ends_test:
            return Truthy(field)
        raise self._fail("an operator (==, !=, <, <=, >, >=, ~, in, is)")


def parse_filter(text: str) -> Node:
    """Parse a filter into its syntax tree; raises FilterError pointing at the position."""
    if len(text) > 10_000:
        raise FilterError("filter is longer than 10,000 characters")
    return _Parser(text).parse()


def fields_of(node: Node) -> set[str]:
    """Top-level column names a filter reads (so a scan can project only those)."""
    if isinstance(node, And | Or):
        return set().union(*(fields_of(n) for n in node.items))
    if isinstance(node, Not):
        return fields_of(node.item)
    return {node.field.path[0]}


# ----------------------------------------------------------------------------------------------------------
# compilation to Polars, checked against an Arrow schema


class _Compiler:
    def __init__(self, text: str, schema: pa.Schema) -> None:
        self.text = text
        self.schema = schema

    def _err(self, message: str, pos: int | None) -> FilterError:
        return FilterError(message, text=self.text, position=pos)

    def _resolve(self, field: Field) -> tuple[pl.Expr, pa.DataType]:
        head = field.path[0]
        if head not in self.schema.names:
            known = ", ".join(sorted(n for n in self.schema.names if not n.startswith("_")))
            raise self._err(f"unknown field {head!r}; fields you can filter on: {known}", field.pos)
        dtype = self.schema.field(head).type
        expr = pl.col(head)
        for part in field.path[1:]:
            if not pa.types.is_struct(dtype):
                raise self._err(f"{head!r} has no sub-fields, so {field.name!r} does not exist", field.pos)
            names = [dtype.field(i).name for i in range(dtype.num_fields)]
            if part not in names:
                raise self._err(f"{field.name!r} does not exist; {head} has: {', '.join(names)}", field.pos)
            dtype = dtype.field(part).type
            expr = expr.struct.field(part)
        return expr, dtype

    def _check_value(self, field: Field, dtype: pa.DataType, value: Any, pos: int) -> Any:
        if value is None:
            return None
        if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
            if not isinstance(value, str):
                raise self._err(f"{field.name} is text: compare it with a quoted string, not {value!r}", pos)
            return value
        if pa.types.is_boolean(dtype):
            if not isinstance(value, bool):
                raise self._err(f"{field.name} is true/false: compare it with true or false, not {value!r}", pos)
            return value
        if pa.types.is_integer(dtype) or pa.types.is_floating(dtype):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self._err(f"{field.name} is a number: compare it with a number, not {value!r}", pos)
            return value
        if pa.types.is_timestamp(dtype):
            if not isinstance(value, str):
                raise self._err(f"{field.name} is a time: compare it with a quoted ISO date", pos)
            try:
                return pl.lit(value).str.to_datetime(time_zone="UTC")
            except Exception as exc:  # pragma: no cover - polars parses lazily
                raise self._err(f"not an ISO date: {value!r} ({exc})", pos) from None
        raise self._err(f"{field.name} cannot be compared with a single value", pos)

    def compile(self, node: Node) -> pl.Expr:
        if isinstance(node, And):
            out = self.compile(node.items[0])
            for item in node.items[1:]:
                out = out & self.compile(item)
            return out
        if isinstance(node, Or):
            out = self.compile(node.items[0])
            for item in node.items[1:]:
                out = out | self.compile(item)
            return out
        if isinstance(node, Not):
            return ~self.compile(node.item)
        expr, dtype = self._resolve(node.field)
        if isinstance(node, IsNull):
            return expr.is_not_null() if node.negate else expr.is_null()
        if isinstance(node, Truthy):
            if not pa.types.is_boolean(dtype):
                raise self._err(f"{node.field.name} is not true/false: add a comparison, e.g. "
                                f"{node.field.name} == ...", node.field.pos)
            return expr.fill_null(False)
        if isinstance(node, Contains):
            if not pa.types.is_list(dtype):
                raise self._err(f"'in' needs a list field on its right; {node.field.name} is not a list "
                                f"(did you mean {node.field.name} == ...?)", node.pos)
            value = self._check_value(node.field, dtype.value_type, node.value, node.pos)
            out = expr.list.contains(value).fill_null(False)
            return ~out if node.negate else out
        if isinstance(node, OneOf):
            values = [self._check_value(node.field, dtype, v, node.pos) for v in node.values]
            out = expr.is_in(values).fill_null(False)
            return ~out if node.negate else out
        assert isinstance(node, Compare)
        if node.op == "~":
            # case-insensitive literal search: the user's text is escaped, never a pattern of its own
            needle = "(?i)" + re.escape(node.value)
            if pa.types.is_list(dtype) and pa.types.is_string(dtype.value_type):
                return expr.list.eval(pl.element().str.contains(needle)).list.any().fill_null(False)
            if not pa.types.is_string(dtype):
                raise self._err(f"'~' searches text, but {node.field.name} is not text", node.pos)
            return expr.str.contains(needle).fill_null(False)
        if pa.types.is_list(dtype):
            raise self._err(f"{node.field.name} is a list: use \"value\" in {node.field.name}", node.pos)
        value = self._check_value(node.field, dtype, node.value, node.pos)
        if value is None:
            if node.op not in ("==", "!="):
                raise self._err("null can only be compared with == or != (or use 'is null')", node.pos)
            return expr.is_null() if node.op == "==" else expr.is_not_null()
        lit = value if isinstance(value, pl.Expr) else pl.lit(value)
        ops = {
            "==": expr == lit, "!=": expr != lit, "<": expr < lit,
            "<=": expr <= lit, ">": expr > lit, ">=": expr >= lit,
        }
        out = ops[node.op]
        return out.fill_null(node.op == "!=")


def compile_filter(text: str | None, schema: pa.Schema) -> pl.Expr:
    """Parse `text` and compile it into a Polars predicate over a table with `schema`.

    An empty or None filter matches everything. Raises FilterError for bad syntax or unknown fields.
    """
    if text is None or not text.strip():
        return pl.lit(True)
    return _Compiler(text, schema).compile(parse_filter(text))


# ----------------------------------------------------------------------------------------------------------
# pushdown into Lance: the few filters another table can evaluate itself, on its own indexed columns


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _to_sql(node: Node, columns: frozenset[str]) -> str | None:
    if isinstance(node, And | Or):
        parts = [_to_sql(item, columns) for item in node.items]
        if any(p is None for p in parts):
            return None
        joiner = " AND " if isinstance(node, And) else " OR "
        return "(" + joiner.join(p for p in parts if p is not None) + ")"
    if isinstance(node, Not):
        inner = _to_sql(node.item, columns)
        return None if inner is None else f"(NOT {inner})"
    if not isinstance(node, Compare | OneOf) or len(node.field.path) != 1 or node.field.name not in columns:
        return None
    if isinstance(node, Compare):
        if node.op not in ("==", "!=") or not isinstance(node.value, str):
            return None
        return f"({node.field.name} {'=' if node.op == '==' else '!='} {_sql_string(node.value)})"
    if not node.values or not all(isinstance(v, str) for v in node.values):
        return None
    listed = ", ".join(_sql_string(v) for v in node.values)
    return f"({node.field.name} {'NOT IN' if node.negate else 'IN'} ({listed}))"


def lance_predicate(text: str, columns: set[str] | frozenset[str]) -> str | None:
    """The filter as a Lance SQL predicate when it only compares `columns` with strings (==, !=, in, not in,
    combined with and/or/not), else None.

    For tables that carry a copy of a few episode columns (the vector tables carry `dataset`), so a filter on
    them is evaluated inside Lance through a scalar index instead of being resolved to an id list first. The
    columns must be non-null strings: SQL's NULL semantics differ from the filter language's. Values are quoted
    here, never spliced as text; anything outside that small subset returns None (the caller takes the general
    path, which also reports any error in the filter).
    """
    return _to_sql(parse_filter(text), frozenset(columns))
