"""Operator commands: list accounts, deactivate and reactivate them, and say what that means."""

from __future__ import annotations

from tests.support.auth import AuthActions


def test_list_shows_active_and_inactive_accounts(app, client):
    for email in ("ada@example.com", "bob@example.com"):
        AuthActions(client, email).register()
    runner = app.test_cli_runner()
    deactivated = runner.invoke(args=["user", "deactivate", "bob@example.com"])
    assert deactivated.exit_code == 0
    assert "its tokens are refused from the next request on" in deactivated.output

    rows = runner.invoke(args=["user", "list"]).output.splitlines()
    assert rows[0].split() == ["ID", "EMAIL", "STATUS", "CREATED"]
    statuses = {line.split()[1]: line.split()[2] for line in rows[1:] if "@" in line}
    assert statuses == {"ada@example.com": "active", "bob@example.com": "inactive"}
    inactive = runner.invoke(args=["user", "list", "--status", "inactive"]).output
    assert "bob@example.com" in inactive and "ada@example.com" not in inactive

    assert runner.invoke(args=["user", "activate", "bob@example.com"]).exit_code == 0
    assert "inactive" not in runner.invoke(args=["user", "list", "--status", "all"]).output.split("STATUS")[1]


def test_deactivation_stops_logins_refreshes_and_tokens_at_once(app, client):
    learner = AuthActions(client).signed_in()
    app.test_cli_runner().invoke(args=["user", "deactivate", learner.email])
    assert learner.login().status_code == 403
    assert learner.refresh().status_code == 403
    # What the command says: the access token already issued stops working too.
    me = learner.me()
    assert me.status_code == 403 and me.get_json()["error"] == "inactive_user"


def test_unknown_email_is_an_error(app):
    result = app.test_cli_runner().invoke(args=["user", "deactivate", "ghost@example.com"])
    assert result.exit_code != 0 and "no user with email ghost@example.com" in result.output


def _set_created(app, when):
    from sqlalchemy import update

    from aura.extensions import db
    from aura.models import User

    with app.app_context():
        db.session.execute(update(User).values(created_at=when))
        db.session.commit()


def test_list_is_aligned_to_the_longest_email_oldest_first(app, client):
    from datetime import UTC, datetime

    for email in ("a@b.co", "a-much-longer-address@example.com"):
        AuthActions(client, email).register()
    _set_created(app, datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["user", "deactivate", "a@b.co"]).exit_code == 0
    result = runner.invoke(args=["user", "list"])
    lines = result.stdout.splitlines()
    width = len("a-much-longer-address@example.com")
    assert lines[0] == f"{'ID':>6}  {'EMAIL':<{width}}  STATUS    CREATED"
    ids = [int(line.split()[0]) for line in lines[1:]]
    assert ids == sorted(ids) and len(ids) == 2
    assert lines[1] == f"{ids[0]:>6}  {'a@b.co':<{width}}  inactive  2024-05-06 07:08:09 UTC"
    assert lines[2] == f"{ids[1]:>6}  {'a-much-longer-address@example.com':<{width}}  active    2024-05-06 07:08:09 UTC"
    assert result.stderr == "2 account(s)\n"
    active = runner.invoke(args=["user", "list", "--status", "active"])
    assert [line.split()[1] for line in active.stdout.splitlines()[1:]] == ["a-much-longer-address@example.com"]
    assert active.stderr == "1 account(s)\n"


def test_an_empty_list_keeps_the_email_column_five_wide(app):
    result = app.test_cli_runner().invoke(args=["user", "list"])
    assert result.stdout == "    ID  EMAIL  STATUS    CREATED\n" and result.stderr == "0 account(s)\n"


def test_activation_and_deactivation_say_what_they_did(app, client):
    AuthActions(client, "ada@example.com").register()
    runner = app.test_cli_runner()
    off = runner.invoke(args=["user", "deactivate", "ada@example.com"])
    assert off.stdout == (
        "ada@example.com deactivated: logins, refreshes and its tokens are refused from the next request on\n"
    )
    on = runner.invoke(args=["user", "activate", "ada@example.com"])
    assert on.stdout == "ada@example.com activated: it can log in again, and its unexpired tokens work again\n"
    assert AuthActions(client, "ada@example.com").login().status_code == 200
    missing = runner.invoke(args=["user", "activate", "ghost@example.com"])
    assert missing.exit_code == 1 and "Error: no user with email ghost@example.com" in missing.stderr


def test_delete_asks_first_unless_told_yes(app, client):
    learner = AuthActions(client, "ada@example.com").signed_in()
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["user", "delete", "ada@example.com"], input="n\n")
    assert refused.exit_code == 1 and "Delete ada@example.com and every workflow run it stored? [y/N]" in refused.output
    assert learner.me().status_code == 200  # still there
    agreed = runner.invoke(args=["user", "delete", "ada@example.com"], input="y\n")
    assert agreed.exit_code == 0
    assert agreed.stdout.endswith(
        "ada@example.com deleted with 0 workflow run(s) and 0 revocation record(s); its tokens are refused "
        "from the next request on, and its id is never given to another account\n"
    )
    assert learner.me().status_code == 401
    missing = runner.invoke(args=["user", "delete", "ada@example.com", "--yes"])
    assert missing.exit_code == 1 and "no user with email ada@example.com" in missing.stderr


def test_delete_yes_deletes_without_asking(app, client):
    AuthActions(client, "bob@example.com").signed_in()
    result = app.test_cli_runner().invoke(args=["user", "delete", "bob@example.com", "--yes"], input="n\n")
    assert result.exit_code == 0 and "[y/N]" not in result.output
    assert result.stdout.startswith("bob@example.com deleted with 0 workflow run(s)")


def test_an_unreachable_database_is_one_line_and_exit_status_2(make_app, tmp_path):
    url = f"sqlite:///{tmp_path}/no-such-directory/aura.db"
    app = make_app(database_url=url, metrics_enabled=False)
    for args in (["user", "list"], ["db", "current"]):
        result = app.test_cli_runner().invoke(args=args)
        assert result.exit_code == 2, result.output
        assert result.stdout == "", args
        assert result.stderr.startswith(f"aura: configuration error: DATABASE_URL='{url}': cannot use the database: ")
        assert "unable to open database file" in result.stderr and result.stderr.count("\n") == 1


def test_the_database_error_masks_the_password_and_flattens_the_cause():
    from sqlalchemy.exc import OperationalError

    from aura.cli import database_error

    url = "postgresql+psycopg://aura:s3cret-pw@db.example:5432/aura"
    cause = OperationalError("SELECT 1", {}, Exception("password s3cret-pw refused\n   for user  aura"))
    assert str(database_error(url, cause)) == (
        "DATABASE_URL='postgresql+psycopg://aura:***@db.example:5432/aura': cannot use the database: "
        "password *** refused for user aura"
    )
    without_orig = OperationalError("SELECT 1", {}, None)  # type: ignore[arg-type]
    assert str(database_error("", without_orig)).startswith("DATABASE_URL='': cannot use the database: ")
    assert "SELECT 1" in str(database_error("", without_orig))
    no_password = database_error("sqlite:///x.db", OperationalError("s", {}, Exception("disk  I/O error")))
    assert str(no_password) == "DATABASE_URL='sqlite:///x.db': cannot use the database: disk I/O error"


def test_flask_migrates_db_group_keeps_its_commands_and_options(app):
    from flask_migrate.cli import db as migrate_db

    from aura.cli import DatabaseCommands, guard_database_commands

    group = app.cli.commands["db"]
    assert isinstance(group, DatabaseCommands) and group.name == "db"
    assert group.commands == migrate_db.commands and group.callback is migrate_db.callback
    assert group.params == migrate_db.params and group.help == migrate_db.help
    guard_database_commands(app)
    assert app.cli.commands["db"] is group  # guarded once


def test_a_database_error_without_a_flask_app_names_no_url():
    from click.testing import CliRunner
    from sqlalchemy.exc import OperationalError

    from aura.cli import DatabaseCommands

    group = DatabaseCommands("g")

    @group.command("boom", with_appcontext=False)
    def boom():
        raise OperationalError("SELECT 1", {}, Exception("server closed  the connection"))

    result = CliRunner().invoke(group, ["boom"])  # no ScriptInfo: no app to read DATABASE_URL from
    assert result.exit_code == 2
    assert result.stderr == (
        "aura: configuration error: DATABASE_URL='': cannot use the database: server closed the connection\n"
    )
