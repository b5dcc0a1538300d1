"""`neurodepot user add|approve|disable|list|show|set-role|password|token …`, project access."""

import sys
from typing import Annotated

import typer

from neurodepot.access import accounts, tokens
from neurodepot.cli.output import JsonFlag, console, done, print_fields, print_json, show
from neurodepot.cli.state import cli_actor, state
from neurodepot.errors import Invalid

app = typer.Typer(help="Accounts, their roles and API tokens (for admins).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens for scripts.", no_args_is_help=True)
app.add_typer(token_app, name="token")

UserArg = Annotated[str, typer.Argument(help="Username.")]


def _read_password(from_stdin: bool) -> str | None:
    if not from_stdin:
        return None
    line = sys.stdin.readline()
    if not line:
        raise Invalid("--password-stdin was given but nothing came on standard input")
    return line.rstrip("\n")


@app.command()
def add(
    ctx: typer.Context,
    username: UserArg,
    email: Annotated[str, typer.Option(help="Email address.")],
    name: Annotated[str, typer.Option(help="Full name.")] = "",
    kind: Annotated[str, typer.Option(help="member (of the centre) or external.")] = "member",
    affiliation: Annotated[str, typer.Option(help="Institution.")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read a password from standard input.")
    ] = False,
    approve: Annotated[bool, typer.Option("--approve", help="Make it active at once.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Add an account (pending until approved)."""
    password = _read_password(password_stdin)
    with state(ctx).open() as depot, depot.transaction() as db:
        info = accounts.add_user(
            db, cli_actor(), username, email, name, kind, password, affiliation=affiliation
        )
        if approve:
            info = accounts.set_status(db, cli_actor(), username, "active")
    done(as_json, info, f"Account {username} added ({info.kind}, {info.status})")


@app.command()
def approve(ctx: typer.Context, username: UserArg, as_json: JsonFlag = False) -> None:
    """Approve a pending account (or enable a disabled one)."""
    with state(ctx).open() as depot, depot.transaction() as db:
        info = accounts.set_status(db, cli_actor(), username, "active")
    done(as_json, info, f"Account {username} is active")


@app.command()
def disable(ctx: typer.Context, username: UserArg, as_json: JsonFlag = False) -> None:
    """Disable an account: it can no longer sign in, and its tokens stop working."""
    with state(ctx).open() as depot, depot.transaction() as db:
        info = accounts.set_status(db, cli_actor(), username, "disabled")
    done(as_json, info, f"Account {username} is disabled")


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="pending, active or disabled.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List accounts."""
    with state(ctx).open() as depot, depot.reading() as db:
        found = accounts.list_users(db, status)
    show(
        as_json,
        found,
        "Accounts",
        ("username", "name", "email", "kind", "status", "site role", "projects"),
        [
            (
                u.username,
                u.display_name,
                u.email,
                u.kind,
                u.status,
                "admin" if u.is_admin else "steward" if u.is_steward else "",
                ", ".join(f"{p} ({r})" for p, r in u.roles),
            )
            for u in found
        ],
    )


@app.command("show")
def show_(ctx: typer.Context, username: UserArg, as_json: JsonFlag = False) -> None:
    """Show one account."""
    with state(ctx).open() as depot, depot.reading() as db:
        info = accounts.get_user(db, username)
    if as_json:
        print_json(info)
    else:
        print_fields(f"Account {username}", info.__dict__)


@app.command("set-role")
def set_role(
    ctx: typer.Context,
    username: UserArg,
    role: Annotated[
        str,
        typer.Argument(
            help="With --project: owner, member, collaborator or none; else admin, steward or none."
        ),
    ],
    project: Annotated[str | None, typer.Option(help="The project of a project role.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Set a site role, or (with --project) a role in a project."""
    with state(ctx).open() as depot, depot.transaction() as db:
        if project is None:
            info = accounts.set_site_role(db, cli_actor(), username, role)
        else:
            info = accounts.set_project_role(db, cli_actor(), username, project, role)
    where = f" in {project}" if project else ""
    done(as_json, info, f"{username}: {role}{where}")


@app.command()
def password(ctx: typer.Context, username: UserArg) -> None:
    """Set an account's password, read from standard input."""
    secret = _read_password(True)
    assert secret is not None
    with state(ctx).open() as depot, depot.transaction() as db:
        accounts.set_password(db, cli_actor(), username, secret)
    console.print(f"Password of {username} set")


@app.command("second-factor")
def second_factor(
    ctx: typer.Context,
    username: UserArg,
    disable: Annotated[bool, typer.Option("--disable", help="Turn it off.")] = False,
) -> None:
    """Turn on a TOTP second factor (prints the authenticator address once), or off."""
    from neurodepot.access.totp import provisioning_uri

    with state(ctx).open() as depot, depot.transaction() as db:
        secret = accounts.set_second_factor(db, cli_actor(), username, not disable)
    if secret is None:
        console.print(f"Second factor of {username} turned off")
        return
    console.print(f"Second factor of {username} on; add this to an authenticator app (once):")
    typer.echo(provisioning_uri(secret, username))


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    username: UserArg,
    name: Annotated[str, typer.Option(help="What the token is for.")],
    scope: Annotated[str, typer.Option(help="read or write.")] = "read",
    days: Annotated[int, typer.Option(help="Days until it expires.")] = tokens.DEFAULT_DAYS,
    as_json: JsonFlag = False,
) -> None:
    """Create an API token; its secret is printed now and never again."""
    with state(ctx).open() as depot, depot.transaction() as db:
        info, secret = tokens.create_token(db, cli_actor(), username, name, scope, days)
    if as_json:
        print_json({"token": info, "secret": secret})
    else:
        console.print(
            f"Token {info.id} ({scope}) for {username}, expires {info.expires_at:%Y-%m-%d}"
        )
        console.print("Its secret (shown only now; send it as `Authorization: Bearer …`):")
        typer.echo(secret)


@token_app.command("list")
def token_list(ctx: typer.Context, username: UserArg, as_json: JsonFlag = False) -> None:
    """List an account's tokens (never their secrets)."""
    with state(ctx).open() as depot, depot.reading() as db:
        found = tokens.list_tokens(db, username)
    show(
        as_json,
        found,
        f"Tokens of {username}",
        ("id", "name", "starts with", "scope", "expires", "last used", "revoked"),
        [
            (t.id, t.name, t.prefix, t.scope, t.expires_at, t.last_used_at, t.revoked_at)
            for t in found
        ],
    )


@token_app.command("revoke")
def token_revoke(ctx: typer.Context, token_id: int, as_json: JsonFlag = False) -> None:
    """Revoke a token; it is refused from the next request on."""
    with state(ctx).open() as depot, depot.transaction() as db:
        info = tokens.revoke_token(db, cli_actor(), token_id)
    done(as_json, info, f"Token {token_id} of {info.username} revoked")


def project_access(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project label.")],
    access: Annotated[str, typer.Argument(help="private, internal or public.")],
    as_json: JsonFlag = False,
) -> None:
    """Set a project's sharing level now; public is approved by you, as steward.

    Kept for scripts: `neurodepot share PROJECT LEVEL` is the verb, with a steward's pending
    approval for public and the history.
    """
    actor = cli_actor()
    with state(ctx).open() as depot, depot.transaction() as db:
        accounts.set_project_access(db, actor, project, access, approved_by=actor)
    done(as_json, {"project": project, "access": access}, f"{project} is {access}")
