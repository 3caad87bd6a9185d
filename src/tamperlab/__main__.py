"""`python -m tamperlab` is the `tamperlab` command."""

from tamperlab.cli import app

app(prog_name="tamperlab")
