"""``python -m tamperlab.sweep GRID.yaml [options]``: the ``tamperlab sweep`` command on its own."""

import logging

import typer

from tamperlab.cli import cli_errors
from tamperlab.sweep.command import sweep_command

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(cli_errors(sweep_command))

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app(prog_name="python -m tamperlab.sweep")
