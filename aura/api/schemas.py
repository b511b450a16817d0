"""Request and response schemas of /api/v1; they validate requests and generate the OpenAPI doc."""

from __future__ import annotations

from datetime import UTC

import marshmallow as ma
from marshmallow import validate

from aura.auth.emails import domain_error, invisible_characters, mailbox, normalise
from aura.services.workflow_runs import CURSOR_LENGTH, CURSOR_PATTERN


class UtcDateTime(ma.fields.DateTime):
    """ISO 8601 with an explicit UTC offset; SQLite hands back naive UTC datetimes."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return super()._serialize(value, attr, obj, **kwargs)


class StrictFloat(ma.fields.Float):
    """A JSON number, never a string ("5") or a boolean: the document says `number`."""

    def _validated(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        return super()._validated(value)


class StrictInteger(ma.fields.Integer):
    """A JSON integer, never a string or a boolean (true is an int to Python)."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._validated(value)


# Longest audited file path (characters): paths are echoed in every finding and stored.
MAX_PATH_LENGTH = 255


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


class StruggleInputSchema(ma.Schema):
    """What the editor reports about a learner's recent activity on one exercise."""

    # Blank ids are refused by the workflow (it strips them): the document says so with a pattern,
    # in Python's sense of whitespace (\x1c-\x1f count), which is what the validator applies.
    exercise_id = ma.fields.String(
        required=True,
        validate=[
            validate.Length(min=1, max=100),
            validate.Regexp(r"^\s*\S", error="must be a non-empty string"),
        ],
    )
    edit_frequency = StrictFloat(
        required=True,
        allow_nan=False,
        validate=validate.Range(min=0, max=10_000),
        metadata={"description": "Edits per minute over the window"},
    )
    error_count = StrictInteger(
        required=True, validate=validate.Range(min=0, max=1_000_000), metadata={"description": "Errors in the window"}
    )
    window_seconds = StrictInteger(load_default=300, validate=validate.Range(min=1, max=86_400))
    error_types = ma.fields.List(
        ma.fields.String(validate=validate.Length(min=1, max=100)),
        load_default=list,
        validate=validate.Length(max=50),
        metadata={"example": ["NameError", "SyntaxError"]},
    )
    topic = ma.fields.String(validate=validate.Length(max=100), allow_none=True)


class RecommendationSchema(ma.Schema):
    """A recommended lesson and why."""

    lesson_id = ma.fields.String(required=True)
    title = ma.fields.String(required=True)
    reason = ma.fields.String(required=True)


class StruggleResultSchema(ma.Schema):
    """The struggle decision with its evidence."""

    id = ma.fields.String(required=True)
    result = ma.fields.String(required=True, validate=validate.OneOf(["struggling", "not_struggling"]))
    score = ma.fields.Float(required=True)
    signals = ma.fields.Dict(required=True, metadata={"description": "Why: each signal and the threshold"})
    recommendations = ma.fields.List(ma.fields.Nested(RecommendationSchema), required=True)
    created_at = UtcDateTime(required=True)


class AuditFileSchema(ma.Schema):
    """One file to audit."""

    path = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_PATH_LENGTH),
        metadata={"description": "Any non-empty name; files ending in .py are audited"},
    )
    content = ma.fields.String(required=True)


class AuditInputSchema(ma.Schema):
    """Files to audit (limits: AUDIT_MAX_FILES files, AUDIT_MAX_FILE_BYTES each)."""

    files = ma.fields.List(ma.fields.Nested(AuditFileSchema), required=True)


class ViolationSchema(ma.Schema):
    """One finding."""

    type = ma.fields.String(required=True)
    path = ma.fields.String(required=True)
    line = ma.fields.Integer(required=True, allow_none=True)
    message = ma.fields.String(required=True)
    severity = ma.fields.String(required=True, validate=validate.OneOf(["error", "warning"]))


class RemediationSchema(ma.Schema):
    """Advice for one violation type."""

    type = ma.fields.String(required=True)
    advice = ma.fields.String(required=True)


class AuditResultSchema(ma.Schema):
    """The audit verdict and its findings."""

    id = ma.fields.String(required=True)
    status = ma.fields.String(required=True, validate=validate.OneOf(["pass", "fail", "remediation_required"]))
    violations = ma.fields.List(ma.fields.Nested(ViolationSchema), required=True)
    files_processed = ma.fields.Integer(required=True)
    files_skipped = ma.fields.Integer(required=True)
    remediation = ma.fields.List(ma.fields.Nested(RemediationSchema), required=True)
    truncated = ma.fields.Boolean(
        required=True,
        metadata={
            "description": "True when `violations` lists fewer findings than were found (at most 50 "
            "per type and 200 in all are listed)"
        },
    )
    violation_counts = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Integer(),
        required=True,
        metadata={"description": "Every finding by type, listed or not"},
    )
    created_at = UtcDateTime(required=True)


WORKFLOW_TYPES = ("struggle", "audit")
RUN_STATUSES = ("struggling", "not_struggling", "pass", "fail", "remediation_required")


class RunListQuerySchema(ma.Schema):
    """Query of GET /api/v1/workflows: filters, page size and the cursor of the previous page."""

    type = ma.fields.String(validate=validate.OneOf(WORKFLOW_TYPES))
    status = ma.fields.String(validate=validate.OneOf(RUN_STATUSES))
    limit = ma.fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = ma.fields.String(
        validate=[validate.Length(equal=CURSOR_LENGTH), validate.Regexp(CURSOR_PATTERN)],
        metadata={"description": "next_cursor of the previous page (a position: any string of this shape is one)"},
    )


class RunSummarySchema(ma.Schema):
    """One stored run in a listing; its full result is at `url`."""

    id = ma.fields.String(required=True)
    type = ma.fields.String(required=True, validate=validate.OneOf(WORKFLOW_TYPES))
    status = ma.fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "The verdict: struggling/not_struggling or pass/fail/remediation_required"},
    )
    created_at = UtcDateTime(required=True)
    url = ma.fields.String(required=True)


class RunListSchema(ma.Schema):
    """A page of runs, newest first."""

    runs = ma.fields.List(ma.fields.Nested(RunSummarySchema), required=True)
    next_cursor = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "Pass as `cursor` for the next page; null at the end"}
    )
