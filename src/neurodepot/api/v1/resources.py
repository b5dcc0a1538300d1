"""Resources and their files at every level, with streaming upload and download.

Uploads are the raw request body (`PUT …/files/{path}`), written to the blob store chunk by chunk
as they arrive; downloads are served from the blob file with `Content-Length`, `ETag` (the
SHA-256), conditional requests and byte ranges.
"""

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response, status
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from neurodepot.api.guard import CanCreate, CanDelete, CanRead, DepotDep
from neurodepot.api.schemas import GUARDED_ERRORS, ResourceIn
from neurodepot.api.v1.hierarchy import PROJECT, SCAN, SESSION, SUBJECT
from neurodepot.catalog import resources
from neurodepot.catalog.records import FileInfo, ResourceInfo, StoredFile
from neurodepot.catalog.target import Target

router = APIRouter(tags=["resources"], responses=GUARDED_ERRORS)


def _project(project: str) -> Target:
    return Target(project)


def _subject(project: str, subject: str) -> Target:
    return Target(project, subject)


def _session(project: str, subject: str, session: str) -> Target:
    return Target(project, subject, session)


def _scan(project: str, subject: str, session: str, scan: str) -> Target:
    return Target(project, subject, session, scan)


def _etag(digest: str) -> str:
    return f'"{digest}"'


def _matches(if_none_match: str | None, digest: str) -> bool:
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or _etag(digest) in tags


def _register(prefix: str, resolve: Callable[..., Target]) -> None:
    """Add the resource routes under one level's path (`prefix`)."""
    TargetDep = Annotated[Target, Depends(resolve)]
    base = prefix + "/resources"

    @router.get(base, dependencies=[CanRead])
    def list_resources(target: TargetDep, depot: DepotDep) -> list[ResourceInfo]:
        with depot.transaction() as db:
            return resources.list_resources(db, target)

    @router.post(base, status_code=201, dependencies=[CanCreate])
    def create_resource(target: TargetDep, body: ResourceIn, depot: DepotDep) -> ResourceInfo:
        with depot.transaction() as db:
            return resources.create_resource(db, target, body.label)

    @router.get(base + "/{resource}", dependencies=[CanRead])
    def get_resource(target: TargetDep, resource: str, depot: DepotDep) -> ResourceInfo:
        with depot.transaction() as db:
            return resources.get_resource(db, target, resource)

    @router.put(
        base + "/{resource}/files/{path:path}",
        dependencies=[CanCreate],
        responses={201: {"model": StoredFile, "description": "Stored as a new file."}},
    )
    async def upload_file(
        target: TargetDep,
        resource: str,
        path: str,
        request: Request,
        depot: DepotDep,
        response: Response,
        overwrite: bool = False,
        content_type: Annotated[str | None, Header()] = None,
        x_content_sha256: Annotated[str | None, Header()] = None,
    ) -> StoredFile:
        """Store the request body as a file; 201 when created, 200 when replaced or unchanged.

        Send `X-Content-SHA256` to have the content verified before it is stored.
        """

        def check() -> str:
            with depot.transaction() as db:
                return resources.check_can_store(db, target, resource, path)

        clean_path = await run_in_threadpool(check)
        with depot.blobs.writer() as writer:
            async for chunk in request.stream():
                if chunk:
                    await run_in_threadpool(writer.write, chunk)
            stored = await run_in_threadpool(
                resources.store_file,
                depot,
                target,
                resource,
                clean_path,
                writer,
                overwrite,
                content_type,
                x_content_sha256,
            )
        response.status_code = 201 if stored.outcome == "created" else 200
        response.headers["ETag"] = _etag(stored.file.digest)
        return stored

    # HEAD is its own route, left out of the schema: one route for both methods would give
    # both operations the same OpenAPI operationId.
    @router.head(
        base + "/{resource}/files/{path:path}", dependencies=[CanRead], include_in_schema=False
    )
    @router.get(
        base + "/{resource}/files/{path:path}",
        dependencies=[CanRead],
        response_class=FileResponse,
        responses={200: {"content": {"application/octet-stream": {}}}, 206: {}, 304: {}},
    )
    def download_file(
        target: TargetDep,
        resource: str,
        path: str,
        depot: DepotDep,
        if_none_match: Annotated[str | None, Header()] = None,
    ) -> Response:
        """The file's bytes; supports `Range`, `If-Range` and `If-None-Match`."""
        with depot.transaction() as db:
            info = resources.get_file(db, target, resource, path)
        headers = {"ETag": _etag(info.digest), "Cache-Control": "private, no-cache"}
        if _matches(if_none_match, info.digest):
            return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
        blob = depot.blobs.path(info.digest)
        if not blob.is_file():
            depot.blobs.open(info.digest)  # raises NotFound naming fsck
        return FileResponse(
            blob,
            media_type=info.content_type,
            headers=headers,
            filename=info.path.rsplit("/", 1)[-1],
        )

    @router.delete(
        base + "/{resource}/files/{path:path}", dependencies=[CanDelete], status_code=200
    )
    def delete_file(target: TargetDep, resource: str, path: str, depot: DepotDep) -> FileInfo:
        return resources.delete_file(depot, target, resource, path)


for _prefix, _resolve in (
    (PROJECT, _project),
    (SUBJECT, _subject),
    (SESSION, _session),
    (SCAN, _scan),
):
    _register(_prefix, _resolve)
