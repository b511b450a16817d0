"""The workflows the API serves: each is one module declaring a `Workflow`; `registry` lists them.

A workflow module declares its name, request and result schemas, how to run it, its verdict
(the stored run's `status`) and the metrics a finished run records. The routes and their
OpenAPI document (`aura.api.workflows`), the run service (`aura.services.workflow_runs`), the
listing's filters and the metrics' zero series all follow from `registry.WORKFLOWS`.

- `definition`: the `Workflow` declaration and the `Registry` of them.
- `struggle`, `audit`: the two workflows.
- `registry`: the list the app serves by default.
"""

from aura.services.workflows.definition import Registry, Result, Workflow

__all__ = ["Registry", "Result", "Workflow"]
