"""Kubernetes label and field selectors, parsed the way the API server parses them.

`LabelSelector` follows k8s.io/apimachinery/pkg/labels (what `kubectl -l` sends):
`key`, `!key`, `key=v`, `key==v`, `key!=v`, `key in (a,b)`, `key notin (a,b)`,
`key>N`, `key<N`, requirements joined by commas (logical AND).  Keys and values are
validated with the same rules, so a selector this module accepts is one a real API
server accepts too.  `FieldSelector` follows k8s.io/apimachinery/pkg/fields:
`path=v`, `path==v`, `path!=v`, with backslash escapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from tracer.util.errors import UsageError


class SelectorError(UsageError):
    """A selector the API server would reject (HTTP 400)."""


class Op(Enum):
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    GREATER_THAN = ">"
    LESS_THAN = "<"


# Validation rules from k8s.io/apimachinery/pkg/util/validation.
_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_RE = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_NAME_MAX = 63
_PREFIX_MAX = 253


def _validate_key(key: str) -> None:
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix or len(prefix) > _PREFIX_MAX or not _DNS1123_SUBDOMAIN_RE.fullmatch(prefix):
            raise SelectorError(f"invalid label key {key!r}: prefix part must be a "
                                "lowercase DNS subdomain of at most 253 characters")
    else:
        raise SelectorError(f"invalid label key {key!r}: a qualified name must consist of "
                            "an optional DNS subdomain prefix and '/' and a name")
    if not name or len(name) > _NAME_MAX or not _NAME_RE.fullmatch(name):
        raise SelectorError(f"invalid label key {key!r}: name part must be 1-63 "
                            "alphanumeric characters, '-', '_' or '.', starting and "
                            "ending with an alphanumeric character")


def _validate_value(value: str) -> None:
    if len(value) > _NAME_MAX or not _VALUE_RE.fullmatch(value):
        raise SelectorError(f"invalid label value {value!r}: must be at most 63 "
                            "alphanumeric characters, '-', '_' or '.', starting and "
                            "ending with an alphanumeric character (or empty)")


def _parse_int(text: str) -> int | None:
    # Go's strconv.ParseInt(s, 10, 64): optional sign, decimal digits, 64-bit range.
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


@dataclass(frozen=True)
class Requirement:
    key: str
    op: Op
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _validate_key(self.key)
        if self.op in (Op.EXISTS, Op.DOES_NOT_EXIST):
            if self.values:
                raise SelectorError(f"values set must be empty for exists and does not exist "
                                    f"({self.key})")
        elif self.op in (Op.IN, Op.NOT_IN):
            if not self.values:
                raise SelectorError(f"for 'in', 'notin' operators, values set can't be empty "
                                    f"({self.key})")
        elif len(self.values) != 1:
            raise SelectorError(f"exact-match compatibility requires one single value "
                                f"({self.key})")
        if self.op in (Op.GREATER_THAN, Op.LESS_THAN):
            if _parse_int(self.values[0]) is None:
                raise SelectorError(f"for 'Gt', 'Lt' operators, the value must be an integer "
                                    f"({self.key}{self.op.value}{self.values[0]})")
        else:
            for value in self.values:
                _validate_value(value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key, "")
        match self.op:
            case Op.EXISTS:
                return present
            case Op.DOES_NOT_EXIST:
                return not present
            case Op.EQUALS | Op.DOUBLE_EQUALS | Op.IN:
                return present and value in self.values
            case Op.NOT_EQUALS | Op.NOT_IN:
                # An absent label is "not equal": kubectl -l 'app!=web' lists unlabelled pods.
                return not present or value not in self.values
            case Op.GREATER_THAN | Op.LESS_THAN:
                have = _parse_int(value) if present else None
                want = _parse_int(self.values[0])
                if have is None or want is None:
                    return False
                return have > want if self.op is Op.GREATER_THAN else have < want

    def __str__(self) -> str:
        match self.op:
            case Op.EXISTS:
                return self.key
            case Op.DOES_NOT_EXIST:
                return f"!{self.key}"
            case Op.IN | Op.NOT_IN:
                return f"{self.key} {self.op.value} ({','.join(sorted(self.values))})"
            case _:
                return f"{self.key}{self.op.value}{self.values[0]}"


_SPECIAL = frozenset("=!(),<>")
_OPERATORS = {"=": Op.EQUALS, "==": Op.DOUBLE_EQUALS, "!=": Op.NOT_EQUALS,
              ">": Op.GREATER_THAN, "<": Op.LESS_THAN, "in": Op.IN, "notin": Op.NOT_IN}
_END = ""  # token for the end of the input


def _tokenize(text: str) -> list[str]:
    """Split like the apimachinery lexer: runs of non-special characters are
    identifiers; `==` and `!=` are single tokens; whitespace only separates."""
    tokens: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _SPECIAL:
            two = text[i:i + 2]
            if two in ("==", "!="):
                tokens.append(two)
                i += 2
            else:
                tokens.append(ch)
                i += 1
        else:
            j = i
            while j < len(text) and not text[j].isspace() and text[j] not in _SPECIAL:
                j += 1
            tokens.append(text[i:j])
            i = j
    return tokens


def _is_identifier(token: str) -> bool:
    return token != _END and token not in _SPECIAL and token not in ("==", "!=")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> str:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else _END

    def take(self) -> str:
        token = self.peek()
        self.pos += 1
        return token

    def fail(self, found: str, expected: str) -> SelectorError:
        shown = "end of string" if found == _END else found
        return SelectorError(f"unable to parse requirement: found {shown!r}, "
                             f"expected: {expected} (in selector {self.text!r})")

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        if self.peek() == _END:
            return requirements
        while True:
            token = self.peek()
            if not (_is_identifier(token) or token == "!"):
                raise self.fail(token, "!, identifier, or 'end of string'")
            requirements.append(self.requirement())
            token = self.take()
            if token == _END:
                return requirements
            if token != ",":
                raise self.fail(token, "',' or 'end of string'")
            if not (_is_identifier(self.peek()) or self.peek() == "!"):
                raise self.fail(self.peek(), "identifier after ','")

    def requirement(self) -> Requirement:
        if self.peek() == "!":
            self.take()
            key = self.take()
            if not _is_identifier(key):
                raise self.fail(key, "identifier after '!'")
            return Requirement(key, Op.DOES_NOT_EXIST)
        key = self.take()
        if self.peek() in (_END, ","):
            return Requirement(key, Op.EXISTS)
        token = self.take()
        op = _OPERATORS.get(token)
        if op is None:
            raise self.fail(token, "in, notin, =, ==, !=, >, <")
        if op in (Op.IN, Op.NOT_IN):
            return Requirement(key, op, self.value_set())
        return Requirement(key, op, (self.exact_value(),))

    def exact_value(self) -> str:
        # `key=` with nothing after it selects the empty value, as apimachinery does.
        if self.peek() in (_END, ","):
            return ""
        token = self.take()
        if not _is_identifier(token):
            raise self.fail(token, "identifier")
        return token

    def value_set(self) -> tuple[str, ...]:
        token = self.take()
        if token != "(":
            raise self.fail(token, "'('")
        values: list[str] = []
        if self.peek() == ")":
            # apimachinery reads "()" as the set holding the empty string.
            self.take()
            return ("",)
        expect_value = True
        while True:
            token = self.take()
            if token == ")":
                if expect_value:
                    values.append("")
                return tuple(sorted(set(values)))  # a set, as in apimachinery
            if token == ",":
                if expect_value:
                    values.append("")
                expect_value = True
            elif _is_identifier(token) and expect_value:
                values.append(token)
                expect_value = False
            else:
                raise self.fail(token, "',', ')' or identifier")


@dataclass(frozen=True)
class LabelSelector:
    """All requirements must match (logical AND); the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        requirements = _Parser(text).parse()
        return cls(tuple(sorted(requirements, key=lambda r: r.key)))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    value: str
    negated: bool

    def matches(self, value: str) -> bool:
        return (value == self.value) != self.negated

    def __str__(self) -> str:
        escaped = re.sub(r"([\\,=])", r"\\\1", self.value)
        return f"{self.field}{'!=' if self.negated else '='}{escaped}"


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if text[i] == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(text[i])
        i += 1
    parts.append("".join(current))
    return parts


def _unescape_field_value(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text) or text[i + 1] not in "\\,=":
                raise SelectorError(f"invalid field selector value {text!r}: "
                                    "a backslash must escape '\\', ',' or '='")
            out.append(text[i + 1])
            i += 2
            continue
        if ch in ",=":
            raise SelectorError(f"invalid field selector value {text!r}: "
                                f"unescaped {ch!r}")
        out.append(ch)
        i += 1
    return "".join(out)


def _split_term(term: str) -> tuple[str, str, str] | None:
    # The leftmost operator wins, "!=" and "==" before "=" at the same position,
    # exactly as fields.splitTerm scans.
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


@dataclass(frozen=True)
class FieldSelector:
    """`spec.nodeName=node1,metadata.name!=x`: exact string comparisons, ANDed."""

    requirements: tuple[FieldRequirement, ...] = ()

    @classmethod
    def parse(cls, text: str) -> FieldSelector:
        requirements: list[FieldRequirement] = []
        if not text:
            return cls()
        for part in _split_unescaped(text, ","):
            if not part:
                continue  # fields.ParseSelector skips empty terms ("a=b,")
            term = _split_term(part)
            if term is None:
                raise SelectorError(f"invalid field selector {text!r}: can't understand "
                                    f"{part!r}")
            field, op, raw = term
            requirements.append(FieldRequirement(field, _unescape_field_value(raw),
                                                 negated=op == "!="))
        return cls(tuple(requirements))

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(r.field for r in self.requirements)

    def matches(self, get_field: Callable[[str], str]) -> bool:
        return all(r.matches(get_field(r.field)) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)
