"""Placeholder: filled in by the consent issue's work on `share`."""

import typer

app = typer.Typer(help="share", no_args_is_help=True)
