"""Placeholder: filled in by the consent issue's work on `gdpr`."""

import typer

app = typer.Typer(help="gdpr", no_args_is_help=True)
