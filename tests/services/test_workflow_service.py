"""The run service (aura.services.workflow_runs) and the workflow declarations, in-process.

Runs go through workflows declared here (they record, fail or find the database down on
demand) and through the struggle workflow; no test here runs an audit in an app: the audit
rules' mutants run two at a time under `make mutate`, and a test with an app empties the
shared Redis databases after it. The audit's own helpers are tested without an app.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from time import perf_counter

import pytest
from sqlalchemy import delete, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from aura.config import Settings
from aura.errors import AuraError, ServiceUnavailable
from aura.extensions import db, json_text
from aura.models import Lesson as LessonRow
from aura.models import User, WorkflowRun
from aura.services import workflow_runs
from aura.services.workflow_runs import (
    CURSOR_LENGTH,
    RESULT_BASE_BYTES,
    InvalidCursor,
    WorkflowRunFailed,
    execute,
    list_runs,
    load,
    result_budget,
)
from aura.services.workflows import Registry, Workflow
from aura.services.workflows.audit import AUDIT, files_counted_first, within
from aura.services.workflows.registry import WORKFLOWS
from aura.services.workflows.struggle import STRUGGLE, _catalog
from aura.workflows import AuditLimitError, Lesson, WorkflowExecutionError
from tests.support.metrics import delta, registry_samples
from tests.support.word_count import WORD_COUNT, WordCountInputSchema, WordCountResultSchema

RUN_ID = "0123abcd-0123-4abc-8def-0123456789ab"


@dataclass(frozen=True)
class _Found:
    """A result of the test workflows below."""

    fields: dict

    def to_dict(self) -> dict:
        return dict(self.fields)


@dataclass
class _Behaviour:
    """What the `probe` workflow does when it runs, and what it saw."""

    record: dict | None = None  # the result handed to on_record (None: record nothing)
    fail: BaseException | None = None  # raised after recording
    budgets: list | None = None
    pending: bool = False  # add a row to the session without committing it, before failing
    recorded: list | None = None
    settings: Settings | None = None  # the settings it was run with


BEHAVIOUR = _Behaviour()


def _probe_run(data, settings, on_record):
    BEHAVIOUR.settings = settings
    if BEHAVIOUR.pending:
        db.session.add(WorkflowRun(id="pending-row", workflow_type="probe", user_id=data["user"], result={}))
    if BEHAVIOUR.record is not None:
        on_record(_Found(BEHAVIOUR.record))
    if BEHAVIOUR.fail is not None:
        raise BEHAVIOUR.fail
    return None


def _probe_budget(result, budget):
    BEHAVIOUR.budgets.append(budget)
    return {**result, "budget": budget}


def _probe_metrics(stored):
    BEHAVIOUR.recorded.append(dict(stored))


PROBE = Workflow(
    name="probe",
    summary="A workflow of the tests.",
    input_schema=WordCountInputSchema,
    result_schema=WordCountResultSchema,
    run=_probe_run,
    verdict_key="verdict",
    verdicts=("fine", "bad"),
    record_metrics=_probe_metrics,
    within_budget=_probe_budget,
)
PROBES = Registry(PROBE, WORD_COUNT)


@pytest.fixture
def behaviour(monkeypatch):
    fresh = _Behaviour(budgets=[], recorded=[])
    monkeypatch.setattr(sys.modules[__name__], "BEHAVIOUR", fresh)
    return fresh


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app


def _user(email: str) -> int:
    db.session.add(User(email=email, password_hash="not-a-hash"))
    db.session.commit()
    return db.session.scalar(select(User.id).where(User.email == email))


def _settings(ctx) -> Settings:
    return ctx.config["AURA"]


def _moved(before, prefixes=("workflow_",)):
    return {
        key: diff
        for key, diff in delta(before, registry_samples()).items()
        if key[0].startswith(prefixes) and not key[0].endswith("_bucket")
    }


def _executions(workflow: str, status: str):
    return ("workflow_executions_total", (("status", status), ("workflow_type", workflow)))


def _failures(workflow: str, error_type: str):
    return ("workflow_failures_total", (("error_type", error_type), ("workflow_type", workflow)))


def _durations(workflow: str, part: str):
    return (f"workflow_duration_seconds_{part}", (("workflow_type", workflow),))


def _assert_one_failure(before, took: float, error_type: str, context: object = None) -> None:
    """Since `before`, one failed run of the probe: its failure, its error type, its time (at most `took`)."""
    moved = _moved(before)
    assert 0 <= moved.pop(_durations("probe", "sum")) <= took
    assert moved == {
        _executions("probe", "failure"): 1,
        _failures("probe", error_type): 1,
        _durations("probe", "count"): 1,
    }, context


# --- execute -----------------------------------------------------------------------------------


def test_a_run_is_stored_with_its_verdict_and_counted_once(ctx, behaviour):
    user_id = _user("runs@example.com")
    behaviour.record = {"verdict": "bad", "words": 3}
    before = registry_samples()
    started = perf_counter()
    body = execute("probe", {"text": "a b c", "user": user_id}, user_id, _settings(ctx), workflows=PROBES)
    took = perf_counter() - started
    run = db.session.get(WorkflowRun, body["id"])
    assert (run.workflow_type, run.user_id, run.status) == ("probe", user_id, "bad")
    assert run.result == {k: v for k, v in body.items() if k != "created_at"}
    assert body["verdict"] == "bad" and body["words"] == 3 and body["budget"] == behaviour.budgets[0]
    created = run.created_at if run.created_at.tzinfo else run.created_at.replace(tzinfo=UTC)
    assert body["created_at"] == created
    assert behaviour.recorded == [run.result]  # the workflow's own metrics, from the stored result
    assert behaviour.settings is _settings(ctx)
    moved = _moved(before)
    assert moved.pop(_durations("probe", "sum")) <= took  # this run's time, not a clock reading
    assert moved == {_executions("probe", "success"): 1, _durations("probe", "count"): 1}


def test_the_result_budget_follows_the_request_size(ctx, behaviour):
    user_id = _user("budget@example.com")
    behaviour.record = {"verdict": "fine"}
    data = {"text": "\u00e9t\u00e9 \U0001d54f", "user": user_id}  # 2- and 4-byte characters
    execute("probe", data, user_id, _settings(ctx), workflows=PROBES)
    execute("probe", data, user_id, _settings(ctx), 0, workflows=PROBES)
    execute("probe", data, user_id, _settings(ctx), 10, workflows=PROBES)
    size = len(json_text(data).encode())
    assert size > len(json_text(data))
    assert behaviour.budgets == [RESULT_BASE_BYTES + 2 * size, RESULT_BASE_BYTES, RESULT_BASE_BYTES + 20]
    assert result_budget(0) == 32 * 1024 and result_budget(7) == 32 * 1024 + 14


def test_a_run_that_records_nothing_stores_nothing(ctx, behaviour):
    user_id = _user("nothing@example.com")
    before = datetime.now(UTC)
    body = execute("probe", {"text": "", "user": user_id}, user_id, _settings(ctx), workflows=PROBES)
    assert set(body) == {"created_at"} and before <= body["created_at"] <= datetime.now(UTC)
    assert db.session.scalars(select(WorkflowRun)).all() == []
    assert behaviour.recorded == [{}]


def test_the_registry_given_is_the_one_run(ctx):
    user_id = _user("words@example.com")
    body = execute("word_count", {"text": "one two"}, user_id, _settings(ctx), workflows=PROBES)
    assert (body["words"], body["length"]) == (2, "short")
    with pytest.raises(KeyError):
        execute("word_count", {"text": "one two"}, user_id, _settings(ctx))  # not served by default


def test_no_account_is_a_counted_503_before_the_run(ctx, behaviour):
    behaviour.record = {"verdict": "fine"}
    before = registry_samples()
    started = perf_counter()
    with pytest.raises(ServiceUnavailable) as raised:
        execute("probe", {"text": "x"}, None, _settings(ctx), workflows=PROBES)
    took = perf_counter() - started
    assert raised.value.dependency == "database"
    assert behaviour.budgets == []  # never ran
    _assert_one_failure(before, took, "service_unavailable")


def test_a_failing_node_is_rolled_back_counted_and_named_by_its_run_id(ctx, behaviour, caplog):
    user_id = _user("fails@example.com")
    behaviour.pending = True
    cause = RuntimeError("node exploded")
    error = WorkflowExecutionError("probe", "the_node", cause)
    error.__cause__ = cause
    behaviour.fail = error
    before = registry_samples()
    started = perf_counter()
    with pytest.raises(WorkflowRunFailed) as raised:
        execute("probe", {"text": "x", "user": user_id}, user_id, _settings(ctx), workflows=PROBES)
    took = perf_counter() - started
    failed = raised.value
    assert failed.code == "execution_error" and failed.__cause__ is error
    assert failed.message == f"The workflow failed; quote run id {failed.run_id} when reporting it."
    assert workflow_runs._RUN_ID.fullmatch(failed.run_id)
    assert not db.session.new  # the node's half-done work is rolled back
    assert db.session.scalars(select(WorkflowRun)).all() == []
    assert failed.run_id in caplog.text  # the run id the answer quotes is in the log
    _assert_one_failure(before, took, "execution_error")
    assert behaviour.recorded == []


OUTAGES = [
    OperationalError("SELECT", {}, Exception("gone")),
    InterfaceError("SELECT", {}, Exception("gone")),
    PoolTimeout("pool exhausted"),
    ServiceUnavailable("redis"),
]


def test_a_node_failing_on_an_outage_is_a_counted_503(ctx, behaviour):
    user_id = _user("outage@example.com")
    behaviour.pending = True
    for outage in OUTAGES:
        error = WorkflowExecutionError("probe", "the_node", outage)
        error.__cause__ = outage
        behaviour.fail = error
        before = registry_samples()
        started = perf_counter()
        with pytest.raises(ServiceUnavailable) as raised:
            execute("probe", {"text": "x", "user": user_id}, user_id, _settings(ctx), workflows=PROBES)
        took = perf_counter() - started
        assert raised.value.dependency == "database" and raised.value.__cause__ is error
        assert not db.session.new
        _assert_one_failure(before, took, "service_unavailable", outage)


def test_an_outage_outside_a_node_is_rolled_back_counted_and_raised_as_it_is(ctx, behaviour):
    user_id = _user("raw-outage@example.com")
    behaviour.pending = True
    for outage in OUTAGES:
        behaviour.fail = outage
        before = registry_samples()
        with pytest.raises(type(outage)) as raised:
            execute("probe", {"text": "x", "user": user_id}, user_id, _settings(ctx), workflows=PROBES)
        assert raised.value is outage
        assert not db.session.new
        moved = _moved(before)
        assert moved[_failures("probe", "service_unavailable")] == 1
        assert moved[_executions("probe", "failure")] == 1
        assert _executions("probe", "success") not in moved


def test_any_other_error_is_neither_caught_nor_counted(ctx, behaviour):
    user_id = _user("bug@example.com")
    behaviour.fail = KeyError("a bug")
    before = registry_samples()
    with pytest.raises(KeyError):
        execute("probe", {"text": "x", "user": user_id}, user_id, _settings(ctx), workflows=PROBES)
    assert _moved(before) == {}


# --- load --------------------------------------------------------------------------------------


def _stored_run(user_id: int, run_id: str = RUN_ID, workflow_type: str = "audit", **fields) -> WorkflowRun:
    run = WorkflowRun(
        id=run_id,
        workflow_type=workflow_type,
        user_id=user_id,
        result={"id": run_id, "status": "pass"},
        status="pass",
        **fields,
    )
    db.session.add(run)
    db.session.commit()
    return run


def test_a_stored_run_is_loaded_only_for_its_owner_and_type(ctx):
    owner, other = _user("owner@example.com"), _user("other@example.com")
    run = _stored_run(owner, created_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
    loaded = load("audit", RUN_ID, owner)
    assert loaded == {"id": RUN_ID, "status": "pass", "created_at": run.created_at}
    for workflow_type, user_id in (("audit", other), ("struggle", owner)):
        with pytest.raises(AuraError) as raised:
            load(workflow_type, RUN_ID, user_id)
        assert raised.value.code == "not_found"
        assert raised.value.message == f"No {workflow_type} result with this id."


def test_an_id_that_is_no_uuid_is_not_found_without_a_lookup(ctx):
    owner = _user("shapes@example.com")
    for run_id in (
        RUN_ID.upper(),
        RUN_ID + "0",
        "x" + RUN_ID,
        RUN_ID.replace("-", "", 1) + "0",
        "0123abcd-0123-4abc-8def-0123456789a",
        "",
        "\0",
    ):
        if len(run_id) == 36:  # the column's size: even a row with that very id is not read
            _stored_run(owner, run_id=run_id)
        for user_id in (owner, None):  # not even the database's outage is noticed
            with pytest.raises(AuraError) as raised:
                load("audit", run_id, user_id)
            assert raised.value.code == "not_found", run_id
    with pytest.raises(ServiceUnavailable) as unavailable:  # a uuid without an account
        load("audit", RUN_ID, None)
    assert unavailable.value.dependency == "database"


# --- list_runs and cursors ---------------------------------------------------------------------

T0 = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def _id(n: int) -> str:
    return f"{n:08x}-0000-4000-8000-000000000000"


def _rows(user_id: int, *specs: tuple[int, timedelta, str, str]) -> None:
    for n, offset, workflow_type, status in specs:
        db.session.add(
            WorkflowRun(
                id=_id(n),
                workflow_type=workflow_type,
                user_id=user_id,
                result={},
                status=status,
                created_at=T0 + offset,
            )
        )
    db.session.commit()


def _ids(page) -> list[str]:
    return [run["id"] for run in page.runs]


def test_runs_are_listed_newest_first_ties_by_id_a_page_at_a_time(ctx):
    """Ids do not follow the creation times here (uuid4s do not): the order and the pages are
    the times', ties broken by id."""
    me, other = _user("me@example.com"), _user("them@example.com")
    same = timedelta(0)
    _rows(me, (9, timedelta(seconds=-1), "audit", "pass"), (2, same, "audit", "fail"), (3, same, "audit", "x"))
    _rows(me, (1, timedelta(seconds=1), "struggle", "struggling"))
    _rows(other, (0, timedelta(seconds=2), "audit", "pass"))
    newest_first = [_id(1), _id(3), _id(2), _id(9)]
    every = list_runs(me, limit=10)
    assert _ids(every) == newest_first and every.next_cursor is None
    first = every.runs[0]
    created = first["created_at"] if first["created_at"].tzinfo else first["created_at"].replace(tzinfo=UTC)
    assert {**first, "created_at": created} == {
        "id": _id(1),
        "type": "struggle",
        "status": "struggling",
        "created_at": T0 + timedelta(seconds=1),
    }
    for query in ({}, {"workflow_type": "audit"}, {"status": "x"}):
        pages, cursor = [], None
        for _ in range(10):  # bounded
            page = list_runs(me, limit=1, cursor=cursor, **query)
            pages.append(_ids(page))
            cursor = page.next_cursor
            if cursor is None:
                break
        expected = [[run] for run in newest_first if run in _ids(list_runs(me, limit=10, **query))]
        assert pages == expected, query
    assert _ids(list_runs(me, limit=10, workflow_type="audit")) == [_id(3), _id(2), _id(9)]
    two = list_runs(me, limit=2)
    assert _ids(two) == newest_first[:2] and len(two.next_cursor) == CURSOR_LENGTH
    assert _ids(list_runs(me, limit=2, cursor=two.next_cursor)) == newest_first[2:]
    assert list_runs(me, limit=4).next_cursor is None  # exactly a page: no next one
    assert list_runs(me, limit=3).next_cursor is not None


def test_runs_are_filtered_by_type_and_status(ctx):
    me = _user("filters@example.com")
    _rows(
        me,
        (1, timedelta(seconds=1), "audit", "pass"),
        (2, timedelta(seconds=2), "audit", "fail"),
        (3, timedelta(seconds=3), "struggle", "pass"),
    )
    assert _ids(list_runs(me, limit=10, workflow_type="audit")) == [_id(2), _id(1)]
    assert _ids(list_runs(me, limit=10, status="pass")) == [_id(3), _id(1)]
    assert _ids(list_runs(me, limit=10, workflow_type="audit", status="pass")) == [_id(1)]
    assert _ids(list_runs(me, limit=10, workflow_type="", status="")) == [_id(3), _id(2), _id(1)]
    page = list_runs(me, limit=1, workflow_type="audit")
    assert _ids(list_runs(me, limit=1, cursor=page.next_cursor, workflow_type="audit")) == [_id(1)]
    with pytest.raises(InvalidCursor):
        list_runs(me, limit=1, cursor="0" * 16 + "." + RUN_ID + "0")


def test_the_listing_asks_for_one_run_more_than_a_page(ctx):
    """One row more tells whether there is a next page; never every run of the user."""
    from sqlalchemy import event

    me = _user("one-more@example.com")
    limit = 123_456  # no user id or other parameter of the query has this value
    seen: list = []

    def before(conn, cursor, statement, parameters, *args):
        if "FROM workflow_runs" in statement:
            seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        list_runs(me, limit=limit)
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
    ((statement, parameters),) = seen
    values = list(parameters.values() if isinstance(parameters, dict) else parameters)
    assert "LIMIT" in statement and limit + 1 in values and limit + 2 not in values, (statement, parameters)


def test_a_cursor_is_the_creation_time_in_microseconds_and_the_id():
    when = datetime(1970, 1, 3, 0, 0, 5, 7, tzinfo=UTC)
    expected = f"{(2 * 86_400 + 5) * 1_000_000 + 7:016d}.{RUN_ID}"
    assert workflow_runs._encode_cursor(when, RUN_ID) == expected == "0000172805000007." + RUN_ID
    assert workflow_runs._encode_cursor(when.replace(tzinfo=None), RUN_ID) == expected  # SQLite's naive UTC
    assert workflow_runs._decode_cursor(expected) == (when, RUN_ID)
    assert workflow_runs._encode_cursor(datetime(1970, 1, 1, tzinfo=UTC), RUN_ID) == "0" * 16 + "." + RUN_ID
    assert len(expected) == CURSOR_LENGTH == 53
    later = datetime(2026, 12, 6, 19, 5, 59, 999_999, tzinfo=UTC)
    assert workflow_runs._decode_cursor(workflow_runs._encode_cursor(later, RUN_ID)) == (later, RUN_ID)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "0" * 16 + "." + RUN_ID + "0",  # the pattern matches its start: the length refuses it
        "0" * 15 + "." + RUN_ID + "0",
        "0" * 16 + "-" + RUN_ID,
        "0" * 16 + "." + RUN_ID.upper(),
        "0" * 17 + RUN_ID[1:],
    ],
)
def test_a_cursor_of_any_other_shape_is_refused(cursor):
    with pytest.raises(InvalidCursor) as raised:
        workflow_runs._decode_cursor(cursor)
    message = "The cursor is not one this API handed out; start again without it."
    assert (raised.value.code, raised.value.message, raised.value.details) == (
        "validation_error",
        message,
        {"cursor": [message]},
    )


# --- the workflows' declarations ---------------------------------------------------------------


def test_the_registry_serves_its_workflows_by_name_in_order():
    assert list(WORKFLOWS) == ["struggle", "audit"] and len(WORKFLOWS) == 2
    assert WORKFLOWS["audit"] is AUDIT and WORKFLOWS["struggle"] is STRUGGLE
    more = WORKFLOWS.plus(WORD_COUNT, PROBE)
    assert list(more) == ["struggle", "audit", "word_count", "probe"] and len(more) == 4
    assert list(WORKFLOWS) == ["struggle", "audit"]  # plus() made a new one
    with pytest.raises(KeyError):
        WORKFLOWS["word_count"]
    assert Registry(WORD_COUNT, replace(WORD_COUNT, name="other")).verdicts == (
        "short",
        "long",
    )
    assert more.verdicts == (*STRUGGLE.verdicts, *AUDIT.verdicts, "short", "long", "fine", "bad")
    with pytest.raises(ValueError, match="two workflows are named 'probe'"):
        Registry(PROBE, WORD_COUNT, PROBE)


def test_a_verdict_is_the_result_key_the_workflow_names():
    assert STRUGGLE.verdict({"result": "struggling", "status": "pass"}) == "struggling"
    assert AUDIT.verdict({"result": "struggling", "status": "pass"}) == "pass"
    assert AUDIT.verdict({}) is None


def test_a_workflow_declares_no_metrics_budget_or_precheck_by_default(tmp_path):
    result = {"id": "x", "words": "w" * 100}
    assert WORD_COUNT.within_budget(result, 1) is result
    assert WORD_COUNT.record_metrics(result) is None
    settings = Settings.from_env({"AURA_INSTANCE_PATH": str(tmp_path)})
    assert WORD_COUNT.precheck({"anything": 1}, settings) is None
    assert STRUGGLE.within_budget(result, 1) is result


def _violation(n: int) -> dict:
    return {"type": "print_statement", "path": "a.py", "line": n, "message": "print", "severity": "warning"}


def _audit(count: int) -> dict:
    return {
        "id": RUN_ID,
        "status": "fail",
        "violations": [_violation(n) for n in range(count)],
        "truncated": False,
        "violation_counts": {"print_statement": count},
    }


def test_an_audit_result_keeps_the_findings_that_fit_its_budget():
    result = _audit(5)
    size = len(json_text(result).encode())
    assert within(result, size) is result  # exactly the budget: kept whole
    base = len(json_text({**result, "violations": [], "truncated": True}).encode())
    each = [len(json_text(v).encode()) + 1 for v in result["violations"]]
    for kept in range(5):
        fits = base + sum(each[:kept])
        for budget in (fits, fits + each[kept] - 1):
            cut = within(result, budget)
            assert cut == {**result, "violations": result["violations"][:kept], "truncated": True}, (kept, budget)
            assert len(json_text(cut).encode()) <= budget
    assert within(result, size - 1)["violations"] == result["violations"][:4]
    assert result == _audit(5)  # the stored result is not changed in place


def test_an_audit_budget_counts_bytes_not_characters():
    result = {**_audit(2), "violations": [{**_violation(n), "path": "\U0001d54f" * 10} for n in range(2)]}
    size = len(json_text(result).encode())
    assert within(result, size) is result
    assert within(result, size - 1)["violations"] == result["violations"][:1]


@pytest.mark.parametrize(
    "document, counted",
    [
        ({"files": [{}] * 3}, True),
        ({"files": [{}] * 2}, False),
        ({"files": "abc"}, False),
        ({"files": {"a": 1, "b": 2, "c": 3}}, False),
        ([{}] * 3, False),
        (None, False),
    ],
)
def test_an_audit_of_too_many_files_is_refused_before_its_entries(tmp_path, document, counted):
    settings = Settings.from_env({"AURA_INSTANCE_PATH": str(tmp_path)}, audit_max_files=2)
    if not counted:
        assert files_counted_first(document, settings) is None
        return
    with pytest.raises(AuditLimitError) as raised:
        files_counted_first(document, settings)
    assert (raised.value.limit, raised.value.actual, raised.value.maximum) == ("max_files", 3, 2)


def test_an_audit_run_uses_the_configured_limits(tmp_path):
    settings = Settings.from_env({"AURA_INSTANCE_PATH": str(tmp_path)}, audit_max_files=1)
    recorded = []
    files = [{"path": "a.py", "content": "x = 1\n"}]
    result = AUDIT.run({"files": files}, settings, recorded.append)
    assert result.to_dict()["status"] == "pass" and [r.to_dict() for r in recorded] == [result.to_dict()]
    with pytest.raises(AuditLimitError):
        AUDIT.run({"files": files * 2}, settings, recorded.append)


def test_an_audit_records_its_own_metrics():
    before = registry_samples()
    AUDIT.record_metrics(
        {
            "status": "fail",
            "violations": [{"type": "print_statement"}, {"type": "eval_exec"}, {"type": "print_statement"}],
            "files_processed": 4,
        }
    )
    moved = _moved(before, ("audit_",))
    assert moved == {
        ("audit_executions_total", (("status", "fail"),)): 1,
        ("audit_violations_detected_count", ()): 1,
        ("audit_violations_detected_sum", ()): 3,
        ("audit_files_processed_count", ()): 1,
        ("audit_files_processed_sum", ()): 4,
        ("audit_violations_by_type_total", (("violation_type", "print_statement"),)): 2,
        ("audit_violations_by_type_total", (("violation_type", "eval_exec"),)): 1,
    }


def test_a_struggle_records_its_own_metrics():
    before = registry_samples()
    STRUGGLE.record_metrics(
        {
            "result": "struggling",
            "signals": {"edit_frequency": 12.5, "error_count": 7},
            "recommendations": [{}, {}],
        }
    )
    moved = _moved(before, ("struggle_", "lesson_"))
    assert moved == {
        ("struggle_detections_total", (("result", "struggling"),)): 1,
        ("struggle_workflow_edit_frequency_count", ()): 1,
        ("struggle_workflow_edit_frequency_sum", ()): 12.5,
        ("struggle_workflow_error_count_count", ()): 1,
        ("struggle_workflow_error_count_sum", ()): 7,
        ("lesson_recommendations_generated_total", ()): 2,
    }


def test_the_struggle_catalogue_is_every_lesson_in_the_database_by_id(ctx):
    rows = db.session.scalars(select(LessonRow)).all()
    assert len(rows) >= 2
    expected = sorted(
        (
            Lesson.from_mapping(
                {"lesson_id": r.lesson_id, "title": r.title, "topic": r.topic, "error_types": r.error_types}
            )
            for r in rows
        ),
        key=lambda lesson: lesson.lesson_id,
    )
    assert _catalog() == expected
    assert any(lesson.error_types for lesson in expected)
    # A lesson added last, whose id sorts first, comes first.
    db.session.add(LessonRow(lesson_id="0-first", title="First", topic="Basics", error_types=["KeyError"]))
    db.session.commit()
    try:
        catalog = _catalog()
        assert catalog[0] == Lesson("0-first", "First", "basics", ("KeyError",)) and catalog[1:] == expected
    finally:
        db.session.rollback()
        db.session.execute(delete(LessonRow).where(LessonRow.lesson_id == "0-first"))
        db.session.commit()


def test_a_struggle_run_uses_the_configured_threshold(ctx):
    middling = {"exercise_id": "loops-1", "edit_frequency": 5, "error_count": 3, "error_types": ["NameError"]}
    base = _settings(ctx)
    results = {}
    for threshold in (0.3, 0.45):  # the score of `middling` is 0.38
        settings = Settings.from_env(
            {"AURA_INSTANCE_PATH": str(base.instance_path)}, struggle_score_threshold=threshold
        )
        recorded = []
        result = STRUGGLE.run(dict(middling), settings, recorded.append).to_dict()
        assert [r.to_dict() for r in recorded] == [result]
        assert result["score"] == 0.38 and result["signals"]["threshold"] == threshold
        results[threshold] = result
    assert results[0.3]["result"] == "struggling" and results[0.3]["recommendations"]
    assert results[0.45]["result"] == "not_struggling"
    assert {r["lesson_id"] for r in results[0.3]["recommendations"]} <= {lesson.lesson_id for lesson in _catalog()}
