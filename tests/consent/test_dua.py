"""`consent.dua`: versioned agreements per scope; acceptances must be of the current version."""

import threading

import pytest
from sqlalchemy import func, select

from neurodepot.access import accounts
from neurodepot.access.models import AuditEvent
from neurodepot.catalog.hierarchy import create_project, find_project
from neurodepot.consent import dua
from neurodepot.consent.models import DuaAcceptance
from neurodepot.depot.folder import Depot
from neurodepot.errors import Conflict, Invalid, NotFound

TEXT = "Use the data for research only. Do not try to re-identify anyone."


@pytest.fixture
def site(depot: Depot) -> Depot:
    """Projects P and Q, and the accounts `mia` and `eve`."""
    with depot.transaction() as db:
        create_project(db, "P")
        create_project(db, "Q")
        for name in ("mia", "eve"):
            accounts.add_user(db, "test", name, f"{name}@example.org")
            accounts.set_status(db, "test", name, "active")
    return depot


def user_id(depot: Depot, name: str) -> int:
    with depot.reading() as db:
        return accounts.find_user(db, name).id


def project_id(depot: Depot, label: str) -> int:
    with depot.reading() as db:
        return find_project(db, label).id


def to_accept(depot: Depot, name: str, project: str = "P") -> tuple[str, ...]:
    with depot.reading() as db:
        return dua.unaccepted(db, user_id(depot, name), find_project(db, project).id)


def test_versions_count_up_per_scope(site: Depot) -> None:
    with site.transaction() as db:
        made = [
            dua.publish(db, "ada", "Site DUA", TEXT),
            dua.publish(db, "olly", "P's terms", TEXT, "P"),
            dua.publish(db, "ada", "Site DUA", TEXT + " Cite us."),
            dua.publish(db, "quinn", "Q's terms", TEXT, "Q"),
            dua.publish(db, "olly", "P's terms", TEXT, "P"),
        ]
    assert [(d.scope, d.version) for d in made] == [
        ("site", 1), ("P", 1), ("site", 2), ("Q", 1), ("P", 2)
    ]  # fmt: skip
    with site.reading() as db:
        assert [(d.version, d.current) for d in dua.list_duas(db)] == [(2, True), (1, False)]
        assert [(d.version, d.current) for d in dua.list_duas(db, "P")] == [(2, True), (1, False)]
        current = dua.current_duas(db, find_project(db, "P").id)
        assert [(d.scope, d.version) for d in current] == [("site", 2), ("P", 2)]
        assert dua.get_dua(db, made[0].id).current is False
        assert dua.get_dua(db, made[2].id).body == TEXT + " Cite us."
    assert made[1].name == f"project P's DUA \"P's terms\" version 1 (id {made[1].id})"
    with site.reading() as db:
        published = db.scalars(
            select(AuditEvent.target).where(AuditEvent.action == "dua_published")
        ).all()
    assert published == ["dua:site", "dua:project:P", "dua:site", "dua:project:Q", "dua:project:P"]


def test_without_a_site_dua_nothing_shared_can_be_downloaded(site: Depot) -> None:
    assert to_accept(site, "mia") == (dua.NO_SITE_DUA,)
    with site.transaction() as db:
        dua.publish(db, "olly", "P's terms", TEXT, "P")
    assert to_accept(site, "mia") == (dua.NO_SITE_DUA,)
    assert "neurodepot dua publish" in dua.NO_SITE_DUA


def test_a_new_version_must_be_accepted_again_and_is_named(site: Depot) -> None:
    with site.transaction() as db:
        first = dua.publish(db, "ada", "Site DUA", TEXT)
        project = dua.publish(db, "olly", "P's terms", TEXT, "P")
    assert to_accept(site, "mia") == (first.name, project.name)
    assert to_accept(site, "mia", "Q") == (first.name,)  # Q has no DUA of its own
    with site.transaction() as db:
        accepted = dua.accept(db, "mia", first.id)
        dua.accept(db, "mia", project.id)
    assert (accepted.username, accepted.scope, accepted.version) == ("mia", "site", 1)
    assert to_accept(site, "mia") == () and to_accept(site, "mia", "Q") == ()
    assert to_accept(site, "eve") == (first.name, project.name)  # acceptances are per person
    with site.transaction() as db:
        second = dua.publish(db, "ada", "Site DUA", TEXT + " Now with citations.")
    assert to_accept(site, "mia") == (second.name,)
    assert "version 2" in second.name and f"id {second.id}" in second.name


def test_a_superseded_version_cannot_be_accepted_and_the_current_one_is_named(
    site: Depot,
) -> None:
    with site.transaction() as db:
        old = dua.publish(db, "ada", "Site DUA", TEXT)
        new = dua.publish(db, "ada", "Site DUA", TEXT + " v2")
        old_p = dua.publish(db, "olly", "P's terms", TEXT, "P")
        new_p = dua.publish(db, "olly", "P's terms", TEXT + " v2", "P")
    with pytest.raises(Conflict, match="superseded") as refused, site.transaction() as db:
        dua.accept(db, "mia", old.id)
    assert new.name in refused.value.message
    with pytest.raises(Conflict) as refused, site.transaction() as db:
        dua.accept(db, "mia", old_p.id)
    assert new_p.name in refused.value.message
    with site.reading() as db:
        assert dua.acceptances(db) == []


def test_unknown_duas_and_accounts_are_not_found(site: Depot) -> None:
    with site.transaction() as db:
        made = dua.publish(db, "ada", "Site DUA", TEXT)
    with pytest.raises(NotFound, match="no DUA with id 999"), site.transaction() as db:
        dua.accept(db, "mia", 999)
    with pytest.raises(NotFound, match="nobody"), site.transaction() as db:
        dua.accept(db, "nobody", made.id)
    with pytest.raises(NotFound), site.reading() as db:
        dua.get_dua(db, 999)
    with pytest.raises(NotFound, match="Nope"), site.transaction() as db:
        dua.publish(db, "ada", "Terms", TEXT, "Nope")
    with pytest.raises(NotFound, match="nobody"), site.reading() as db:
        dua.acceptances(db, username="nobody")
    with pytest.raises(NotFound, match="Nope"), site.reading() as db:
        dua.list_duas(db, "Nope")


@pytest.mark.parametrize(
    ("title", "body"),
    [
        ("", TEXT),
        ("   ", TEXT),
        ("Two\nlines", TEXT),
        ("Tab\there", TEXT),
        ("t" * 256, TEXT),
        ("Site DUA", ""),
        ("Site DUA", " \n "),
        ("Site DUA", "x" * (dua.BODY_LIMIT + 1)),
        ("Site DUA", "nul\x00byte"),
    ],
)
def test_a_malformed_dua_is_refused_and_nothing_published(
    site: Depot, title: str, body: str
) -> None:
    with pytest.raises(Invalid, match="a DUA needs"), site.transaction() as db:
        dua.publish(db, "ada", title, body)
    with site.reading() as db:
        assert dua.list_duas(db) == []


def test_acceptances_are_listed_by_project_and_account_and_flag_old_versions(
    site: Depot,
) -> None:
    with site.transaction() as db:
        first = dua.publish(db, "ada", "Site DUA", TEXT)
        terms = dua.publish(db, "olly", "P's terms", TEXT, "P")
        dua.accept(db, "mia", first.id)
        dua.accept(db, "eve", first.id)
        dua.accept(db, "mia", terms.id)
        dua.publish(db, "ada", "Site DUA", TEXT + " v2")
    with site.reading() as db:
        every = dua.acceptances(db)
        of_p = dua.acceptances(db, "P")
        of_eve = dua.acceptances(db, username="eve")
    assert [(a.username, a.scope, a.version, a.current) for a in every] == [
        ("mia", "site", 1, False),
        ("eve", "site", 1, False),
        ("mia", "P", 1, True),
    ]
    assert [(a.username, a.dua_id) for a in of_p] == [("mia", terms.id)]
    assert [(a.username, a.dua_id) for a in of_eve] == [("eve", first.id)]
    assert all(a.accepted_at is not None for a in every)


def test_accepting_twice_records_one_acceptance_and_one_audit_event(site: Depot) -> None:
    with site.transaction() as db:
        made = dua.publish(db, "ada", "Site DUA", TEXT)
        first = dua.accept(db, "mia", made.id)
    with site.transaction() as db:
        again = dua.accept(db, "mia", made.id)
    assert again.accepted_at == first.accepted_at
    assert accepted_rows(site) == (1, 1)


def test_accepting_at_the_same_time_from_two_sessions_is_safe(site: Depot) -> None:
    with site.transaction() as db:
        made = dua.publish(db, "ada", "Site DUA", TEXT)
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def accept() -> None:
        try:
            start.wait(timeout=30)
            with site.transaction() as db:
                dua.accept(db, "mia", made.id)
        except BaseException as error:  # reported by the assertion below
            failures.append(error)

    threads = [threading.Thread(target=accept) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert accepted_rows(site) == (1, 1)
    assert to_accept(site, "mia") == ()


def accepted_rows(depot: Depot) -> tuple[int, int]:
    """(acceptances stored, `dua_accepted` audit events)."""
    with depot.reading() as db:
        rows = db.scalar(select(func.count()).select_from(DuaAcceptance))
        audited = db.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "dua_accepted")
        )
    return int(rows or 0), int(audited or 0)
