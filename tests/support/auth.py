"""AuthActions: the auth API as one-line steps of a user's story."""

from __future__ import annotations


class AuthActions:
    """Tell the auth story in one line per step."""

    def __init__(self, client, email="learner@example.com", password="correct-horse-1"):
        self.client, self.email, self.password = client, email, password
        self.tokens: dict = {}

    def register(self, email=None, password=None):
        return self.client.post(
            "/api/v1/auth/register", json={"email": email or self.email, "password": password or self.password}
        )

    def login(self, email=None, password=None):
        response = self.client.post(
            "/api/v1/auth/login", json={"email": email or self.email, "password": password or self.password}
        )
        if response.status_code == 200:
            self.tokens = response.get_json()
        return response

    def bearer(self, token=None):
        return {"Authorization": f"Bearer {token or self.tokens['access_token']}"}

    def me(self, token=None):
        return self.client.get("/api/v1/auth/me", headers=self.bearer(token))

    def refresh(self, token=None):
        response = self.client.post("/api/v1/auth/refresh", headers=self.bearer(token or self.tokens["refresh_token"]))
        if response.status_code == 200:
            self.tokens = response.get_json()
        return response

    def logout(self, token=None, refresh_token=None):
        body = {"refresh_token": refresh_token} if refresh_token else None
        return self.client.post("/api/v1/auth/logout", headers=self.bearer(token), json=body)

    def signed_in(self):
        """Register and log in; returns self for chaining."""
        assert self.register().status_code == 201
        assert self.login().status_code == 200
        return self
