"""Placeholder: filled in by the consent issue's work on `dua`."""

import typer

app = typer.Typer(help="dua", no_args_is_help=True)
