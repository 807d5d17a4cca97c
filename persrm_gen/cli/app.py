"""The ``persrm-gen`` command line: the typer app, its command modules, and the one exit path.

Each command module (build, batches, dataset, authors, train, push) exposes ``register(app)`` and
never imports this module back, so commands can be read, imported and tested on their own;
the order of registration is the order ``--help`` lists them in.
"""

from __future__ import annotations

import sys

import typer

from persrm_gen.cli import authors, batches, build, dataset, push, train
from persrm_gen.errors import UsageError
from persrm_gen.exitcodes import run_cli

app = typer.Typer(
    name="persrm-gen",
    help="Build synthetic preference datasets for personalized reward models (PersRM-R1), and train them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for command_module in (build, batches, dataset, authors, train, push):
    command_module.register(app)


def main() -> None:
    run_cli(_invoke)


def _invoke() -> None:
    """Run the app with our exit path: a flag the parser refuses is one line, exit 2, like any bad option."""
    from typer._click.exceptions import ClickException, NoArgsIsHelpError  # noqa: PLC0415

    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:  # `persrm-gen` alone: the help text, as before
        exc.show()
        sys.exit(exc.exit_code)
    except ClickException as exc:
        raise UsageError(" ".join(exc.format_message().split())) from None
    except typer.Abort:
        raise KeyboardInterrupt from None
    if code:  # typer.Exit(n), --help (0)
        sys.exit(code)


if __name__ == "__main__":
    main()
