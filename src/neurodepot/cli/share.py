"""`neurodepot share PROJECT [private|internal|public]`: a project's sharing level.

The rule lives in `neurodepot.consent.sharing`: private and internal apply at once, public waits
for a data steward's approval. The CLI is the local operator, whom the policy lets act as the
steward too, so `--approve`/`--reject` (with `--reason`) decide a pending request here, and the
audit log names the person at this machine (`cli_actor`) as the one who decided.
"""

from typing import Annotated

import typer
from rich.markup import escape

from neurodepot.cli.output import JsonFlag, console, print_json, print_table
from neurodepot.cli.state import cli_actor, state
from neurodepot.consent import sharing
from neurodepot.consent.sharing import SharingRequestInfo, SharingStatus
from neurodepot.errors import Invalid


def share(
    ctx: typer.Context,
    project: Annotated[str, typer.Argument(help="Project label.")],
    level: Annotated[
        str | None,
        typer.Argument(help="private, internal or public; none: show the project's sharing."),
    ] = None,
    approve: Annotated[
        bool, typer.Option("--approve", help="As steward: approve the pending request.")
    ] = False,
    reject: Annotated[
        bool, typer.Option("--reject", help="As steward: reject the pending request.")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why (required with --approve and --reject).")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Show or change who beyond its named people may see a project (with consent, a DUA).

    Going public waits for a data steward: `share P public`, then `share P --approve --reason
    "..."` (or `share P public --approve --reason "..."` in one step, as steward).
    """
    _check_flags(project, level, approve, reject, reason)
    actor = cli_actor()
    if level is None and not (approve or reject):
        with state(ctx).open() as depot, depot.reading() as db:
            _show_status(as_json, sharing.sharing_status(db, project))
        return
    with state(ctx).open() as depot, depot.transaction() as db:
        if level is None:
            decide = sharing.approve if approve else sharing.reject
            request = decide(db, actor, project, reason)
        else:
            request = sharing.request_level(db, actor, project, level, "" if approve else reason)
            if approve and request.status == "pending":
                request = sharing.approve(db, actor, project, reason)
            else:
                approve = False
    if as_json:
        print_json(request)
    else:
        console.print(_said(request, approve), markup=False, highlight=False)


def _check_flags(project: str, level: str | None, approve: bool, reject: bool, reason: str) -> None:
    if approve and reject:
        raise Invalid("give --approve or --reject, not both")
    if level is not None:
        sharing.check_level(level)
    if reject and level is not None:
        raise Invalid(
            f"--reject decides the pending request: `neurodepot share {project} --reject`"
        )
    if approve and level not in (None, sharing.PUBLIC):
        raise Invalid(f"only going public waits for approval: {level} applies without --approve")
    if (approve or reject) and not reason.strip():
        raise Invalid('a steward\'s decision needs a reason: add --reason "..."')
    if level is None and not (approve or reject) and reason:
        raise Invalid("--reason goes with a level, --approve or --reject")


def _said(request: SharingRequestInfo, approved: bool) -> str:
    project = request.project
    if request.status == "pending":
        return (
            f"{project} stays as it is until a data steward approves going public (request "
            f"{request.id}); a steward runs `neurodepot share {project} --approve --reason ...`"
        )
    if request.status == "rejected":
        return (
            f"The request to make {project} {request.level} is rejected: {request.decision_reason}"
        )
    if approved:
        return f"{project} is now public, approved by {request.decided_by}"
    return f"{project} is now {request.level}"


def _show_status(as_json: bool, status: SharingStatus) -> None:
    if as_json:
        print_json(status)
        return
    console.print(f"{status.project} is {status.level}", markup=False, highlight=False)
    if status.pending is not None:
        pending = status.pending
        console.print(
            f"Waiting for a steward: {pending.level}, requested by {pending.requested_by} "
            f"on {pending.requested_at:%Y-%m-%d %H:%M} (request {pending.id})",
            markup=False,
            highlight=False,
        )
    if status.history:
        print_table(
            f"Sharing history of {status.project}",
            (
                "id",
                "level",
                "status",
                "requested by",
                "requested at",
                "reason",
                "decided by",
                "decision",
            ),
            [
                (
                    r.id,
                    r.level,
                    r.status,
                    escape(r.requested_by),
                    f"{r.requested_at:%Y-%m-%d %H:%M}",
                    escape(r.reason),
                    escape(r.decided_by),
                    escape(r.decision_reason),
                )
                for r in status.history
            ],
        )
