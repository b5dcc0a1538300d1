"""The policy as a pure function: every caller, action, project access level and role."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neurodepot.access.policy import (
    Action,
    Principal,
    PrincipalKind,
    ProjectFacts,
    SharingFacts,
    decide,
    subject_visible,
)
from neurodepot.catalog.target import Target

PROJECT, SCAN = Target("P"), Target("P", "S", "E", "1")
ACCESS = ("private", "internal", "public")
WRITES = (Action.CREATE, Action.UPDATE, Action.DELETE, Action.ADMINISTER)
MEMBER = Principal.user(1, "mia", "member")
EXTERNAL = Principal.user(2, "eve", "external")
ADMIN = Principal.user(3, "ada", "member", is_admin=True)
STEWARD = Principal.user(4, "sam", "member", is_steward=True)
READ_ONLY = Principal.user(5, "rob", "member", scope="read")


SHARED = (Action.BROWSE, Action.DOWNLOAD)


def facts(
    access: str = "private", role: str | None = None, to_accept: tuple[str, ...] | None = ()
) -> ProjectFacts:
    return ProjectFacts(access, role, SharingFacts(to_accept))


@pytest.mark.parametrize(
    ("action", "target"), list(itertools.product(Action, (None, PROJECT, SCAN)))
)
def test_the_anonymous_caller_is_denied_everything(action: Action, target: Target | None) -> None:
    for access in ACCESS:
        decision = decide(Principal.anonymous(), action, target, facts(access))
        assert not decision.allowed and decision.reason == "sign-in is required"


@pytest.mark.parametrize("action", [a for a in Action if a is not Action.STEWARD])
def test_the_operator_and_admins_may_do_everything(action: Action) -> None:
    for who, target in itertools.product((Principal.operator(), ADMIN), (None, PROJECT, SCAN)):
        assert decide(who, action, target, facts()).allowed


def test_only_stewards_make_a_stewards_decision_not_admins_nor_owners() -> None:
    owner = facts(role="owner")
    for target in (None, PROJECT):
        assert decide(STEWARD, Action.STEWARD, target, facts()).allowed
        assert decide(Principal.operator(), Action.STEWARD, target, facts()).allowed
        for who in (ADMIN, MEMBER, EXTERNAL):
            decision = decide(who, Action.STEWARD, target, owner)
            assert not decision.allowed and "steward" in decision.reason
    read_only = Principal.user(4, "sam", "member", is_steward=True, scope="read")
    assert not decide(read_only, Action.STEWARD, PROJECT, facts()).allowed


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("owner", set(Action) - {Action.STEWARD}),
        (
            "member",
            {Action.READ, Action.LIST, *SHARED, Action.CREATE, Action.UPDATE, Action.DELETE},
        ),
        ("collaborator", {Action.READ, Action.LIST, *SHARED}),
    ],
)
def test_project_roles_allow_what_they_name_whatever_the_access(
    role: str, allowed: set[Action]
) -> None:
    for access, action in itertools.product(ACCESS, Action):
        got = decide(MEMBER, action, SCAN, facts(access, role)).allowed
        assert got == (action in allowed), (access, action)


def test_only_an_owner_administers_the_project() -> None:
    assert decide(MEMBER, Action.ADMINISTER, PROJECT, facts(role="owner")).allowed
    assert not decide(MEMBER, Action.ADMINISTER, PROJECT, facts(role="member")).allowed
    assert decide(MEMBER, Action.DELETE, SCAN, facts(role="member")).allowed


@pytest.mark.parametrize("access", ACCESS)
def test_nobody_beyond_the_named_people_reads_the_identifiable_originals(access: str) -> None:
    for who, action in itertools.product((MEMBER, EXTERNAL, STEWARD), (Action.READ, Action.LIST)):
        decision = decide(who, action, SCAN, facts(access))
        assert not decision.allowed
        assert "de-identified" in decision.reason or "no access" in decision.reason


def test_the_access_level_says_who_browses_the_shared_view() -> None:
    def browses(who: Principal, access: str) -> bool:
        return decide(who, Action.BROWSE, PROJECT, facts(access)).allowed

    assert [browses(MEMBER, a) for a in ACCESS] == [False, True, True]
    assert [browses(EXTERNAL, a) for a in ACCESS] == [False, False, True]
    for access, action in itertools.product(ACCESS, WRITES):
        assert not decide(MEMBER, action, SCAN, facts(access)).allowed


def test_downloading_shared_data_needs_every_current_dua_accepted() -> None:
    assert decide(MEMBER, Action.DOWNLOAD, PROJECT, facts("internal")).allowed
    refused = decide(MEMBER, Action.DOWNLOAD, PROJECT, facts("internal", None, ("site DUA v2",)))
    assert not refused.allowed and "site DUA v2" in refused.reason
    assert not decide(MEMBER, Action.DOWNLOAD, PROJECT, facts("internal", None, None)).allowed
    assert not decide(EXTERNAL, Action.DOWNLOAD, PROJECT, facts("internal")).allowed
    # The named people download their own project without a DUA.
    assert decide(
        EXTERNAL, Action.DOWNLOAD, PROJECT, facts("private", "collaborator", None)
    ).allowed


def test_which_consent_makes_a_subject_visible_beyond_the_named_people() -> None:
    seen = {
        (account, access): [c for c in ("none", "internal", "open", "withdrawn")
                            if subject_visible(account, access, c)]
        for account in ("member", "external")
        for access in ACCESS
    }  # fmt: skip
    assert seen == {
        ("member", "private"): [],
        ("member", "internal"): ["internal", "open"],
        ("member", "public"): ["internal", "open"],
        ("external", "private"): [],
        ("external", "internal"): [],
        ("external", "public"): ["open"],
    }


def test_a_missing_project_is_denied_like_a_hidden_one() -> None:
    missing = decide(MEMBER, Action.READ, SCAN, None)
    hidden = decide(MEMBER, Action.READ, SCAN, facts("private"))
    assert missing == hidden and not missing.allowed


def test_a_read_only_token_only_reads() -> None:
    assert decide(READ_ONLY, Action.READ, SCAN, facts(role="owner")).allowed
    for action in WRITES:
        assert not decide(READ_ONLY, action, SCAN, facts(role="owner")).allowed
    assert not decide(
        Principal.user(3, "ada", "member", is_admin=True, scope="read"), Action.CREATE, None
    ).allowed


def test_depot_wide_centre_members_create_and_everyone_signed_in_lists() -> None:
    assert decide(MEMBER, Action.CREATE, None).allowed
    assert not decide(EXTERNAL, Action.CREATE, None).allowed
    for who in (MEMBER, EXTERNAL, STEWARD):
        assert decide(who, Action.LIST, None).allowed
        assert not decide(who, Action.READ, None).allowed
        assert not decide(who, Action.ADMINISTER, None).allowed


principals = st.builds(
    Principal,
    kind=st.sampled_from(list(PrincipalKind)),
    name=st.text(max_size=5),
    user_id=st.one_of(st.none(), st.integers(1, 9)),
    account=st.sampled_from(["member", "external", ""]),
    is_admin=st.booleans(),
    is_steward=st.booleans(),
    scope=st.sampled_from(["read", "write"]),
)
project_facts = st.one_of(
    st.none(),
    st.builds(
        ProjectFacts,
        access=st.sampled_from(ACCESS),
        role=st.sampled_from([None, "owner", "member", "collaborator"]),
        sharing=st.builds(
            SharingFacts, st.one_of(st.none(), st.just(()), st.just(("site DUA v1",)))
        ),
    ),
)


@given(
    principals, st.sampled_from(list(Action)), st.sampled_from([None, PROJECT, SCAN]), project_facts
)
def test_properties_of_every_decision(
    who: Principal, action: Action, target: Target | None, project: ProjectFacts | None
) -> None:
    decision = decide(who, action, target, project)
    assert decision.reason
    if who.kind is PrincipalKind.ANONYMOUS:
        assert not decision.allowed
    if (
        who.kind is PrincipalKind.USER
        and who.scope == "read"
        and action not in (Action.READ, Action.LIST, *SHARED)
    ):
        assert not decision.allowed
    stewarding = action is Action.STEWARD and who.is_steward  # a site role: no project needed
    if decision.allowed and who.kind is PrincipalKind.USER and not who.is_admin and target:
        if stewarding:
            return
        assert project is not None
        if project.role is None:  # beyond the named people: de-identified shared data only
            assert action in SHARED
            assert action is Action.BROWSE or project.sharing.duas_to_accept == ()
            assert project.access != "private"
            assert who.account == "member" or project.access == "public"
