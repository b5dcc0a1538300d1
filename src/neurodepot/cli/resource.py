"""`neurodepot resource add|get|list`: files at any level of the hierarchy."""

import hashlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)

from neurodepot.catalog import resources
from neurodepot.catalog.batch_add import add_local_files
from neurodepot.catalog.records import FileInfo
from neurodepot.catalog.target import Target
from neurodepot.cli.output import JsonFlag, console, done, human_size, show
from neurodepot.cli.state import state
from neurodepot.depot.blobstore import CHUNK_SIZE, BlobStore
from neurodepot.errors import Conflict, Invalid

app = typer.Typer(help="Add, fetch and list files in resources.", no_args_is_help=True)

TargetArg = Annotated[
    str, typer.Argument(metavar="TARGET", help="PROJECT[/SUBJECT[/SESSION[/SCAN]]]")
]


def _progress(disabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
        disable=disabled,
    )


def _sources(files: list[Path], prefix: str) -> list[tuple[Path, str]]:
    """Each local file with the path it gets in the resource; folders are walked."""
    pairs: list[tuple[Path, str]] = []
    for given in files:
        if given.is_dir():
            for found in sorted(p for p in given.rglob("*") if p.is_file()):
                pairs.append((found, found.relative_to(given.parent).as_posix()))
        elif given.is_file():
            pairs.append((given, given.name))
        else:
            raise Invalid(f"{given} does not exist or is not a file or folder; nothing was added")
    prefix = prefix.strip("/")
    return [(src, f"{prefix}/{name}" if prefix else name) for src, name in pairs]


@app.command()
def add(
    ctx: typer.Context,
    target: TargetArg,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Resource label, e.g. DICOM.")],
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help="Files or folders.")],
    prefix: Annotated[str, typer.Option(help="Folder inside the resource to put them in.")] = "",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace files that exist with other content.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Add files (or folders, recursively) to a resource, creating it if needed."""
    t = Target.parse(target)
    pairs = _sources(files, prefix)
    total = sum(src.stat().st_size for src, _ in pairs)
    with state(ctx).open() as depot, _progress(as_json) as bar:
        task = bar.add_task(f"Adding to {t}/{name}", total=total)
        stored = add_local_files(
            depot, t, name, pairs, overwrite, progress=lambda n: bar.advance(task, n)
        )
    counts = {
        o: sum(1 for s in stored if s.outcome == o) for o in ("created", "replaced", "unchanged")
    }
    done(
        as_json,
        stored,
        f"{t}/{name}: {counts['created']} added, {counts['replaced']} replaced, "
        f"{counts['unchanged']} already stored ({human_size(total)})",
    )


@app.command("list")
def list_(ctx: typer.Context, target: TargetArg, as_json: JsonFlag = False) -> None:
    """List the resources at a place in the hierarchy."""
    t = Target.parse(target)
    with state(ctx).open() as depot, depot.transaction() as db:
        found = resources.list_resources(db, t)
    show(
        as_json,
        found,
        f"Resources of {t}",
        ("label", "files", "size"),
        [(r.label, r.file_count, human_size(r.total_size)) for r in found],
    )


@app.command()
def get(
    ctx: typer.Context,
    target: TargetArg,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    path: Annotated[
        str | None, typer.Argument(metavar="[PATH]", help="One file; default all.")
    ] = None,
    out: Annotated[
        Path, typer.Option("-o", "--out", help="File (one PATH; '-' for stdout) or folder.")
    ] = Path("."),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing files.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Fetch one file, or a whole resource into a folder; digests are verified on the way."""
    t = Target.parse(target)
    with state(ctx).open() as depot:
        with depot.transaction() as db:
            if path is not None:
                wanted = [resources.get_file(db, t, name, path)]
            else:
                wanted = list(resources.get_resource(db, t, name).files)
        if path is not None and str(out) == "-":
            _copy_to_stdout(depot.blobs, wanted[0])
            return
        if path is not None and not out.is_dir():
            destinations = [(wanted[0], out)]
        else:
            destinations = [(f, out / f.path) for f in wanted]
        for _, dest in destinations:
            if dest.exists() and not overwrite:
                raise Conflict(f"{dest} exists; pass --overwrite to replace it")
        with _progress(as_json) as bar:
            task = bar.add_task(f"Fetching {t}/{name}", total=sum(f.size for f in wanted))
            for info, dest in destinations:
                _copy_verified(depot.blobs, info, dest, lambda n: bar.advance(task, n))
    done(
        as_json,
        [
            {"path": f.path, "digest": f.digest, "size": f.size, "saved_to": str(d)}
            for f, d in destinations
        ],
        f"Fetched {len(destinations)} file(s) to {out}",
    )


def _copy_verified(blobs: BlobStore, info: FileInfo, dest: Path, advance: object) -> None:
    """Write a blob to `dest` through a temporary file, renamed only if its digest matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.neurodepot-partial")
    sha = hashlib.sha256()
    try:
        with tmp.open("wb") as handle:
            for chunk in blobs.read_chunks(info.digest, CHUNK_SIZE):
                handle.write(chunk)
                sha.update(chunk)
                advance(len(chunk))  # type: ignore[operator]
            handle.flush()
            os.fsync(handle.fileno())
        if sha.hexdigest() != info.digest:
            raise Conflict(
                f"stored content of {info.path} is corrupt (digest mismatch); "
                "nothing was written; run `neurodepot fsck`"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _copy_to_stdout(blobs: BlobStore, info: FileInfo) -> None:
    out = sys.stdout.buffer
    for chunk in blobs.read_chunks(info.digest, CHUNK_SIZE):
        out.write(chunk)
    out.flush()
