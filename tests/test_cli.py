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
