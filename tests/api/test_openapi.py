"""The OpenAPI document describes every /api/v1 route, from the schemas that validate them."""

from __future__ import annotations

import re


def test_every_api_route_is_documented_with_schemas(app, client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    routes = {
        (rule.rule, method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/") and not rule.endpoint.startswith(("api-docs.", "docs-ui."))
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {
        (path.replace("{", "<").replace("}", ">"), method)
        for path, ops in doc["paths"].items()
        for method in ops
        if method != "parameters"
    }

    def normal(rule):  # flask-smorest writes <string:id> as {id}
        import re

        return re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", rule)

    assert {(normal(r), m) for r, m in routes} == documented
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if method == "parameters":
                continue
            ok = [c for c in op["responses"] if c.startswith("2")]
            assert ok, f"{method} {path} documents no success response"
            if method == "post" and "requestBody" in op:
                assert op["requestBody"]["content"]["application/json"]["schema"]


def test_register_schema_matches_validation(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    schema = doc["components"]["schemas"]["Credentials"]
    assert set(schema["required"]) == {"email", "password"}
    assert schema["properties"]["password"]["minLength"] == 8
    assert schema["properties"]["password"]["maxLength"] == 128
    assert "Error" in doc["components"]["schemas"]


def _doc(client) -> dict:
    return client.get("/api/v1/openapi.json").get_json()


def _operations(doc: dict):
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if method != "parameters":
                yield path, method, op


def test_the_document_is_valid_openapi_3(client):
    from openapi_spec_validator import validate

    validate(_doc(client))  # raises with the first violation of the OpenAPI 3.0 schema


def test_every_security_requirement_names_a_defined_scheme(client):
    doc = _doc(client)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    required = [
        (path, name)
        for path, _, op in _operations(doc)
        for requirement in op.get("security", [])
        for name in requirement
    ]
    assert required, "no operation requires a token?"
    assert {name for _, name in required} <= set(schemes)


def test_operations_have_unique_ids_and_errors_have_the_error_schema(client):
    doc = _doc(client)
    ids = [op.get("operationId") for _, _, op in _operations(doc)]
    assert all(ids) and len(ids) == len(set(ids))
    assert doc["servers"] and doc["servers"][0]["url"]
    for path, method, op in _operations(doc):
        for code, response in op["responses"].items():
            if code.startswith(("4", "5")) or code == "default":
                while "$ref" in response:
                    response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, code)


def test_creating_operations_document_201_and_location(client):
    doc = _doc(client)
    for path in ("/api/v1/workflows/struggle", "/api/v1/workflows/audit"):
        created = doc["paths"][path]["post"]["responses"]["201"]
        assert "Location" in created["headers"]
    assert "201" in doc["paths"]["/api/v1/auth/register"]["post"]["responses"]


def test_the_docs_ui_serves_a_page_that_loads_the_document(client):
    # The page and every asset it names are Aura's own, under a policy that allows nothing else
    # (tests/e2e/test_docs_browser.py renders it in Chromium).
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'data-openapi-url="/api/v1/openapi.json"' in html
    assert "<script>" not in html and "style=" not in html  # nothing inline for the policy to allow
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self';" in policy and "style-src 'self';" in policy
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) == 4
    for url in assets:
        with client.get(url) as asset:  # files are streamed: close them
            assert asset.status_code == 200 and len(asset.data) > 100, url
            assert "swagger-ui-bundle.js" not in url or b"SwaggerUIBundle" in asset.data
    assert client.get("/api/v1/docs/oauth2-redirect.html").status_code == 404  # only what the page uses
    assert client.get("/api/v1/docs/..%2Fconfig.py").status_code == 404


def test_the_docs_ui_is_switchable_and_off_in_production(make_app):
    assert make_app(api_docs_enabled=False).test_client().get("/api/v1/docs").status_code == 404
    assert make_app(api_docs_enabled=False).test_client().get("/api/v1/docs/init.js").status_code == 404
    assert make_app(env="production", api_docs_enabled=None).config["AURA"].api_docs_enabled is False
    # The document itself is always served (clients generate code from it).
    assert make_app(api_docs_enabled=False).test_client().get("/api/v1/openapi.json").status_code == 200


def test_patterns_mean_the_same_to_clients_and_to_the_validator(client, auth):
    """JSON Schema's \\s is ECMAScript's, the validator's is Python's: they differ on \\x1c-\\x1f,
    \\x85 and \\ufeff (Schemathesis found `"\\x1e"` schema-valid and refused). The document's
    patterns spell whitespace out, and the class is exactly Python's whitespace."""
    from aura.fields import NOT_BLANK, WHITESPACE_CLASS

    spelled = re.compile(f"[{WHITESPACE_CLASS}]")
    assert [hex(c) for c in range(0x110000) if bool(spelled.fullmatch(chr(c))) != chr(c).isspace()] == []
    patterns = list(_patterns(_doc(client)))
    assert NOT_BLANK in patterns and not any(re.search(r"(?<!\\)\\[sS]", p) for p in patterns), patterns
    auth.signed_in()
    for exercise_id, status in (("\x1e", 422), ("\x85 \u3000", 422), ("\ufeff", 201), (" a ", 201)):
        body = {"exercise_id": exercise_id, "edit_frequency": 1.0, "error_count": 0}
        response = client.post("/api/v1/workflows/struggle", json=body, headers=auth.bearer())
        assert response.status_code == status, repr(exercise_id)


def _patterns(node):
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield node["pattern"]
        for child in node.values():
            yield from _patterns(child)
    elif isinstance(node, list):
        for child in node:
            yield from _patterns(child)
