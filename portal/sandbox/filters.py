"""The ``FilterString`` of Galaxy's ExecuteBillQuery, parsed and evaluated for the emulator.

Galaxy passes the filter to its SQL layer, so the emulator accepts the SQL subset that clients
send in practice: comparisons ``= <> != > < >= <=`` against a quoted string (``''`` escapes a
quote) or a number, ``IN (…)`` / ``NOT IN (…)``, ``LIKE 'a%'``, ``IS [NOT] NULL``, combined with
``AND``, ``OR``, ``NOT`` and parentheses, keywords in any case.  Field names may be dotted
(``FOrgID.FNumber``).  Anything else is a syntax error, as it would be on the real server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["FilterSyntaxError", "compile_filter"]

Row = Callable[[str], Any]  # field name → value of one row
Predicate = Callable[[Row], bool]

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op><>|!=|>=|<=|=|<|>)"
    r"|(?P<punct>[(),])|(?P<word>[A-Za-z_][\w.]*))"
)
_KEYWORDS = {"AND", "OR", "NOT", "IN", "LIKE", "IS", "NULL"}


class FilterSyntaxError(ValueError):
    """The filter is not in the accepted subset."""


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FilterSyntaxError(f"过滤条件无法解析：{text[pos:pos + 20]}")
        pos = m.end()
        if m.group("str") is not None:
            out.append(("value", m.group("str")[1:-1].replace("''", "'")))
        elif m.group("num") is not None:
            out.append(("value", Decimal(m.group("num"))))
        elif m.group("op") is not None:
            out.append(("op", m.group("op")))
        elif m.group("punct") is not None:
            out.append((m.group("punct"), m.group("punct")))
        else:
            word = m.group("word")
            out.append(("kw", word.upper()) if word.upper() in _KEYWORDS else ("field", word))
    return out


def _compare(left: Any, right: Any) -> int | None:
    """-1/0/1 like SQL would compare a column with a literal; None when either is NULL."""
    if left is None or right is None:
        return None
    if isinstance(right, Decimal):
        try:
            number = Decimal(str(left))
        except InvalidOperation:
            return None
        return (number > right) - (number < right)
    text = str(left)
    return (text > right) - (text < right)


def _like(value: Any, pattern: str) -> bool:
    if value is None:
        return False
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, str(value), flags=re.S) is not None


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]]):
        self.tokens = tokens
        self.pos = 0

    def peek(self, kind: str, value: Any = None) -> bool:
        if self.pos >= len(self.tokens):
            return False
        k, v = self.tokens[self.pos]
        return k == kind and (value is None or v == value)

    def take(self, kind: str, value: Any = None) -> Any:
        if not self.peek(kind, value):
            got = self.tokens[self.pos][1] if self.pos < len(self.tokens) else "结尾"
            raise FilterSyntaxError(f"过滤条件语法错误：在 {got} 处")
        self.pos += 1
        return self.tokens[self.pos - 1][1]

    def expression(self) -> Predicate:
        parts = [self.conjunction()]
        while self.peek("kw", "OR"):
            self.take("kw")
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.peek("kw", "AND"):
            self.take("kw")
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def negation(self) -> Predicate:
        if self.peek("kw", "NOT"):
            self.take("kw")
            inner = self.negation()
            return lambda row: not inner(row)
        if self.peek("("):
            self.take("(")
            inner = self.expression()
            self.take(")")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        name = self.take("field")
        if self.peek("op"):
            op = self.take("op")
            value = self.take("value")
            test = {"=": lambda c: c == 0, "<>": lambda c: c != 0, "!=": lambda c: c != 0, ">": lambda c: c > 0,
                    "<": lambda c: c < 0, ">=": lambda c: c >= 0, "<=": lambda c: c <= 0}[op]
            return lambda row: (c := _compare(row(name), value)) is not None and test(c)
        negate = False
        if self.peek("kw", "NOT"):
            self.take("kw")
            negate = True
        if self.peek("kw", "IN"):
            self.take("kw")
            self.take("(")
            values = [self.take("value")]
            while self.peek(","):
                self.take(",")
                values.append(self.take("value"))
            self.take(")")
            return lambda row: any(_compare(row(name), v) == 0 for v in values) != negate
        if self.peek("kw", "LIKE"):
            self.take("kw")
            pattern = self.take("value")
            return lambda row: _like(row(name), str(pattern)) != negate
        if not negate and self.peek("kw", "IS"):
            self.take("kw")
            is_not = bool(self.peek("kw", "NOT") and self.take("kw"))
            self.take("kw", "NULL")
            return lambda row: (row(name) in (None, "")) != is_not
        raise FilterSyntaxError(f"过滤条件语法错误：字段 {name} 后缺少比较")


def compile_filter(text: str | None) -> Predicate:
    """A predicate over rows for ``text``; an empty filter keeps every row."""
    if not text or not text.strip():
        return lambda row: True
    parser = _Parser(_tokens(text))
    predicate = parser.expression()
    if parser.pos != len(parser.tokens):
        raise FilterSyntaxError(f"过滤条件语法错误：多余的 {parser.tokens[parser.pos][1]}")
    return predicate
