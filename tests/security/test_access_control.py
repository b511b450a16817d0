"""Who may do what, over a real socket: /metrics behind its token, login guessing limited per client
and per target account (X-Forwarded-For from an untrusted client changes nothing), and a client
that logged in before keeping its own tries (device tokens) whatever others guess."""

from __future__ import annotations

import pytest

from tests.security.conftest import HARDENED, METRICS_TOKEN
from tests.support.auth import AuthActions, bearer
from tests.support.errors import assert_error
from tests.support.metrics import parse_exposition

pytestmark = pytest.mark.gunicorn

LOGIN = "/api/v1/auth/login"
PER_CLIENT = int(HARDENED["RATE_LIMIT_LOGIN"].split()[0])
PER_ACCOUNT = int(HARDENED["RATE_LIMIT_LOGIN_ACCOUNT"].split()[0])
PER_DEVICE = int(HARDENED["RATE_LIMIT_LOGIN_DEVICE"].split()[0])


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        f"Bearer {METRICS_TOKEN}x",
        f"Bearer {METRICS_TOKEN[:-1]}",
        f"Bearer  {METRICS_TOKEN}",
        f"Token {METRICS_TOKEN}",
        f"Basic {METRICS_TOKEN}",
        METRICS_TOKEN,
        f"Bearer {METRICS_TOKEN.upper()}",
    ],
)
def test_metrics_refuses_a_scrape_without_the_exact_token(hardened, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = hardened.client().get("/metrics", headers=headers)
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "http_requests_total" not in response.text


def test_metrics_with_the_token_and_nothing_else(hardened):
    client = hardened.client()
    response = client.get("/metrics", headers=bearer(METRICS_TOKEN))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "http_requests_total" in response.text
    # The token in the query string is not a credential (it would end up in access logs).
    assert client.get(f"/metrics?token={METRICS_TOKEN}").status_code == 401
    # A user's access token is not a scrape credential either.
    learner = AuthActions(client).signed_in()
    assert_error(client.get("/metrics", headers=bearer(learner.access)), 401, "unauthorized")


def _hits(server) -> float:
    scraped = parse_exposition(server.client().get("/metrics", headers=bearer(METRICS_TOKEN)).text)
    return sum(
        v
        for (name, labels), v in scraped.items()
        if name == "rate_limit_hits_total" and dict(labels)["endpoint"] == LOGIN
    )


def test_login_guessing_is_limited_per_client(hardened):
    target = AuthActions(hardened.client()).signed_in()
    hits_before = _hits(hardened)
    guesser = hardened.client()
    for n in range(PER_CLIENT):  # different accounts, so only the per-client limit can bite
        response = guesser.post(LOGIN, json={"email": f"guess-{n}@example.com", "password": "guess-1234"})
        assert_error(response, 401, "invalid_credentials")
    blocked = guesser.post(LOGIN, json={"email": target.email, "password": target.password})
    assert_error(blocked, 429, "rate_limited")  # even the right password: no oracle
    assert int(blocked.headers["Retry-After"]) > 0
    # Spoofed X-Forwarded-For from an untrusted client is ignored (TRUSTED_PROXY_COUNT=0).
    spoofed = guesser.post(
        LOGIN, json={"email": "x@example.com", "password": "guess-1234"}, headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert_error(spoofed, 429, "rate_limited")
    # Another client is not punished for it.
    assert target.login().status_code == 200
    assert _hits(hardened) - hits_before == 2


def test_login_guessing_is_limited_per_target_account(hardened):
    victim = AuthActions(hardened.client()).signed_in()  # a success counts nothing
    assert victim.login().status_code == 200
    variants = [victim.email, victim.email.upper(), victim.email.capitalize()]
    clients = [hardened.client() for _ in range(PER_ACCOUNT // 2 + 1)]
    for attempt in range(PER_ACCOUNT):  # from many clients, two each: under each client's limit
        email = variants[attempt % len(variants)]  # case does not make another account
        response = clients[attempt // 2].post(LOGIN, json={"email": email, "password": f"guess-{attempt}"})
        assert_error(response, 401, "invalid_credentials")
    # The account has had its failures: each client now gets one try at it per window.
    assert_error(
        clients[0].post(LOGIN, json={"email": victim.email, "password": "guess-x"}), 401, "invalid_credentials"
    )
    again = clients[0].post(LOGIN, json={"email": victim.email, "password": victim.password})
    assert_error(again, 429, "rate_limited")  # even the right password: no oracle
    assert int(again.headers["Retry-After"]) > 0
    # The lock is on guessing the account, not on the clients that tried it.
    other = AuthActions(clients[0]).signed_in()
    assert other.me().status_code == 200
    # Tokens issued before the guessing still work: the limit locks out logins, not sessions.
    assert victim.me().status_code == 200


def test_the_owner_is_not_locked_out_by_guessing_from_many_addresses(hardened):
    """20 wrong passwords from 20 addresses used to give the right one 429 for an hour."""
    owner = AuthActions(hardened.client()).signed_in()
    for _attempt in range(PER_ACCOUNT * 2 + 4):  # well past the account's failure limit
        response = hardened.client().post(LOGIN, json={"email": owner.email, "password": "guess-1234"})
        assert response.status_code in (401, 429), response.text
    assert owner.login().status_code == 200  # from the owner's own address
    assert AuthActions(hardened.client(), owner.email).login(password=owner.password).status_code == 200  # a new one


def _login(client, email: str, password: str, device_token: str | None = None):
    body = {"email": email, "password": password}
    if device_token is not None:
        body["device_token"] = device_token
    return client.post(LOGIN, json=body)


def _lock_out_unknown_clients(server, email: str, password: str) -> None:
    """Guess the account from many addresses until any client it does not know gets one try, then 429."""
    for attempt in range(PER_ACCOUNT * 2 + 4):
        response = _login(server.client(), email, f"guess-{attempt}")
        assert response.status_code in (401, 429), response.text
    unknown = server.client()
    assert_error(_login(unknown, email, "guess-x"), 401, "invalid_credentials")
    assert_error(_login(unknown, email, password), 429, "rate_limited")  # the lockout the owner met


def test_a_client_that_logged_in_before_keeps_its_own_tries(hardened):
    """The owner who mistyped once after guessing from many addresses got 429 (Retry-After about
    an hour) even from the address they always log in from. Their device token keeps them their
    own allowance (RATE_LIMIT_LOGIN_DEVICE), from that address or any other."""
    home = hardened.client()
    owner = AuthActions(home).signed_in()
    device = owner.tokens["device_token"]
    _lock_out_unknown_clients(hardened, owner.email, owner.password)

    assert_error(_login(home, owner.email, "typo-one", device), 401, "invalid_credentials")
    assert_error(_login(home, owner.email, "typo-two", device), 401, "invalid_credentials")
    back = _login(home, owner.email, owner.password, device)
    assert back.status_code == 200, back.text
    renewed = back.json()["device_token"]
    away = hardened.client()  # a phone on another network: an address never seen
    assert_error(_login(away, owner.email, "typo-three", renewed), 401, "invalid_credentials")
    assert _login(away, owner.email, owner.password, renewed).status_code == 200
    # A device token opens nothing by itself: it is not an access token.
    assert_error(home.get("/api/v1/auth/me", headers=bearer(device)), 401, "invalid_token")


def test_a_device_token_is_worth_its_own_allowance_for_its_own_account_only(hardened):
    owner = AuthActions(hardened.client()).signed_in()
    device = owner.tokens["device_token"]
    stranger = AuthActions(hardened.client()).signed_in()
    _lock_out_unknown_clients(hardened, owner.email, owner.password)

    # Another account's device token, or a forged one, makes an unknown client: one try, then 429.
    forged = device[:-4] + ("AAAA" if not device.endswith("AAAA") else "BBBB")
    for token in (stranger.tokens["device_token"], forged, owner.access):
        client = hardened.client()
        assert_error(_login(client, owner.email, "guess-y", token), 401, "invalid_credentials")
        assert_error(_login(client, owner.email, owner.password, token), 429, "rate_limited")
    # Whoever holds the owner's device token (a thief too) gets its allowance and no more:
    for attempt in range(PER_DEVICE):
        assert_error(_login(hardened.client(), owner.email, f"stolen-{attempt}", device), 401, "invalid_credentials")
    spent = hardened.client()
    assert_error(_login(spent, owner.email, "stolen-x", device), 401, "invalid_credentials")  # its address's try
    assert_error(_login(spent, owner.email, owner.password, device), 429, "rate_limited")
