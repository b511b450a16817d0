"""The workflows Aura serves: add one by writing its module and listing it here."""

from __future__ import annotations

from aura.services.workflows.audit import AUDIT
from aura.services.workflows.definition import Registry
from aura.services.workflows.struggle import STRUGGLE

WORKFLOWS = Registry(STRUGGLE, AUDIT)
