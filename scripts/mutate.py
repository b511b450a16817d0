"""Mutation testing of the critical modules (`make mutate`): mutmut, then a score per group.

One mutmut configuration covers every group: `[tool.mutmut]` in pyproject.toml names the files
to mutate (`only_mutate`) and the tests that may run (`pytest_add_cli_args_test_selection`);
mutmut runs each mutant against the selected tests that reached the mutated function in its
first, clean run. This script starts from scratch (two `mutmut run`: the mutants whose tests
use no Redis two at a time, then the rest one at a time), sorts the verdicts into the groups below
and prints one line per group, `mutation score GROUP: K/N killed (P%)`, and writes every
mutant that was not killed, with its diff, to mutants/survivors.txt.

Killed means a test failed (or the mutant made the tests hang past mutmut's timeout). N is
every mutant of the group: one that no selected test reaches counts as not killed.

Options: --jobs N (children for the mutants whose tests use no Redis, default 2; the others
run one at a time, because the auth and rate-limit tests share fixed Redis databases that two
children would empty under each other), --min-score P (exit 1 when a group scores below it;
default 90), --report-only (score the mutants/ already there), --resume (keep mutants/),
--group NAME (repeatable: only these groups' mutants, one at a time, and only their scores - a
whole run takes hours on two cores; a group takes minutes to an hour), --postgres URL (a second
pass: the mutants of the chosen groups that survived on SQLite run again, one at a time, with
AURA_TEST_DATABASE_URL=URL; mutmut's verdict replaces the SQLite one, so a mutant counts as
killed when the tests kill it on either database, as CI runs them on both; with --report-only,
only this pass runs, on the mutants/ already there).
Tests run on SQLite against the Redis in AURA_TEST_REDIS_URL (default 127.0.0.1:6379), like
`make test`. See docs/testing.md.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "mutants"
SURVIVORS = MUTANTS / "survivors.txt"
LOG = MUTANTS / "mutmut-run.log"

# Group name -> globs of the source files it holds. Every file mutmut mutates must be in one.
GROUPS: dict[str, list[str]] = {
    "metrics-core": [
        "aura/metrics/values.py",
        "aura/metrics/archive.py",
        "aura/metrics/collector.py",
        "aura/metrics/labels.py",
    ],
    "rate-limits": ["aura/api/rate_limits.py"],
    "tokens": ["aura/auth/service.py", "aura/auth/revocation.py", "aura/auth/tokens.py"],
    "audit-rules": ["aura/workflows/audit/rules/*.py"],
    "api-guards": ["aura/api/concurrency.py", "aura/api/health.py", "aura/api/errors.py"],
    "config": ["aura/config.py"],
    "redis-client": ["aura/infra/redis.py"],
    "metrics-files": ["aura/metrics/inflight.py", "aura/metrics/exemplars.py", "aura/metrics/fileformat.py"],
    "metrics-instance": [
        "aura/metrics/directory.py",
        "aura/metrics/instance.py",
        "aura/metrics/processes.py",
        "aura/metrics/locking.py",
    ],
    "request-path": ["aura/instrumentation/http.py", "aura/api/edge.py", "aura/infra/logs.py"],
    "metrics-serving": ["aura/metrics/exposition.py", "aura/metrics/_compat.py", "aura/metrics/gunicorn.py"],
    "instrumentation": [
        "aura/instrumentation/recorder.py",
        "aura/instrumentation/definitions.py",
        "aura/instrumentation/environ.py",
        "aura/instrumentation/__init__.py",
        "aura/metrics/__init__.py",
    ],
    "workflows-struggle": [
        "aura/workflows/struggle/__init__.py",
        "aura/workflows/struggle/catalog.py",
        "aura/workflows/struggle/graph.py",
        "aura/workflows/struggle/recommend.py",
        "aura/workflows/struggle/scoring.py",
        "aura/workflows/struggle/settings.py",
        "aura/workflows/struggle/types.py",
        "aura/workflows/struggle/validate.py",
    ],
    "workflow-service": [
        "aura/services/workflow_runs.py",
        "aura/services/__init__.py",
        "aura/services/workflows/__init__.py",
        "aura/services/workflows/audit.py",
        "aura/services/workflows/definition.py",
        "aura/services/workflows/registry.py",
        "aura/services/workflows/struggle.py",
    ],
    "metrics-listener": ["aura/metrics/listener.py"],
    "accounts-infra": [
        "aura/auth/devices.py",
        "aura/auth/emails.py",
        "aura/auth/hash_slots.py",
        "aura/auth/passwords.py",
        "aura/infra/database.py",
        "aura/infra/pools.py",
        "aura/infra/rate_limit_storage.py",
        "aura/infra/worker_signals.py",
    ],
    # Named one by one: a glob such as aura/workflows/audit/*.py would also match rules/ (fnmatch's
    # `*` crosses `/`), which is the audit-rules group's.
    "workflows-audit": [
        "aura/workflows/__init__.py",
        "aura/workflows/_graph.py",
        "aura/workflows/errors.py",
        "aura/workflows/audit/__init__.py",
        "aura/workflows/audit/classify.py",
        "aura/workflows/audit/graph.py",
        "aura/workflows/audit/parse.py",
        "aura/workflows/audit/remediation.py",
        "aura/workflows/audit/settings.py",
        "aura/workflows/audit/types.py",
    ],
    "app-assembly": [
        "aura/__init__.py",
        "aura/app.py",
        "aura/cli.py",
        "aura/errors.py",
        "aura/extensions.py",
        "aura/fields.py",
        "aura/models.py",
        "aura/api/__init__.py",
        "aura/api/openapi.py",
        "aura/api/pipeline.py",
        "aura/api/metrics_endpoint.py",
    ],
    "api-views": [
        "aura/api/auth.py",
        "aura/api/jwt.py",
        "aura/api/context.py",
        "aura/api/body.py",
        "aura/api/schemas.py",
        "aura/api/workflows.py",
    ],
    "migrations": [
        "aura/migrations/env.py",
        "aura/migrations/versions/0001_initial_schema.py",
        "aura/migrations/versions/0002_seed_lessons.py",
        "aura/migrations/versions/0003_workflow_run_status.py",
        "aura/migrations/versions/0004_public_ids_and_skeletons.py",
        "aura/migrations/versions/0005_mailbox_skeletons.py",
        "aura/migrations/versions/0006_account_deletion.py",
    ],
}
DETECTED = {"killed", "timeout"}
# Verdicts the PostgreSQL pass runs again: the tests ran and passed (a mutant no test reaches,
# or one an interrupted run left unchecked, has no SQLite verdict to improve on).
RETRIED_ON_POSTGRES = {"survived", "suspicious"}


def _group_of(path: str) -> str:
    for group, globs in GROUPS.items():
        if any(fnmatch.fnmatch(path, pattern) for pattern in globs):
            return group
    raise SystemExit(f"{path} is mutated but in no group of scripts/mutate.py: add it to GROUPS")


def _check_config() -> None:
    """The groups and pyproject's only_mutate must name the same files."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    # Source files only: a glob such as rules/* also matches the __pycache__ a test run leaves.
    mutated = {
        str(p.relative_to(ROOT)) for pattern in config["only_mutate"] for p in ROOT.glob(pattern) if p.suffix == ".py"
    }
    grouped = {
        str(p.relative_to(ROOT))
        for globs in GROUPS.values()
        for pattern in globs
        for p in ROOT.glob(pattern)
        if p.suffix == ".py"
    }
    if mutated != grouped:
        raise SystemExit(
            "pyproject's [tool.mutmut] only_mutate and scripts/mutate.py's GROUPS differ: "
            f"only in only_mutate {sorted(mutated - grouped)}, only in GROUPS {sorted(grouped - mutated)}"
        )


def _check_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        raise SystemExit(f"Redis is not reachable at {url} ({exc}); `make mutate` starts it, or see README") from exc


# Mutants whose tests use no Redis run two at a time (the machine's two cores); the others
# (auth, rate limits, and metrics code the API tests reach) one at a time, because those tests
# share Redis databases 12 and 13 and empty them after each test.
PARALLEL_MUTANTS = ["aura.metrics.archive.*", "aura.metrics.collector.*", "aura.workflows.*"]


def mutant_patterns(group: str) -> list[str]:
    """mutmut name patterns for exactly the mutants of ``group``'s files.

    A mutant is named ``<module>.x_<function>__mutmut_<n>`` or ``<module>.xǁ<class>ǁ<method>...``;
    ``<module>.*`` alone would also take a package's sub-modules (``aura.api.*`` for
    ``aura/api/__init__.py``)."""
    patterns = []
    for pattern in GROUPS[group]:
        for path in sorted(ROOT.glob(pattern)):
            if path.suffix == ".py":
                module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                patterns += [f"{module}.x_*", f"{module}.x\u01c1*"]
    return patterns


def _run_mutmut(jobs: int, fresh: bool = True, groups: list[str] | None = None) -> None:
    if fresh:
        shutil.rmtree(MUTANTS, ignore_errors=True)  # results of an earlier run would stand uncontested
    MUTANTS.mkdir(exist_ok=True)
    env = dict(os.environ)
    # SQLite: each mutant's pytest session drops and re-creates a PostgreSQL schema otherwise.
    env.pop("AURA_TEST_DATABASE_URL", None)
    started = time.monotonic()
    if groups:
        _mutmut(env, ["--max-children", "1", *(p for group in groups for p in mutant_patterns(group))])
    else:
        # First the Redis-free mutants (named: mutmut runs exactly these), then every mutant not
        # yet decided, one at a time.
        _mutmut(env, ["--max-children", str(jobs), *PARALLEL_MUTANTS])
        _mutmut(env, ["--max-children", "1"])
    print(f"mutmut finished in {time.monotonic() - started:.0f} s", flush=True)


def _mutmut(env: dict, args: list[str]) -> None:
    mutmut = Path(sys.executable).with_name("mutmut")
    shown = " ".join(args) if len(args) <= 12 else f"{' '.join(args[:12])} ... ({len(args)} arguments)"
    print(f"mutmut run {shown} (output in {LOG.relative_to(ROOT)})", flush=True)
    with open(LOG, "a") as log:
        # A session of its own: when a mutant hangs a process that its test forked, mutmut's
        # timeout ends the test run but not that process; whatever is left is ended below.
        proc = subprocess.Popen(
            [str(mutmut), "run", *args], cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
        )
        try:
            code = proc.wait()
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if code != 0:
        tail = LOG.read_text(errors="replace").replace("\r", "\n").splitlines()[-30:]
        raise SystemExit(f"mutmut failed (exit {code}):\n" + "\n".join(tail))


def _verdicts() -> dict[str, list[tuple[str, str, str]]]:
    """Group -> [(source path, mutant name, status)] from mutmut's meta files."""
    from mutmut.stats import status_by_exit_code

    by_group: dict[str, list[tuple[str, str, str]]] = {group: [] for group in GROUPS}
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        source = str(meta.relative_to(MUTANTS))[: -len(".meta")]
        exit_codes = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in sorted(exit_codes.items()):
            by_group[_group_of(source)].append((source, name, status_by_exit_code[code]))
    return by_group


def postgres_candidates(by_group: dict[str, list[tuple[str, str, str]]], groups: list[str] | None) -> list[str]:
    """The mutants of ``groups`` (every group when None) that survived the SQLite run."""
    return [
        name
        for group, mutants in by_group.items()
        if not groups or group in groups
        for _, name, status in mutants
        if status in RETRIED_ON_POSTGRES
    ]


def _postgres_pass(url: str, groups: list[str] | None) -> None:
    names = postgres_candidates(_verdicts(), groups)
    print(f"PostgreSQL pass: {len(names)} mutants not killed on SQLite", flush=True)
    if not names:
        return
    env = dict(os.environ, AURA_TEST_DATABASE_URL=url)
    _mutmut(env, ["--max-children", "1", *names])
    killed = postgres_candidates(_verdicts(), groups)
    print(f"PostgreSQL pass: {len(names) - len(killed)} of the {len(names)} killed on PostgreSQL", flush=True)


def _diff(name: str, source: str) -> str:
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    try:
        return get_diff_for_mutant(name, path=source)
    except Exception as exc:  # noqa: BLE001 - a missing diff must not lose the list
        return f"(no diff: {exc})"


def _report(min_score: float, groups: list[str] | None = None) -> bool:
    by_group = {g: mutants for g, mutants in _verdicts().items() if not groups or g in groups}
    lines, ok = [], True
    os.chdir(ROOT)  # mutmut's helpers read mutants/ relative to the working directory
    with open(SURVIVORS, "w") as out:
        for group, mutants in by_group.items():
            killed = sum(status in DETECTED for _, _, status in mutants)
            total = len(mutants)
            score = 100.0 * killed / total if total else 0.0
            ok &= total > 0 and score >= min_score
            lines.append(f"mutation score {group}: {killed}/{total} killed ({score:.0f}%)")
            for source, name, status in mutants:
                if status not in DETECTED:
                    out.write(f"## {group} {status}: {name}\n{_diff(name, source)}\n\n")
    print()
    for line in lines:
        print(line)
    print(f"surviving mutants: {SURVIVORS.relative_to(ROOT)}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="children for the Redis-free mutants (default 2)")
    parser.add_argument("--resume", action="store_true", help="keep mutants/ and test only what is undecided")
    parser.add_argument("--min-score", type=float, default=90.0, help="fail below this score in any group")
    parser.add_argument("--report-only", action="store_true", help="score the existing mutants/ without running")
    parser.add_argument("--group", action="append", choices=sorted(GROUPS), help="only this group (repeatable)")
    parser.add_argument(
        "--postgres", metavar="URL", help="then run the SQLite survivors again on this PostgreSQL database"
    )
    args = parser.parse_args()
    _check_config()
    if not args.report_only or args.postgres:
        _check_redis(os.environ.get("AURA_TEST_REDIS_URL", "redis://127.0.0.1:6379"))
    if not args.report_only:
        _run_mutmut(args.jobs, fresh=not args.resume, groups=args.group)
    elif not MUTANTS.is_dir():
        raise SystemExit("no mutants/ to report on: run without --report-only first")
    if args.postgres:
        _postgres_pass(args.postgres, args.group)
    return 0 if _report(args.min_score, args.group) else 1


if __name__ == "__main__":
    sys.exit(main())
