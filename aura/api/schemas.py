"""Request and response schemas of /api/v1; they validate requests and generate the OpenAPI doc."""

from __future__ import annotations

from datetime import UTC

import marshmallow as ma
from marshmallow import validate

PASSWORD_LENGTH = validate.Length(min=8, max=128, error="Password must be 8 to 128 characters.")


class CredentialsSchema(ma.Schema):
    """Email and password, for register and login."""

    email = ma.fields.Email(required=True, validate=validate.Length(max=320))
    password = ma.fields.String(required=True, validate=PASSWORD_LENGTH, load_only=True)


class LoginSchema(CredentialsSchema):
    """Login accepts any password length up to the maximum, so old rules never lock anyone out."""

    password = ma.fields.String(required=True, load_only=True,
                                validate=validate.Length(min=1, max=128))


class UserSchema(ma.Schema):
    """A user as the API shows it."""

    id = ma.fields.Integer(required=True)
    email = ma.fields.String(required=True)
    created_at = ma.fields.AwareDateTime(required=True, default_timezone=UTC)


class TokenPairSchema(ma.Schema):
    """Tokens returned by login and refresh."""

    access_token = ma.fields.String(required=True)
    refresh_token = ma.fields.String(required=True)
    token_type = ma.fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = ma.fields.Integer(required=True, metadata={"description": "Access token lifetime (s)"})


class LogoutSchema(ma.Schema):
    """Optional refresh token to revoke together with the access token."""

    refresh_token = ma.fields.String(validate=validate.Length(max=4096))


class MessageSchema(ma.Schema):
    """A plain acknowledgement."""

    message = ma.fields.String(required=True)
