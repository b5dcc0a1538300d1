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
