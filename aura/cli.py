"""Operator commands: `flask --app wsgi user list|activate|deactivate|delete`."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from aura.auth.service import delete_account, find_user
from aura.extensions import db
from aura.models import User

user_cli = AppGroup("user", help="Manage user accounts.")


def _set_active(email: str, active: bool) -> None:
    user = find_user(email)
    if user is None:
        raise click.ClickException(f"no user with email {email}")
    user.is_active = active
    db.session.commit()
    if active:
        click.echo(f"{user.email} activated: it can log in again")
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
    """Allow a deactivated account to log in again."""
    _set_active(email, True)


@user_cli.command("delete")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Delete without asking for confirmation.")
def delete(email: str, yes: bool) -> None:
    """Delete an account, its workflow runs and its revocation records; its tokens stop working."""
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
