"""`neurodepot dua publish|list|show|acceptances`: the Data Usage Agreements and who accepted them.

The CLI is the local operator, who publishes the site's DUA and any project's; users accept
them themselves, through the API (`POST /api/v1/duas/{id}/accept`), since an acceptance is a
person's own word. Domain work lives in `neurodepot.consent.dua`.
"""

import sys
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.markup import escape

from neurodepot.cli.output import JsonFlag, console, done, print_fields, print_json, show
from neurodepot.cli.state import cli_actor, state
from neurodepot.consent import dua
from neurodepot.errors import Invalid, NotFound

app = typer.Typer(
    help="Data Usage Agreements: publish versions, list them, see who accepted.",
    no_args_is_help=True,
)

ProjectOption = Annotated[
    str | None, typer.Option("--project", help="The project's DUA (default: the site's).")
]
# A DUA's text is at most BODY_LIMIT characters, each at most 4 bytes in UTF-8.
BYTE_LIMIT = dua.BODY_LIMIT * 4


def read_text(source: str) -> str:
    """The UTF-8 text of file `source` (`-`: standard input), refused when too large."""
    if source == "-":
        return _decode(sys.stdin.buffer, "standard input")
    path = Path(source)
    if not path.is_file():
        raise NotFound(f"there is no file {source!r} to read the DUA's text from")
    with path.open("rb") as stream:
        return _decode(stream, source)


def _decode(stream: BinaryIO, name: str) -> str:
    raw = stream.read(BYTE_LIMIT + 1)
    if len(raw) > BYTE_LIMIT:
        raise Invalid(f"{name} is too large for a DUA: at most {dua.BODY_LIMIT} characters")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise Invalid(
            f"{name} is not UTF-8 text (byte {error.start}): save it as UTF-8 and try again"
        ) from None


@app.command("publish")
def publish(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="A UTF-8 text file with the DUA, or - (stdin).")],
    title: Annotated[str, typer.Option(help="The DUA's title (one line).")],
    project: ProjectOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Publish the next version: everyone must accept it again before downloading shared data."""
    body = read_text(source)
    with state(ctx).open() as depot, depot.transaction() as db:
        info = dua.publish(db, cli_actor(), title, body, project)
    done(as_json, info, f"Published {info.name}")


@app.command("list")
def list_versions(
    ctx: typer.Context, project: ProjectOption = None, as_json: JsonFlag = False
) -> None:
    """Every version of the site's (or a project's) DUA, newest first."""
    with state(ctx).open() as depot, depot.reading() as db:
        found = dua.list_duas(db, project)
    show(
        as_json,
        found,
        f"DUA versions of {project or 'the site'}",
        ("id", "version", "title", "published by", "published at", "current"),
        [
            (
                d.id,
                d.version,
                escape(d.title),
                escape(d.published_by),
                f"{d.published_at:%Y-%m-%d %H:%M}",
                "yes" if d.current else "",
            )
            for d in found
        ],
    )


@app.command("show")
def show_one(
    ctx: typer.Context,
    dua_id: Annotated[int, typer.Argument(help="The DUA version's id (`dua list`).")],
    as_json: JsonFlag = False,
) -> None:
    """One DUA version, with its text."""
    with state(ctx).open() as depot, depot.reading() as db:
        info = dua.get_dua(db, dua_id)
    if as_json:
        print_json(info)
        return
    print_fields(
        escape(info.name),
        {
            "scope": escape(info.scope),
            "published by": escape(info.published_by),
            "published at": f"{info.published_at:%Y-%m-%d %H:%M}",
            "current": "yes" if info.current else "no, superseded",
        },
    )
    console.print()
    console.print(info.body, markup=False, highlight=False)


@app.command("acceptances")
def list_acceptances(
    ctx: typer.Context,
    project: Annotated[
        str | None, typer.Option("--project", help="Only this project's DUA.")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="Only this account's.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Who accepted which DUA version, and when, oldest first."""
    with state(ctx).open() as depot, depot.reading() as db:
        found = dua.acceptances(db, project, user)
    show(
        as_json,
        found,
        "DUA acceptances",
        ("user", "scope", "version", "dua id", "accepted at", "current"),
        [
            (
                escape(a.username),
                escape(a.scope),
                a.version,
                a.dua_id,
                f"{a.accepted_at:%Y-%m-%d %H:%M}",
                "yes" if a.current else "",
            )
            for a in found
        ],
    )
