"""Placeholder: filled in by the consent issue's work on `consent`."""

import typer

app = typer.Typer(help="consent", no_args_is_help=True)
