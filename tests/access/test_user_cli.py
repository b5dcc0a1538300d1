"""`neurodepot user …` and `project access` as an admin runs them, and a token used over HTTP."""

import json

import httpx
import pytest

from neurodepot.api.app import create_app
from neurodepot.catalog.hierarchy import create_project
from neurodepot.depot.folder import Depot
from tests.cli.conftest import Run
from tests.cli.test_end_to_end import assert_one_line_error

pytestmark = pytest.mark.anyio


async def test_an_account_is_added_approved_given_a_role_and_a_token_that_works(
    depot: Depot, cli: Run
) -> None:
    with depot.transaction() as db:
        create_project(db, "P")
    added = cli("user", "add", "mia", "--email", "mia@example.org", "--name", "Mia K", "--json")
    assert added.code == 0, added.err
    assert json.loads(added.out)["status"] == "pending"
    assert cli("user", "approve", "mia").code == 0
    assert cli("user", "set-role", "mia", "collaborator", "--project", "P").code == 0
    made = json.loads(cli("user", "token", "create", "mia", "--name", "laptop", "--json").out)
    secret = made["secret"]
    assert secret.startswith("ndp_") and made["token"]["scope"] == "read"
    listed = json.loads(cli("user", "token", "list", "mia", "--json").out)
    assert [t["prefix"] for t in listed] == [secret[:10]]
    assert secret not in cli("user", "token", "list", "mia").out

    transport = httpx.ASGITransport(app=create_app(depot), client=("192.0.2.9", 50000))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {secret}"},
    ) as client:
        assert (await client.get("/api/v1/projects/P")).status_code == 200
        assert (
            await client.post("/api/v1/projects/P/subjects", json={"label": "s"})
        ).status_code == 403
        assert cli("user", "token", "revoke", str(made["token"]["id"])).code == 0
        refused = await client.get("/api/v1/projects/P")
        assert refused.status_code == 403
        assert "token is not valid" in refused.json()["message"]
        assert cli("user", "disable", "mia").code == 0
    users = json.loads(cli("user", "list", "--json").out)
    assert [(u["username"], u["status"], u["roles"]) for u in users] == [
        ("mia", "disabled", [["P", "collaborator"]])
    ]


def test_admin_commands_refuse_bad_input_in_one_line(depot: Depot, cli: Run) -> None:
    with depot.transaction() as db:
        create_project(db, "P")
    assert_one_line_error(cli("user", "add", "Bad Name", "--email", "x@example.org"), 2, "username")
    assert_one_line_error(cli("user", "approve", "nobody"), 3, "no account")
    assert cli("user", "add", "mia", "--email", "mia@example.org").code == 0
    assert_one_line_error(cli("user", "add", "mia", "--email", "m2@example.org"), 4, "already")
    assert_one_line_error(cli("user", "set-role", "mia", "root"), 2, "site role")
    assert_one_line_error(cli("user", "set-role", "mia", "boss", "--project", "P"), 2, "role")
    assert_one_line_error(cli("project", "access", "P", "everyone"), 2, "private, internal")
    assert_one_line_error(
        cli("user", "token", "create", "mia", "--name", "t", "--scope", "all"), 2, "scope"
    )
    weak = cli("user", "add", "bob", "--email", "bob@example.org", "--password-stdin")
    assert weak.code == 2  # nothing on stdin
    assert cli("project", "access", "P", "internal").code == 0
