"""Entry point of the ``ccd`` command. Sub-commands live in sibling modules."""

from __future__ import annotations

import sys

import click

from ccd import __version__
from ccd.config import Config, ConfigError, load

#: exit codes shared by every command
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_NOT_FOUND = 0, 1, 2, 3, 4


class Ctx:
    """What every command gets: the configuration, loaded lazily."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            try:
                self._config = load(self.config_path)
            except ConfigError as exc:
                click.echo(f"ccd: {exc}", err=True)
                sys.exit(EXIT_USAGE)
        return self._config


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="CCD_CONFIG", type=click.Path(dir_okay=False),
              help="TOML configuration file (default: built-in defaults + CCD_* variables).")
@click.version_option(__version__, prog_name="ccd")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """ccd - cloud call-center controller for Asterisk."""
    ctx.obj = Ctx(config_path)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="ccd")


# sub-command modules register themselves on `cli`
from ccd.cli import admin as _admin  # noqa: E402,F401
from ccd.cli import campaign as _campaign  # noqa: E402,F401
from ccd.cli import daemon_cmds as _daemon_cmds  # noqa: E402,F401
from ccd.cli import db as _db  # noqa: E402,F401
from ccd.cli import demo as _demo  # noqa: E402,F401
from ccd.cli import ops as _ops  # noqa: E402,F401
from ccd.cli import replay as _replay  # noqa: E402,F401
from ccd.cli import sim as _sim  # noqa: E402,F401
