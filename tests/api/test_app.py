"""What `create_app` serves besides the v1 routers: health, the OpenAPI schema and its docs."""

import warnings
from collections import Counter

import httpx
import pytest

from neurodepot.depot import schema
from neurodepot.depot.folder import Depot

pytestmark = pytest.mark.anyio


async def test_health_is_public_and_names_the_schema_revision(
    anonymous_client: httpx.AsyncClient, depot: Depot
):
    response = await anonymous_client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["schema_revision"] == schema.current_revision(depot.engine)
    assert set(body) == {"status", "version", "schema_revision"}


async def test_openapi_schema_is_valid_enough_for_client_generators(
    anonymous_client: httpx.AsyncClient,
):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        response = await anonymous_client.get("/api/openapi.json")
    assert response.status_code == 200
    operations = [
        operation["operationId"]
        for path in response.json()["paths"].values()
        for operation in path.values()
    ]
    assert [name for name, n in Counter(operations).items() if n > 1] == []
    assert len(operations) > 30


async def test_docs_and_their_oauth2_redirect_live_under_api_docs(
    anonymous_client: httpx.AsyncClient,
):
    page = await anonymous_client.get("/api/docs")
    assert page.status_code == 200
    assert "/api/openapi.json" in page.text
    assert "/api/docs/oauth2-redirect" in page.text
    redirect = await anonymous_client.get("/api/docs/oauth2-redirect")
    assert redirect.status_code == 200
    assert (await anonymous_client.get("/docs/oauth2-redirect")).status_code == 404


async def test_a_malformed_body_is_a_422_in_the_common_error_shape(
    operator_client: httpx.AsyncClient,
) -> None:
    response = await operator_client.post(
        "/api/v1/projects", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "Invalid"
    assert "JSON decode error" in body["message"]


async def test_an_anonymous_malformed_body_is_denied_not_validated(
    anonymous_client: httpx.AsyncClient,
) -> None:
    response = await anonymous_client.post(
        "/api/v1/projects", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 403
    assert response.json()["error"] == "Denied"


async def test_an_unknown_route_is_a_404_in_the_common_error_shape(
    operator_client: httpx.AsyncClient,
) -> None:
    response = await operator_client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {"error": "NotFound", "message": "Not Found"}


async def test_every_operation_declares_the_errors_it_answers_with_in_the_error_shape(
    anonymous_client: httpx.AsyncClient,
):
    spec = (await anonymous_client.get("/api/openapi.json")).json()
    errors = {"ErrorOut": {"error", "message"}, "ValidationErrorOut": {"error", "message"}}
    for name, required in errors.items():
        assert required <= set(spec["components"]["schemas"][name]["required"])
    throttled = {"/api/v1/register", "/api/v1/register/verify", "/api/v1/password-reset"}
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path == "/healthz" or (path == "/api/v1/session" and method != "post"):
                continue
            wanted = {"413", "422"}
            if path.startswith("/api/v1/session"):
                wanted |= {"401", "429"}
            elif path in throttled:
                wanted |= {"429"}
            elif not path.startswith(("/api/v1/register", "/api/v1/password-reset")):
                wanted |= {"403", "404"}  # every guarded route
            declared = operation["responses"]
            for status in sorted(wanted):
                schema = declared.get(status, {}).get("content", {}).get("application/json", {})
                shape = schema.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
                if shape not in errors:
                    missing.append(f"{method.upper()} {path} {status}")
            if "429" in declared:
                assert "Retry-After" in declared["429"]["headers"]
    assert missing == []
    assert "HTTPValidationError" not in spec["components"]["schemas"]
