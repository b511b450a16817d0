"""scripts/mutate.py's groups: in step with pyproject's [tool.mutmut], and each group's mutant
patterns naming its own modules' mutants only."""

from __future__ import annotations

import fnmatch
import importlib.util

from aura.testing.servers import ROOT

_spec = importlib.util.spec_from_file_location("mutate", ROOT / "scripts" / "mutate.py")
assert _spec and _spec.loader
mutate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mutate)


def test_the_groups_and_only_mutate_name_the_same_files():
    mutate._check_config()  # raises SystemExit naming the difference


def test_a_packages_patterns_do_not_take_its_sub_modules():
    patterns = mutate.mutant_patterns("app-assembly")
    mine = ["aura.api.x_blueprint__mutmut_1", "aura.api.pipeline.x_install__mutmut_2", "aura.x_create_app__mutmut_1"]
    others = ["aura.api.auth.x__login__mutmut_1", "aura.api.errors.xǁAuraErrorǁ__init____mutmut_1"]
    assert all(any(fnmatch.fnmatch(name, p) for p in patterns) for name in mine)
    assert not any(fnmatch.fnmatch(name, p) for p in patterns for name in others)


def test_every_mutated_module_is_in_exactly_one_groups_patterns():
    modules = {}
    for group in mutate.GROUPS:
        for pattern in mutate.mutant_patterns(group):
            module = pattern.rsplit(".", 1)[0]
            assert modules.setdefault(module, group) == group, module
    # a method mutant of a class in the module, and a function mutant
    for module, group in modules.items():
        for name in (f"{module}.x_f__mutmut_1", f"{module}.xǁCǁm__mutmut_1"):
            owners = {g for g in mutate.GROUPS for p in mutate.mutant_patterns(g) if fnmatch.fnmatch(name, p)}
            assert owners == {group}, name


def test_the_postgres_pass_reruns_only_the_chosen_groups_survivors(monkeypatch):
    verdicts = {
        "migrations": [
            ("aura/migrations/env.py", "aura.migrations.env.x_f__mutmut_1", "survived"),
            ("aura/migrations/env.py", "aura.migrations.env.x_f__mutmut_2", "killed"),
            ("aura/migrations/env.py", "aura.migrations.env.x_f__mutmut_3", "timeout"),
            ("aura/migrations/env.py", "aura.migrations.env.x_f__mutmut_4", "no tests"),
            ("aura/migrations/env.py", "aura.migrations.env.x_f__mutmut_5", "not checked"),
            ("aura/migrations/env.py", "aura.migrations.env.x_f__mutmut_6", "suspicious"),
        ],
        "config": [("aura/config.py", "aura.config.x_g__mutmut_1", "survived")],
    }
    assert mutate.postgres_candidates(verdicts, ["migrations"]) == [
        "aura.migrations.env.x_f__mutmut_1",
        "aura.migrations.env.x_f__mutmut_6",
    ]
    assert len(mutate.postgres_candidates(verdicts, None)) == 3

    runs = []
    monkeypatch.setattr(mutate, "_verdicts", lambda: verdicts)
    monkeypatch.setattr(mutate, "_mutmut", lambda env, args: runs.append((env["AURA_TEST_DATABASE_URL"], args)))
    mutate._postgres_pass("postgresql+psycopg://pg/test", ["config"])
    assert runs == [("postgresql+psycopg://pg/test", ["--max-children", "1", "aura.config.x_g__mutmut_1"])]
