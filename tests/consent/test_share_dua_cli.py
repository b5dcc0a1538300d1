"""`neurodepot share` and `neurodepot dua …` as the operator runs them (in process)."""

from pathlib import Path

import pytest

from neurodepot.access import accounts
from neurodepot.catalog.hierarchy import create_project
from neurodepot.cli.state import cli_actor
from neurodepot.consent import dua
from neurodepot.depot.folder import Depot
from tests.consent.conftest import Ran, RunCli

TEXT = "Use the data for research only.\nNever try to re-identify anyone. [red]not markup[/red]\n"


Result = Ran
Run = RunCli


@pytest.fixture
def nd(depot: Depot, run_cli: RunCli) -> Run:
    """`neurodepot …` on the test's depot, holding project P."""
    with depot.transaction() as db:
        create_project(db, "P")
    return run_cli


def one_line_error(result: Result, code: int, *fragments: str) -> None:
    assert result.code == code, (result.code, result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err + result.out
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def said(result: Result) -> str:
    assert result.code == 0, (result.code, result.err)
    return " ".join(result.out.split())


class TestShare:
    def test_public_waits_until_approved_here_as_steward(self, nd: Run) -> None:
        assert "P is private" in said(nd("share", "P"))
        asked = nd("share", "P", "public", "--reason", "for the consortium", "--json").json()
        assert (asked["status"], asked["reason"]) == ("pending", "for the consortium")
        status = nd("share", "P", "--json").json()
        assert status["level"] == "private" and status["pending"]["id"] == asked["id"]
        shown = said(nd("share", "P"))
        assert "P is private" in shown and "Waiting for a steward: public" in shown
        one_line_error(nd("share", "P", "--approve"), 2, "needs a reason")
        approved = nd("share", "P", "--approve", "--reason", "forms checked", "--json").json()
        assert (approved["status"], approved["decided_by"]) == ("applied", cli_actor())
        status = nd("share", "P", "--json").json()
        assert status["level"] == "public" and status["pending"] is None
        assert [r["status"] for r in status["history"]] == ["applied"]
        assert "P is now private" in said(nd("share", "P", "private"))

    def test_a_rejected_request_leaves_the_level(self, nd: Run) -> None:
        assert "until a data steward approves" in said(nd("share", "P", "public"))
        rejected = said(nd("share", "P", "--reject", "--reason", "no external consent"))
        assert "rejected: no external consent" in rejected
        assert nd("share", "P", "--json").json()["level"] == "private"
        one_line_error(nd("share", "P", "--reject", "--reason", "x"), 4, "no pending")
        nd("share", "P", "public")
        hostile = said(nd("share", "P", "--reject", "--reason", "[/] [bold]no[/bold]"))
        assert "[/] [bold]no[/bold]" in hostile
        assert "[/]" in said(nd("share", "P"))  # the history shows reasons as written

    def test_approving_in_one_step_and_project_access_record_the_operator(self, nd: Run) -> None:
        shown = said(nd("share", "P", "public", "--approve", "--reason", "steward here"))
        assert f"P is now public, approved by {cli_actor()}" in shown
        assert "P is internal" in said(nd("project", "access", "P", "internal"))
        assert nd("project", "access", "P", "public").code == 0
        status = nd("share", "P", "--json").json()
        assert status["level"] == "public"
        latest = status["history"][0]
        assert (latest["status"], latest["decided_by"]) == ("applied", cli_actor())
        assert latest["decision_reason"]

    def test_bad_requests_are_one_line_with_the_right_exit_code(self, nd: Run) -> None:
        one_line_error(nd("share", "P", "everyone"), 2, "private, internal, public")
        one_line_error(nd("share", "Nope", "internal"), 3, "Nope")
        one_line_error(nd("share", "Nope"), 3, "Nope")
        one_line_error(nd("share", "P", "--approve", "--reject", "--reason", "x"), 2, "not both")
        one_line_error(nd("share", "P", "internal", "--approve", "--reason", "x"), 2, "internal")
        one_line_error(nd("share", "P", "public", "--reject", "--reason", "x"), 2, "--reject")
        one_line_error(nd("share", "P", "--reason", "why"), 2, "--reason")
        one_line_error(nd("share", "P", "--approve", "--reason", "x"), 4, "no pending")
        one_line_error(nd("project", "access", "P", "everyone"), 2, "private, internal")
        assert nd("share", "P", "--json").json()["history"] == []


class TestDua:
    def test_publish_from_a_file_and_stdin_then_list_and_show(
        self, nd: Run, tmp_path: Path
    ) -> None:
        text = tmp_path / "dua.txt"
        text.write_bytes(b"\xef\xbb\xbf" + TEXT.encode())  # a BOM is fine
        first = nd("dua", "publish", "--title", "Site DUA", str(text), "--json").json()
        assert (first["scope"], first["version"], first["current"]) == ("site", 1, True)
        assert first["body"] == TEXT.strip()
        second = said(nd("dua", "publish", "--title", "Site DUA", "-", stdin=b"Version two."))
        assert "the site DUA 'Site DUA' version 2" in second
        unicode = "Cite the project. Ünïcode is fine.".encode()
        project = nd(
            "dua", "publish", "--title", "P terms", "-", "--project", "P", "--json", stdin=unicode
        ).json()
        assert (project["scope"], project["version"]) == ("P", 1)
        listed = nd("dua", "list", "--json").json()
        assert [(d["version"], d["current"]) for d in listed] == [(2, True), (1, False)]
        assert [d["scope"] for d in nd("dua", "list", "--project", "P", "--json").json()] == ["P"]
        table = said(nd("dua", "list"))
        assert "Site DUA" in table and "yes" in table
        shown = nd("dua", "show", str(first["id"]))
        assert shown.code == 0 and "[red]not markup[/red]" in shown.out
        assert "superseded" in shown.out
        assert nd("dua", "show", str(first["id"]), "--json").json()["current"] is False

    def test_acceptances_are_listed_and_filtered(self, nd: Run, depot: Depot) -> None:
        with depot.transaction() as db:
            for name in ("mia", "eve"):
                accounts.add_user(db, "test", name, f"{name}@example.org")
                accounts.set_status(db, "test", name, "active")
            site = dua.publish(db, "test", "Site DUA", TEXT)
            terms = dua.publish(db, "test", "P terms", TEXT, "P")
            dua.accept(db, "mia", site.id)
            dua.accept(db, "eve", site.id)
            dua.accept(db, "mia", terms.id)
        every = nd("dua", "acceptances", "--json").json()
        assert [(a["username"], a["scope"]) for a in every] == [
            ("mia", "site"), ("eve", "site"), ("mia", "P")
        ]  # fmt: skip
        of_p = nd("dua", "acceptances", "--project", "P", "--json").json()
        assert [a["dua_id"] for a in of_p] == [terms.id]
        of_eve = nd("dua", "acceptances", "--user", "eve", "--json").json()
        assert [a["username"] for a in of_eve] == ["eve"]
        assert "mia" in said(nd("dua", "acceptances"))
        one_line_error(nd("dua", "acceptances", "--user", "nobody"), 3, "nobody")
        one_line_error(nd("dua", "acceptances", "--project", "Nope"), 3, "Nope")

    def test_bad_texts_and_ids_are_one_line_and_publish_nothing(
        self, nd: Run, tmp_path: Path
    ) -> None:
        latin1 = tmp_path / "latin1.txt"
        latin1.write_bytes("Données personnelles".encode("latin-1"))
        one_line_error(nd("dua", "publish", "--title", "T", str(latin1)), 2, "not UTF-8")
        big = tmp_path / "big.txt"
        big.write_bytes(b"x" * (dua.BODY_LIMIT * 4 + 1))
        one_line_error(nd("dua", "publish", "--title", "T", str(big)), 2, "too large")
        long_text = tmp_path / "long.txt"
        long_text.write_text("y" * (dua.BODY_LIMIT + 1))
        one_line_error(nd("dua", "publish", "--title", "T", str(long_text)), 2, "a DUA needs")
        empty = tmp_path / "empty.txt"
        empty.write_text("  \n")
        one_line_error(nd("dua", "publish", "--title", "T", str(empty)), 2, "a DUA needs")
        one_line_error(nd("dua", "publish", "--title", "T", str(tmp_path / "no.txt")), 3, "no.txt")
        one_line_error(nd("dua", "publish", "--title", "a\nb", "-", stdin=b"ok"), 2, "one line")
        one_line_error(
            nd("dua", "publish", "--title", "T", "-", "--project", "Nope", stdin=b"ok"), 3, "Nope"
        )
        one_line_error(nd("dua", "show", "99"), 3, "99")
        one_line_error(nd("dua", "list", "--project", "Nope"), 3, "Nope")
        assert nd("dua", "list", "--json").json() == []
