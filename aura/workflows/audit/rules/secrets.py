"""The hardcoded_secret rule: secret-looking names bound to literals, and known key formats."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Sequence

from ..settings import AuditSettings
from ..types import Finding

# A name is secret-looking when its last word is one of these...
SECRET_WORDS = frozenset({"password", "passwd", "secret", "token", "apikey", "accesskey", "privatekey"})
# ...or its last two words are one of these pairs (api_key, apiKey, AWS_SECRET_ACCESS_KEY, SECRET_KEY).
SECRET_WORD_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key")})

# Values that are obviously not real secrets; compared after strip() and casefold().
PLACEHOLDERS = frozenset(
    {
        "changeme",
        "change_me",
        "change-me",
        "placeholder",
        "example",
        "dummy",
        "todo",
        "none",
        "null",
        "redacted",
    }
)

# Bounded, anchored patterns: linear-time on any input, so a huge literal cannot hang the worker.
KEY_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![0-9A-Z])AKIA[0-9A-Z]{16}(?![0-9A-Z])"), "an AWS access key id"),
    (re.compile(r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----"), "a private key block"),
    (re.compile(r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36,255}"), "a GitHub token"),
)

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def name_words(name: str) -> list[str]:
    """Split snake_case, camelCase and CONSTANT_CASE names into lowercase words."""
    return [word.lower() for word in _WORD.findall(name)]


def is_secret_name(name: str) -> bool:
    """True when the name ends in a secret word (db_password, apiKey, AWS_SECRET_ACCESS_KEY)."""
    words = name_words(name)
    if not words:
        return False
    return words[-1] in SECRET_WORDS or (len(words) >= 2 and (words[-2], words[-1]) in SECRET_WORD_PAIRS)


def is_placeholder(value: str) -> bool:
    """True for empty values, known placeholder words, one repeated character and <...>/${...} templates."""
    text = value.strip()
    if not text or text.casefold() in PLACEHOLDERS or len(set(text)) == 1:
        return True
    return (text.startswith("<") and text.endswith(">")) or (text.startswith("${") and text.endswith("}"))


def _target_name(target: ast.expr) -> str | None:
    """The name a value is bound to: x, obj.x or mapping["x"]."""
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Attribute):
        return target.attr
    if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
        key = target.slice.value
        return key if isinstance(key, str) else None
    return None


def _bindings(node: ast.AST) -> Iterator[tuple[str | None, ast.expr | None]]:
    """Yield (name, value) pairs bound by one node: assignments, dict entries and keyword arguments."""
    if isinstance(node, ast.Assign):
        for target in node.targets:
            yield from _unpack(target, node.value)
    elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)):
        yield _target_name(node.target), node.value
    elif isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                yield key.value, value
    elif isinstance(node, ast.Call):
        for keyword in node.keywords:
            yield keyword.arg, keyword.value


_BINDING_NODES = (ast.Assign, ast.AnnAssign, ast.NamedExpr, ast.Dict, ast.Call)


def _unpack(target: ast.expr, value: ast.expr) -> Iterator[tuple[str | None, ast.expr | None]]:
    """Pair tuple targets with tuple values element-wise (user, password = "a", "b")."""
    if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)):
        if len(target.elts) == len(value.elts):
            for sub_target, sub_value in zip(target.elts, value.elts, strict=True):
                # Only one level: deeper unpacking is rare and this keeps the rule non-recursive.
                yield _target_name(sub_target), sub_value
        return
    yield _target_name(target), value


def _str_value(node: ast.AST | None) -> str | None:
    """The text of a plain string literal, else None (f-strings and bytes are not literals here)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def hardcoded_secret(nodes: Sequence[ast.AST], settings: AuditSettings) -> Iterator[Finding]:
    """Flag string literals bound to secret-looking names or containing a known key format."""
    reported: set[int] = set()  # id() of literals already reported, so one literal gives one finding
    for node in nodes:
        if not isinstance(node, _BINDING_NODES):
            continue  # cheap filter: most nodes bind nothing
        for name, value in _bindings(node):
            text = _str_value(value)
            if value is None or text is None or name is None or id(value) in reported:
                continue
            if not is_secret_name(name) or is_placeholder(text):
                continue
            reported.add(id(value))
            # The value itself is never echoed: findings end up in responses and logs.
            message = f"string literal assigned to {name!r} looks like a secret"
            yield Finding("hardcoded_secret", value.lineno, message)
    for node in nodes:
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in reported:
            continue
        for pattern, label in KEY_PATTERNS:
            if pattern.search(node.value):
                reported.add(id(node))
                yield Finding("hardcoded_secret", node.lineno, f"string literal contains {label}")
                break
