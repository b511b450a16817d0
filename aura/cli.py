"""Operator commands: `flask --app wsgi user list|activate|deactivate|delete`, and `db`
(flask-migrate's) with one-line errors when the database cannot be reached."""

from __future__ import annotations

from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup, ScriptInfo
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from aura.auth.service import delete_account, find_user
from aura.config import ConfigError, exit_on_config_error, redact_url
from aura.extensions import db
from aura.models import User


class DatabaseCommands(AppGroup):
    """A command group whose commands stop with one line, exit status 2, when the database cannot
    be reached (down, wrong host, refused credentials, no such database): what `make run` and a
    deployment's migration job print, instead of a double traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; an unreachable database becomes a configuration error line."""
        try:
            return super().invoke(ctx)
        except (OperationalError, InterfaceError) as exc:
            info = ctx.find_object(ScriptInfo)
            url = info.load_app().config["SQLALCHEMY_DATABASE_URI"] if info else ""
            exit_on_config_error(database_error(url, exc))


def database_error(url: str, exc: OperationalError | InterfaceError) -> ConfigError:
    """The one line for an unreachable database: DATABASE_URL (password masked) and the cause."""
    cause = " ".join(str(exc.orig or exc).split())
    password = make_url(url).password if url else None
    if password:  # drivers do not echo it today; make sure no future one does here
        cause = cause.replace(str(password), "***")
    return ConfigError(f"DATABASE_URL={redact_url(url)!r}: cannot use the database: {cause}")


def guard_database_commands(app: Flask) -> None:
    """Give flask-migrate's `db` group (`flask db upgrade`, ...) the one-line database errors."""
    migrations = app.cli.commands.get("db")
    if isinstance(migrations, click.Group) and not isinstance(migrations, DatabaseCommands):
        app.cli.add_command(
            DatabaseCommands(
                "db",
                commands=migrations.commands,
                callback=migrations.callback,  # flask-migrate's group options (-d, -x)
                params=migrations.params,
                help=migrations.help,
            )
        )


user_cli = DatabaseCommands("user", help="Manage user accounts.")


def _set_active(email: str, active: bool) -> None:
    user = find_user(email)
    if user is None:
        raise click.ClickException(f"no user with email {email}")
    user.is_active = active
    db.session.commit()
    if active:
        click.echo(f"{user.email} activated: it can log in again, and its unexpired tokens work again")
        return
    # Every protected route looks the account up, so its tokens stop working at once too.
    click.echo(f"{user.email} deactivated: logins, refreshes and its tokens are refused from the next request on")


@user_cli.command("list")
@click.option(
    "--status",
    "status",
    type=click.Choice(["all", "active", "inactive"]),
    default="all",
    show_default=True,
    help="Which accounts to list.",
)
def list_users(status: str) -> None:
    """List accounts: id, email, active or inactive, created (oldest first)."""
    _list_users(status)


def _list_users(status: str) -> None:
    query = select(User).order_by(User.id)
    if status != "all":
        query = query.where(User.is_active.is_(status == "active"))
    users = list(db.session.scalars(query))
    width = max([len(u.email) for u in users] + [5])
    click.echo(f"{'ID':>6}  {'EMAIL':<{width}}  {'STATUS':<8}  CREATED")
    for user in users:
        created = user.created_at.strftime("%Y-%m-%d %H:%M:%S") if user.created_at else "-"
        click.echo(
            f"{user.id:>6}  {user.email:<{width}}  {'active' if user.is_active else 'inactive':<8}  {created} UTC"
        )
    click.echo(f"{len(users)} account(s)", err=True)


@user_cli.command("deactivate")
@click.argument("email")
def deactivate(email: str) -> None:
    """Stop an account: login, refresh and its tokens are refused from the next request on."""
    _set_active(email, False)


@user_cli.command("activate")
@click.argument("email")
def activate(email: str) -> None:
    """Allow a deactivated account to log in again (its unexpired tokens work again too)."""
    _set_active(email, True)


@user_cli.command("delete")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Delete without asking for confirmation.")
def delete(email: str, yes: bool) -> None:
    """Delete an account, its workflow runs and its revocation records; its tokens stop working."""
    _delete(email, yes)


def _delete(email: str, yes: bool) -> None:
    user = find_user(email)
    if user is None:
        raise click.ClickException(f"no user with email {email}")
    if not yes:
        click.confirm(f"Delete {user.email} and every workflow run it stored?", abort=True)
    gone = delete_account(user)
    click.echo(
        f"{gone.email} deleted with {gone.runs} workflow run(s) and {gone.revocations} revocation record(s); "
        "its tokens are refused from the next request on, and its id is never given to another account"
    )
