"""AuthActions: one user's auth API as one-line steps of a story, in-process or over HTTP."""

from __future__ import annotations

import uuid

PASSWORD = "correct-horse-battery-9"


def bearer(token: str) -> dict[str, str]:
    """The Authorization header carrying `token`."""
    return {"Authorization": f"Bearer {token}"}


def _json(response) -> dict:
    """The JSON body of a Flask test response or of a `requests` response."""
    return response.get_json() if hasattr(response, "get_json") else response.json()


class AuthActions:
    """Tell the auth story in one line per step.

    `client` is a Flask test client or anything with the same `get`/`post` (tests/security's
    HTTP `Client`). Without an email each account gets a fresh one, so accounts never collide on a
    server shared by many tests.
    """

    def __init__(self, client, email: str | None = None, password: str = PASSWORD):
        self.client = client
        self.email = email or f"{uuid.uuid4().hex[:12]}@example.com"
        self.password = password
        self.tokens: dict = {}

    @property
    def access(self) -> str:
        """The current access token."""
        return self.tokens["access_token"]

    @property
    def refresh_token(self) -> str:
        """The current refresh token."""
        return self.tokens["refresh_token"]

    def bearer(self, token: str | None = None) -> dict[str, str]:
        """The Authorization header for `token` (the current access token by default)."""
        return bearer(token or self.access)

    def register(self, email: str | None = None, password: str | None = None):
        """POST /register with this account's (or the given) email and password."""
        return self.client.post(
            "/api/v1/auth/register", json={"email": email or self.email, "password": password or self.password}
        )

    def login(self, email: str | None = None, password: str | None = None):
        """POST /login; on success the tokens are kept for the next steps."""
        response = self.client.post(
            "/api/v1/auth/login", json={"email": email or self.email, "password": password or self.password}
        )
        if response.status_code == 200:
            self.tokens = _json(response)
        return response

    def me(self, token: str | None = None):
        """GET /me with the access token (or the given one)."""
        return self.client.get("/api/v1/auth/me", headers=self.bearer(token))

    def refresh(self, token: str | None = None):
        """POST /refresh with the refresh token (or the given one); on success the new pair is kept."""
        response = self.client.post("/api/v1/auth/refresh", headers=self.bearer(token or self.refresh_token))
        if response.status_code == 200:
            self.tokens = _json(response)
        return response

    def logout(self, token: str | None = None, refresh_token: str | None = None):
        """POST /logout with the access token (or the given one), revoking `refresh_token` too when given."""
        body = {"refresh_token": refresh_token} if refresh_token else None
        return self.client.post("/api/v1/auth/logout", headers=self.bearer(token), json=body)

    def signed_in(self) -> AuthActions:
        """Register and log in; returns self for chaining."""
        assert self.register().status_code == 201
        assert self.login().status_code == 200
        return self
