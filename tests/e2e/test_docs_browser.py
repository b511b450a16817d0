"""/api/v1/docs in a real headless Chromium, against Gunicorn, with no internet: the page
renders every operation, loads nothing from anywhere but Aura (its Content-Security-Policy
would refuse it), and "Try it out" with a bearer token reaches the running service."""

from __future__ import annotations

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.browser import chromium

pytestmark = [pytest.mark.gunicorn, pytest.mark.slow]

EMAIL, PASSWORD = "docs-reader@example.com", "correct-horse-battery"


def _token(url: str) -> str:
    credentials = {"email": EMAIL, "password": PASSWORD}
    assert requests.post(f"{url}/api/v1/auth/register", json=credentials, timeout=20).status_code == 201
    return requests.post(f"{url}/api/v1/auth/login", json=credentials, timeout=20).json()["access_token"]


def _try_it_out(wait: WebDriverWait, operation: WebElement) -> tuple[str, str]:
    """Open an operation, press "Try it out" then "Execute": the live response's status and body."""
    operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    wait.until(lambda _: operation.find_elements(By.CSS_SELECTOR, "button.try-out__btn"))[0].click()
    wait.until(lambda _: operation.find_elements(By.CSS_SELECTOR, "button.execute"))[0].click()
    status = wait.until(
        lambda _: operation.find_elements(By.CSS_SELECTOR, ".live-responses-table tbody .response-col_status")
    )[0]
    body = operation.find_element(By.CSS_SELECTOR, ".live-responses-table tbody .response-col_description")
    return status.text.strip(), body.text


def test_the_docs_page_renders_and_tries_requests_with_a_bearer_token(gunicorn, tmp_path):
    server = gunicorn(workers=2)
    token = _token(server.url)
    spec = requests.get(f"{server.url}/api/v1/openapi.json", timeout=20).json()
    operation_ids = {op for _, op in _tagged(spec)}

    with chromium(tmp_path / "profile") as browser:
        wait = WebDriverWait(browser, 30)
        browser.get(f"{server.url}/api/v1/docs")
        wait.until(ec.presence_of_all_elements_located((By.CSS_SELECTOR, ".opblock")))
        rendered = {e.get_attribute("id") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock")}
        assert rendered == {f"operations-{tag}-{op}" for tag, op in _tagged(spec)}
        assert len(rendered) == len(operation_ids) >= 10

        # Authorize with the bearer token, as a client developer would.
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button.authorize"))).click()
        wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".auth-container input"))).send_keys(token)
        browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper button.authorize").click()
        browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper button.btn-done").click()

        status, body = _try_it_out(wait, browser.find_element(By.ID, "operations-auth-get_auth_me"))
        assert status == "200" and EMAIL in body, (status, body)
        # A POST with the example body Swagger UI builds from the schema: a stored run.
        status, body = _try_it_out(wait, browser.find_element(By.ID, "operations-workflows-post_workflows_struggle"))
        assert status == "201" and '"recommendations"' in body, (status, body)

        # Every resource came from Aura itself, and the policy refused nothing the page needed.
        loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert loaded and all(name.startswith(server.url + "/api/v1/") for name in loaded), loaded
        refused = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not refused, refused


def _tagged(spec: dict) -> set[tuple[str, str]]:
    """(first tag, operationId) of every operation: Swagger UI's element ids."""
    methods = ("get", "put", "post", "delete", "patch")
    return {
        (op["tags"][0], op["operationId"]) for item in spec["paths"].values() for m, op in item.items() if m in methods
    }


def test_the_page_refuses_what_it_does_not_serve(gunicorn, tmp_path):
    """The policy in force: an inline script injected into the page does not run."""
    server = gunicorn(workers=1)
    with chromium(tmp_path / "profile") as browser:
        browser.get(f"{server.url}/api/v1/docs")
        WebDriverWait(browser, 30).until(ec.presence_of_all_elements_located((By.CSS_SELECTOR, ".opblock")))
        ran = browser.execute_script(
            "const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
            "document.body.appendChild(s); return window.injected === 1;"
        )
        assert ran is False
        assert any("Content Security Policy" in e["message"] for e in browser.get_log("browser"))
