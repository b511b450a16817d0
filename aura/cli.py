"""Operator commands."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from aura.auth.service import find_user
from aura.extensions import db

user_cli = AppGroup("user", help="Manage user accounts.")


def _set_active(email: str, active: bool) -> None:
    user = find_user(email)
    if user is None:
        raise click.ClickException(f"no user with email {email}")
    user.is_active = active
    db.session.commit()
    click.echo(f"{user.email} {'activated' if active else 'deactivated'}")


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
