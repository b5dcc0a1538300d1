"""API tokens, self-service: list one's own, create one (its secret shown once), revoke one.

Any signed-in account manages its own tokens; an admin (or the local operator) may revoke
anyone's. Creating or revoking needs a write credential (a session, or a write token), so a
read-only token cannot mint a stronger one. The same domain functions as
`neurodepot user token …` (`access.tokens`), which write each change to the audit log.
"""

from typing import Annotated, Literal

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict, Field

from neurodepot.access import tokens
from neurodepot.access.policy import Principal, PrincipalKind
from neurodepot.access.tokens import TokenInfo
from neurodepot.api.guard import CanList, CanManageOwn, DepotDep
from neurodepot.api.schemas import GUARDED_ERRORS, RowId
from neurodepot.errors import Invalid

router = APIRouter(tags=["tokens"], responses=GUARDED_ERRORS)
NO_ACCOUNT = (
    "the local operator has no account of its own, hence no tokens: make them for an account "
    "with `neurodepot user token create USER`"
)


class NewTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=255, description="What it is for.")]
    scope: Literal["read", "write"] = "read"
    days: Annotated[int, Field(ge=1, le=tokens.MAX_DAYS)] = tokens.DEFAULT_DAYS


class NewTokenOut(BaseModel):
    token: TokenInfo
    secret: str = Field(description="Send as `Authorization: Bearer …`; shown only now.")


def _own_account(principal: Principal) -> str:
    if principal.kind is not PrincipalKind.USER:
        raise Invalid(NO_ACCOUNT)
    return principal.name


@router.get("/tokens", dependencies=[CanList])
def list_tokens(depot: DepotDep, request: Request) -> list[TokenInfo]:
    """The caller's own tokens, revoked and expired ones too; never their secrets."""
    username = _own_account(request.state.principal)
    with depot.reading() as db:
        return tokens.list_tokens(db, username)


@router.post("/tokens", status_code=status.HTTP_201_CREATED, dependencies=[CanManageOwn])
def create_token(body: NewTokenIn, depot: DepotDep, request: Request) -> NewTokenOut:
    """A new token for the caller's own account; its secret is in this answer and never again."""
    username = _own_account(request.state.principal)
    with depot.transaction() as db:
        info, secret = tokens.create_token(db, username, username, body.name, body.scope, body.days)
    return NewTokenOut(token=info, secret=secret)


@router.delete("/tokens/{token_id}", dependencies=[CanManageOwn])
def revoke_token(token_id: RowId, depot: DepotDep, request: Request) -> TokenInfo:
    """Revoke a token: one's own, or (an admin) anyone's; refused from the next request on.

    A token of another account is, to anyone but an admin, a token that does not exist (404).
    """
    principal: Principal = request.state.principal
    anyones = principal.kind is PrincipalKind.OPERATOR or principal.is_admin
    owned_by = None if anyones else principal.name
    with depot.transaction() as db:
        return tokens.revoke_token(db, principal.name, token_id, owned_by)
