"""Request and response schemas of /api/v1; they validate requests and generate the OpenAPI doc.

Each workflow's own schemas are declared with it (`aura.services.workflows`)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from aura.auth.emails import domain_error, invisible_characters, mailbox, normalise
from aura.fields import UtcDateTime
from aura.services.workflow_runs import CURSOR_LENGTH, CURSOR_PATTERN
from aura.services.workflows import Registry

PASSWORD_LENGTH = validate.Length(min=8, max=128, error="Password must be 8 to 128 characters.")


def _plain_address(email: str) -> None:
    """Refuse new addresses that could impersonate another, or that no mail server accepts:
    invisible characters (zero-width, bidi overrides, the Hangul filler...) before or after
    NFKC normalisation, and domains that are not valid IDNA names (a braille blank U+2800).
    Look-alikes of existing accounts are refused at registration (409)."""
    hidden = (
        invisible_characters(email) or invisible_characters(normalise(email)) or invisible_characters(mailbox(email))
    )
    if hidden:
        raise ma.ValidationError(f"Email contains invisible or control characters ({', '.join(hidden[:5])}).")
    if len(normalise(email).rpartition("@")[0].encode()) > 64:
        raise ma.ValidationError("The part before @ is longer than 64 bytes.")
    bad_domain = domain_error(normalise(email).rpartition("@")[2])
    if bad_domain:
        raise ma.ValidationError(f"The domain is not a valid domain name (IDNA UTS #46): {bad_domain}.")


class CredentialsSchema(ma.Schema):
    """Email and password, for register."""

    email = ma.fields.Email(required=True, validate=[validate.Length(max=320), _plain_address])
    password = ma.fields.String(required=True, validate=PASSWORD_LENGTH, load_only=True)


class LoginSchema(CredentialsSchema):
    """Login accepts any address and password length up to the maximum, so old rules never lock
    anyone out (an address registration now refuses simply matches no account)."""

    email = ma.fields.Email(required=True, validate=validate.Length(max=320))
    password = ma.fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=128))
    device_token = ma.fields.String(
        load_only=True,
        validate=validate.Length(max=1024),
        metadata={
            "description": "The device_token of an earlier successful login of this account, if the client "
            "has one: its failed logins then count against this device's own allowance, so guessing "
            "from elsewhere cannot lock it out"
        },
    )


class UserSchema(ma.Schema):
    """A user as the API shows it."""

    id = ma.fields.String(
        required=True,
        attribute="public_id",
        metadata={"description": "The account's public id (random, never reused; not the row id)"},
    )
    email = ma.fields.String(required=True)
    created_at = UtcDateTime(required=True)


class TokenPairSchema(ma.Schema):
    """Tokens returned by login and refresh."""

    access_token = ma.fields.String(required=True)
    refresh_token = ma.fields.String(required=True)
    token_type = ma.fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = ma.fields.Integer(required=True, metadata={"description": "Access token lifetime (s)"})
    device_token = ma.fields.String(
        metadata={
            "description": "Login only: keep it and send it with this account's next logins "
            "(valid LOGIN_DEVICE_TOKEN_EXPIRES seconds, 30 days by default)"
        }
    )


class LogoutSchema(ma.Schema):
    """Optional refresh token to revoke together with the access token."""

    refresh_token = ma.fields.String(validate=validate.Length(max=4096))


class MessageSchema(ma.Schema):
    """A plain acknowledgement."""

    message = ma.fields.String(required=True)


def run_listing_schemas(workflows: Registry) -> tuple[type[ma.Schema], type[ma.Schema]]:
    """The query and answer schemas of GET /api/v1/workflows, for the served `workflows`."""
    names, verdicts = list(workflows), list(workflows.verdicts)
    every_verdict = " or ".join("/".join(workflow.verdicts) for workflow in workflows.values())

    class RunListQuerySchema(ma.Schema):
        """Query of GET /api/v1/workflows: filters, page size and the cursor of the previous page."""

        type = ma.fields.String(validate=validate.OneOf(names))
        status = ma.fields.String(validate=validate.OneOf(verdicts))
        limit = ma.fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
        cursor = ma.fields.String(
            validate=[validate.Length(equal=CURSOR_LENGTH), validate.Regexp(CURSOR_PATTERN)],
            metadata={"description": "next_cursor of the previous page (a position: any string of this shape is one)"},
        )

    class RunSummarySchema(ma.Schema):
        """One stored run in a listing; its full result is at `url`."""

        id = ma.fields.String(required=True)
        type = ma.fields.String(required=True, validate=validate.OneOf(names))
        status = ma.fields.String(
            required=True, allow_none=True, metadata={"description": f"The verdict: {every_verdict}"}
        )
        created_at = UtcDateTime(required=True)
        url = ma.fields.String(required=True)

    class RunListSchema(ma.Schema):
        """A page of runs, newest first."""

        runs = ma.fields.List(ma.fields.Nested(RunSummarySchema), required=True)
        next_cursor = ma.fields.String(
            required=True,
            allow_none=True,
            metadata={"description": "Pass as `cursor` for the next page; null at the end"},
        )

    return RunListQuerySchema, RunListSchema
