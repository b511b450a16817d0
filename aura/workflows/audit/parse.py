"""Input limits and crash-proof parsing of submitted files."""

from __future__ import annotations

import ast
import gc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..errors import AuditLimitError, WorkflowInputError
from .settings import AuditSettings
from .types import Finding, SourceFile

Content = str | bytes


def is_python(path: str) -> bool:
    """True for files the audit parses; everything else is counted as skipped."""
    return path.lower().endswith(".py")


def _size_in_bytes(content: Content, limit: int) -> int:
    """UTF-8 size of the content, without encoding text that is already too long."""
    if isinstance(content, bytes):
        return len(content)
    if len(content) > limit:
        # Every character is at least one byte, so this is over the limit whatever the encoding
        # (the size reported is then a lower bound, which saves encoding a huge string).
        return len(content)
    # surrogatepass: lone surrogates are measured here and reported by the parser instead.
    return len(content.encode("utf-8", "surrogatepass"))


def load_files(raw: Any, settings: AuditSettings) -> tuple[SourceFile, ...]:
    """Validate the request shape and enforce file-count and file-size limits."""
    if not isinstance(raw, Mapping):
        raise WorkflowInputError("body", "must be an object")
    files = raw.get("files")
    if not isinstance(files, (list, tuple)):
        raise WorkflowInputError("files", "must be a list of {path, content} objects")
    if len(files) > settings.max_files:
        raise AuditLimitError("max_files", len(files), settings.max_files)
    loaded = []
    total = 0
    for index, item in enumerate(files):
        if not isinstance(item, Mapping):
            raise WorkflowInputError(f"files[{index}]", "must be an object with path and content")
        path, content = item.get("path"), item.get("content")
        if not isinstance(path, str) or not path:
            raise WorkflowInputError(f"files[{index}].path", "must be a non-empty string")
        if len(path) > settings.max_path_length:
            raise AuditLimitError("max_path_length", len(path), settings.max_path_length)
        if not isinstance(content, (str, bytes)):
            raise WorkflowInputError(f"files[{index}].content", "must be a string")
        size = _size_in_bytes(content, settings.max_file_bytes)
        if size > settings.max_file_bytes:
            raise AuditLimitError("max_file_bytes", size, settings.max_file_bytes, path=path)
        total += size
        if settings.max_total_bytes is not None and total > settings.max_total_bytes:
            raise AuditLimitError("max_total_bytes", total, settings.max_total_bytes, path=path)
        loaded.append(SourceFile(index=index, path=path, content=content))
    return tuple(loaded)


def _line_of(content: Content, position: int) -> int:
    """1-based line number of a character (or byte) offset."""
    if isinstance(content, bytes):
        return content.count(b"\n", 0, position) + 1
    return content.count("\n", 0, position) + 1


def _nul_line(content: Content) -> int:
    """Line of the first NUL character, which the parser reports without a line."""
    position = content.find(b"\0") if isinstance(content, bytes) else content.find("\0")
    return _line_of(content, position) if position >= 0 else 1


def _pause_gc() -> bool:
    """Disable the cyclic garbage collector if it is enabled; True when this call disabled it."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    return paused


def _resume_gc(paused: bool) -> None:
    """Re-enable the collector if `_pause_gc` disabled it."""
    if paused:
        gc.enable()


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector, restoring it only if this call paused it."""
    # Building an AST allocates ~100k acyclic objects per 256 KiB, which triggers many young-
    # generation collections that free nothing: pausing them makes parsing 2-3x faster.
    # Only a caller that saw the collector enabled re-enables it, so overlapping calls from
    # several threads always leave it enabled at the end.
    # The logic lives in plain functions: mutmut does not mutate a decorated function.
    paused = _pause_gc()
    try:
        yield
    finally:
        _resume_gc(paused)


def parse_source(content: Content) -> ast.Module | Finding:
    """Parse Python source; any failure becomes a syntax_error Finding, never an exception."""
    try:
        with _gc_paused():
            return ast.parse(content)
    except SyntaxError as exc:
        if exc.lineno is None and "null bytes" in str(exc.msg):
            return Finding("syntax_error", _nul_line(content), "file contains NUL bytes")
        return Finding("syntax_error", exc.lineno or 1, f"does not parse: {exc.msg}")
    except UnicodeError as exc:
        # A str with lone surrogates cannot be encoded for the parser: not valid UTF-8 text.
        start = getattr(exc, "start", 0)
        return Finding("syntax_error", _line_of(content, start), "file is not valid UTF-8 text")
    except ValueError:
        # Older 3.11 patch releases raise ValueError rather than SyntaxError for NUL bytes.
        return Finding("syntax_error", _nul_line(content), "file contains NUL bytes")
    except RecursionError:
        # Deep left-recursive chains (a.b.b.b..., 1+1+1...) overflow AST construction.
        return Finding("syntax_error", 1, "source is nested too deeply to analyse")
    except MemoryError:
        # CPython 3.11's parser signals a C stack overflow (e.g. "-" * 100000 + "1") as MemoryError.
        return Finding("syntax_error", 1, "source is too complex to parse")
