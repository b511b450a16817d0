"""Errors the domain raises, free of HTTP: each names its outcome by a code.

The web layer (`aura.api.errors`) maps the codes to HTTP statuses in one table and renders
every error in the project's JSON shape.
"""

from __future__ import annotations


class AuraError(Exception):
    """An outcome the client caused, named by a machine-readable `code`, with a message for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class ServiceUnavailable(Exception):
    """A dependency (database, Redis) is down; the client may retry later."""

    def __init__(self, dependency: str):
        super().__init__(f"{dependency} is unavailable")
        self.dependency = dependency
