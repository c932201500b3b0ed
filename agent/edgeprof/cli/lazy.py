"""A click group whose subcommands are imported on first use.

Why: ``edgeprof push`` runs from cron on small boards, where importing numpy, the gate and the
collector for a command that needs none of them costs more than the push itself. Each command
is registered by name as ``"module:attribute"`` plus its one-line help; ``--help`` lists them
from the registry, and only the command that runs is imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives (``"package.module:attribute"``) and its help as listed."""

    target: str
    help: str

    def load(self) -> click.Command:
        """Import the module and return the command (a usage bug if it is not one)."""
        module_name, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return command

    def short_help(self, limit: int) -> str:
        """The listing line, shortened exactly as click shortens a command's own help."""
        return click.Command(None, help=self.help).get_short_help_str(limit)


class LazyGroup(click.Group):
    """A group with registered commands (``add_command``) and lazy ones (``lazy=``)."""

    def __init__(self, *args: Any, lazy: Mapping[str, LazyCommand] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.lazy: dict[str, LazyCommand] = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in self.lazy:
            command = self.lazy[cmd_name].load()
            self.commands[cmd_name] = command  # imported once
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, but a command not imported yet is listed from the registry."""
        names = self.list_commands(ctx)
        rows: list[tuple[str, str]] = []
        if names:
            limit = formatter.width - 6 - max(len(n) for n in names)
            for name in names:
                loaded = self.commands.get(name)
                if loaded is not None:
                    if not loaded.hidden:
                        rows.append((name, loaded.get_short_help_str(limit)))
                else:
                    rows.append((name, self.lazy[name].short_help(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
