"""A workflow as the API serves it, and the registry that lists the served ones."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import marshmallow as ma

from aura.config import Settings


class Result(Protocol):
    """What a workflow hands to `on_record`: a result with its JSON shape."""

    def to_dict(self) -> Mapping[str, Any]: ...


Runner = Callable[[Any, Settings, Callable[[Result], None]], object]


def _records_nothing(_stored: Mapping[str, Any]) -> None:
    """A workflow with no metrics of its own."""


def _whole(stored: dict[str, Any], _budget: int) -> dict[str, Any]:
    """A result that always fits its budget."""
    return stored


def _no_precheck(_document: Any, _settings: Settings) -> None:
    """Nothing to check before the body is validated."""


@dataclass(frozen=True)
class Workflow:
    """One workflow: everything the API, the run service and the metrics need to know of it."""

    # The URL segment (/api/v1/workflows/<name>), the stored `type` and the `workflow_type` label.
    name: str
    # What a run does, in one sentence: the POST route's OpenAPI summary.
    summary: str
    # Validates the request body and documents it; documents the stored result.
    input_schema: type[ma.Schema]
    result_schema: type[ma.Schema]
    # run(body, settings, on_record): runs the workflow; calls on_record(result) with its `Result`.
    run: Runner
    # The key of the result that is the run's verdict (its stored `status`), and every value it takes.
    verdict_key: str
    verdicts: tuple[str, ...]
    # Records the workflow's own metrics from a finished run's stored result (aura.instrumentation).
    record_metrics: Callable[[Mapping[str, Any]], None] = _records_nothing
    # The stored result cut down to a byte budget (`workflow_runs.result_budget`).
    within_budget: Callable[[dict[str, Any], int], dict[str, Any]] = _whole
    # Cheap checks of the raw JSON body before its schema validates it (raise an AuraError).
    precheck: Callable[[Any, Settings], None] = _no_precheck

    def verdict(self, stored: Mapping[str, Any]) -> str | None:
        """The run's status: its result's verdict."""
        return stored.get(self.verdict_key)


class Registry(Mapping[str, Workflow]):
    """The served workflows by name, in order; the app's is `aura.api.context.services(app).workflows`."""

    def __init__(self, *workflows: Workflow):
        self._by_name: dict[str, Workflow] = {}
        for workflow in workflows:
            if workflow.name in self._by_name:
                raise ValueError(f"two workflows are named {workflow.name!r}")
            self._by_name[workflow.name] = workflow

    def __getitem__(self, name: str) -> Workflow:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def plus(self, *workflows: Workflow) -> Registry:
        """This registry with more workflows (after these)."""
        return Registry(*self.values(), *workflows)

    @property
    def verdicts(self) -> tuple[str, ...]:
        """Every status a stored run can have, workflow by workflow."""
        return verdicts_of(self.values())


def verdicts_of(workflows: Iterable[Workflow]) -> tuple[str, ...]:
    """The verdicts of `workflows`, in order, each once (a plain function: mutmut 3 does not
    mutate a property)."""
    return tuple(dict.fromkeys(verdict for workflow in workflows for verdict in workflow.verdicts))
