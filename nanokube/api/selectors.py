"""Label and field selectors with apimachinery's syntax, semantics and error messages
(apimachinery pkg/labels/selector.go, pkg/fields/selector.go, metav1.LabelSelectorAsSelector).

Parse errors are 400 BadRequest StatusErrors carrying the message the Go parser produces.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from nanokube.api import errors as E
from nanokube.registry.validation import is_label_value, is_qualified_name

# selection.Operator values
DOES_NOT_EXIST = "!"
EQUALS = "="
DOUBLE_EQUALS = "=="
IN = "in"
NOT_EQUALS = "!="
NOT_IN = "notin"
EXISTS = "exists"
GREATER_THAN = "gt"
LESS_THAN = "lt"

_BINARY_OPERATORS = [IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN]


# --- label selectors -----------------------------------------------------------------------------

def _go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64): optional sign, decimal digits only, within int64."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    value = int(text)
    return value if -(1 << 63) <= value < (1 << 63) else None


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict) -> bool:
        op = self.operator
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        if op in (GREATER_THAN, LESS_THAN):
            if self.key not in labels or len(self.values) != 1:
                return False
            have, want = _go_int(labels[self.key]), _go_int(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        values = ",".join(sorted(self.values))
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({values})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(op, op)
        return f"{self.key}{symbol}{values}"


def new_requirement(key: str, operator: str, values: Iterable[str],
                    path: str = "") -> Requirement:
    """labels.NewRequirement: validate and build; errors are aggregated field errors (400)."""
    values = list(values)
    errs: list[E.FieldError] = []
    prefix = path + "." if path else ""
    key_errs = is_qualified_name(key)
    if key_errs:
        errs.append(E.invalid(prefix + "key", key, "; ".join(key_errs)))
    values_path = prefix + "values"
    if operator in (IN, NOT_IN):
        if not values:
            errs.append(E.invalid(values_path, values,
                                  "for 'in', 'notin' operators, values set can't be empty"))
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(values) != 1:
            errs.append(E.invalid(values_path, values,
                                  "exact-match compatibility requires one single value"))
    elif operator in (EXISTS, DOES_NOT_EXIST):
        if values:
            errs.append(E.invalid(values_path, values,
                                  "values set must be empty for exists and does not exist"))
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(values) != 1:
            errs.append(E.invalid(values_path, values,
                                  "for 'Gt', 'Lt' operators, exactly one value is required"))
        for i, v in enumerate(values):
            if _go_int(v) is None:
                errs.append(E.invalid(f"{values_path}[{i}]", v,
                                      "for 'Gt', 'Lt' operators, the value must be an integer"))
    else:
        errs.append(E.not_supported(prefix + "operator", operator,
                                    _BINARY_OPERATORS + [EXISTS, DOES_NOT_EXIST]))
    for i, v in enumerate(values):
        value_errs = is_label_value(v)
        if value_errs:
            errs.append(E.invalid(f"{values_path}[{i}][{key}]", v, "; ".join(value_errs)))
    if errs:
        raise E.bad_request(E.aggregate(errs))
    return Requirement(key, operator, tuple(values))


class LabelSelector:
    """An AND of requirements. `LabelSelector(None)` is labels.Nothing(): it matches nothing."""

    def __init__(self, requirements: list[Requirement] | None):
        self.nothing = requirements is None
        # Sorted by key, as labels.Parse does, for a deterministic String().
        self.requirements = sorted(requirements or [], key=lambda r: r.key)

    def matches(self, labels: dict | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def empty(self) -> bool:
        """True when the selector does not restrict anything (labels.Everything())."""
        return not self.nothing and not self.requirements

    def requires_exact_match(self, key: str) -> str | None:
        for r in self.requirements:
            if r.key == key:
                if r.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1:
                    return r.values[0]
                return None
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return f"LabelSelector({str(self)!r})" if not self.nothing else "LabelSelector(<nothing>)"


# Lexer tokens
_END, _CLOSE, _COMMA, _NOT, _DEQ, _EQ, _GT, _ID, _IN, _LT, _NEQ, _NOTIN, _OPEN, _ERR = range(14)
_LITERALS = {")": _CLOSE, ",": _COMMA, "!": _NOT, "==": _DEQ, "=": _EQ, ">": _GT, "in": _IN,
             "<": _LT, "!=": _NEQ, "notin": _NOTIN, "(": _OPEN}
_SPECIAL = set("=!(),><")
_WHITESPACE = set(" \t\r\n")


def _lex(s: str) -> list[tuple[int, str]]:
    """Tokens as labels.Lexer produces them, ending with (_END, "")."""
    items = []
    i, n = 0, len(s)
    while True:
        while i < n and s[i] in _WHITESPACE:
            i += 1
        if i >= n:
            items.append((_END, ""))
            return items
        if s[i] in _SPECIAL:
            # Longest run of special characters that still forms a known operator.
            j, best = i, None
            while j < n and s[j] in _SPECIAL:
                if s[i:j + 1] in _LITERALS:
                    best = j + 1
                elif best is not None:
                    break
                j += 1
            if best is None:
                items.append((_ERR, f"error expected: keyword found '{s[i:j]}'"))
                i = j
            else:
                items.append((_LITERALS[s[i:best]], s[i:best]))
                i = best
        else:
            j = i
            while j < n and s[j] not in _SPECIAL and s[j] not in _WHITESPACE:
                j += 1
            word = s[i:j]
            items.append((_LITERALS.get(word, _ID), word))
            i = j


class _ParseError(Exception):
    pass


class _LabelParser:
    def __init__(self, selector: str):
        self.items = _lex(selector)
        self.pos = 0

    def _peek(self, values: bool = True) -> tuple[int, str]:
        tok, lit = self.items[self.pos]
        # In a value context the keywords `in`/`notin` are plain identifiers.
        if values and tok in (_IN, _NOTIN):
            tok = _ID
        return tok, lit

    def _next(self, values: bool = True) -> tuple[int, str]:
        item = self._peek(values)
        self.pos += 1
        return item

    def parse(self) -> list[Requirement]:
        requirements = []
        while True:
            tok, lit = self._peek()
            if tok in (_ID, _NOT):
                try:
                    requirements.append(self._requirement())
                except _ParseError as e:
                    raise _ParseError(f"unable to parse requirement: {e}") from None
                except E.StatusError as e:
                    raise _ParseError(f"unable to parse requirement: {e.message}") from None
                tok, lit = self._next()
                if tok == _END:
                    return requirements
                if tok != _COMMA:
                    raise _ParseError(f"found '{lit}', expected: ',' or 'end of string'")
                tok2, lit2 = self._peek()
                if tok2 not in (_ID, _NOT):
                    raise _ParseError(f"found '{lit2}', expected: identifier after ','")
            elif tok == _END:
                return requirements
            else:
                raise _ParseError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def _requirement(self) -> Requirement:
        operator = ""
        tok, lit = self._next()
        if tok == _NOT:
            operator = DOES_NOT_EXIST
            tok, lit = self._next()
        if tok != _ID:
            raise _ParseError(f"found '{lit}', expected: identifier")
        key = lit
        key_errs = is_qualified_name(key)
        if key_errs:
            # The parser validates the key with a nil field path, which Go prints as <nil>.
            raise _ParseError(str(E.invalid("<nil>", key, "; ".join(key_errs))))
        if self._peek()[0] in (_END, _COMMA):
            return new_requirement(key, operator or EXISTS, [])
        if operator == DOES_NOT_EXIST:
            return new_requirement(key, operator, [])
        operator = self._operator()
        if operator in (IN, NOT_IN):
            values = self._values()
        else:
            values = self._exact_value()
        return new_requirement(key, operator, sorted(values))

    def _operator(self) -> str:
        tok, lit = self._next(values=False)
        ops = {_IN: IN, _EQ: EQUALS, _DEQ: DOUBLE_EQUALS, _GT: GREATER_THAN, _LT: LESS_THAN,
               _NOTIN: NOT_IN, _NEQ: NOT_EQUALS}
        if tok not in ops:
            raise _ParseError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        return ops[tok]

    def _values(self) -> set[str]:
        tok, lit = self._next()
        if tok != _OPEN:
            raise _ParseError(f"found '{lit}' expected: '('")
        tok, lit = self._peek()
        if tok in (_ID, _COMMA):
            values = self._identifiers()
            if self._next()[0] != _CLOSE:
                raise _ParseError(f"found '{lit}', expected: ')'")
            return values
        if tok == _CLOSE:  # "()" is the set holding the empty string
            self._next()
            return {""}
        raise _ParseError(f"found '{lit}', expected: ',', ')' or identifier")

    def _identifiers(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self._next()
            if tok == _ID:
                values.add(lit)
                tok2, lit2 = self._peek()
                if tok2 == _CLOSE:
                    return values
                if tok2 != _COMMA:
                    raise _ParseError(f"found '{lit2}', expected: ',' or ')'")
            elif tok == _COMMA:
                # Empty items between commas are the empty string: "(,a)", "(a,)", "(a,,b)".
                if not values:
                    values.add("")
                tok2 = self._peek()[0]
                if tok2 in (_CLOSE, _COMMA):
                    values.add("")
                if tok2 == _CLOSE:
                    return values
            else:
                raise _ParseError(f"found '{lit}', expected: ',', or identifier")

    def _exact_value(self) -> set[str]:
        tok, _ = self._peek()
        if tok in (_END, _COMMA):
            return {""}
        tok, lit = self._next()
        if tok == _ID:
            return {lit}
        raise _ParseError(f"found '{lit}', expected: identifier")


def parse_label_selector(s: str | None) -> LabelSelector:
    """labels.Parse: `a=b,c!=d,e in (f,g),h notin (i),j,!k,l>3`. Empty matches everything."""
    try:
        return LabelSelector(_LabelParser(s or "").parse())
    except _ParseError as e:
        raise E.bad_request(str(e)) from None


_EXPRESSION_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS,
                         "DoesNotExist": DOES_NOT_EXIST}


def from_label_selector_object(sel: dict | None) -> LabelSelector:
    """metav1.LabelSelectorAsSelector: None matches nothing, {} matches everything."""
    if sel is None:
        return LabelSelector(None)
    requirements = []
    for key, value in (sel.get("matchLabels") or {}).items():
        requirements.append(new_requirement(key, EQUALS, [value]))
    for expr in sel.get("matchExpressions") or []:
        operator = _EXPRESSION_OPERATORS.get(expr.get("operator"))
        if operator is None:
            raise E.bad_request(
                f"{E.go_quote(str(expr.get('operator') or ''))} is not a valid label selector "
                "operator")
        requirements.append(new_requirement(expr.get("key") or "", operator,
                                             list(expr.get("values") or [])))
    return LabelSelector(requirements)


# --- field selectors -----------------------------------------------------------------------------

def escape_field_value(value: str) -> str:
    """fields.EscapeValue: backslash-escape \\ , and = (the characters that delimit terms)."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_field_value(s: str) -> str:
    """fields.UnescapeValue, with its errors (the rune is printed as a number, as Go's %v does)."""
    if not any(c in s for c in "\\,="):
        return s
    out = []
    in_slash = False
    for c in s:
        if in_slash:
            if c not in "\\,=":
                raise E.bad_request(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c in ",=":
            raise E.bad_request(f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if in_slash:
        raise E.bad_request("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(s: str) -> list[str]:
    """Split on commas that are not backslash-escaped."""
    terms, start, in_slash = [], 0, False
    for i, c in enumerate(s):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(s[start:i])
            start = i + 1
    terms.append(s[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """The first operator wins, `!=` and `==` before `=` at the same position."""
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    operator: str  # "=", "==" or "!="
    value: str

    def matches(self, fields: dict) -> bool:
        equal = fields.get(self.field, "") == self.value
        return not equal if self.operator == NOT_EQUALS else equal

    def __str__(self) -> str:
        op = "!=" if self.operator == NOT_EQUALS else "="
        return f"{self.field}{op}{escape_field_value(self.value)}"


class FieldSelector:
    def __init__(self, requirements: list[FieldRequirement]):
        self.requirements = requirements

    def matches(self, fields: dict) -> bool:
        return all(r.matches(fields) for r in self.requirements)

    def empty(self) -> bool:
        return not self.requirements

    def check_supported(self, supported: Iterable[str]) -> None:
        """Reject fields the kind cannot select on, as the scheme's field label conversion does."""
        supported = set(supported)
        for r in self.requirements:
            if r.field not in supported:
                raise E.bad_request(f"field label not supported: {r.field}")

    def only_name(self) -> str | None:
        """The name when the selector is exactly metadata.name=X (kubectl delete --wait, get -w)."""
        if len(self.requirements) == 1:
            r = self.requirements[0]
            if r.field == "metadata.name" and r.operator != NOT_EQUALS:
                return r.value
        return None

    def requires_exact_match(self, field: str) -> str | None:
        for r in self.requirements:
            if r.field == field and r.operator != NOT_EQUALS:
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"


def object_meta_fields(obj: dict, namespaced: bool = True) -> dict[str, str]:
    """The fields every kind can select on (generic.ObjectMetaFieldsSet); kinds add their own."""
    meta = obj.get("metadata") or {}
    fields = {"metadata.name": meta.get("name") or ""}
    if namespaced:
        fields["metadata.namespace"] = meta.get("namespace") or ""
    return fields


def parse_field_selector(s: str | None) -> FieldSelector:
    """fields.ParseSelector: `f=v`, `f==v`, `f!=v` joined by commas. Empty matches everything."""
    s = s or ""
    requirements = []
    for part in sorted(_split_terms(s)) if s else []:
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise E.bad_request(f"invalid selector: '{s}'; can't understand '{part}'")
        field, op, raw = split
        requirements.append(FieldRequirement(field, op, unescape_field_value(raw)))
    return FieldSelector(requirements)
