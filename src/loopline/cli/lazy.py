"""Command groups imported only when they run: `loopline --help` lists them from a table of
names and one-line helps, so a command pays only for the modules it uses."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class Lazy:
    """A command `attribute` of `module` (a Typer app or a command function), and its help."""

    module: str
    attribute: str
    help: str

    def load(self, name: str) -> Any:
        target = getattr(importlib.import_module(self.module), self.attribute)
        if isinstance(target, typer.Typer):
            group = typer.main.get_group(target)
            group.name = name
            return plain_flags(group)
        holder = typer.Typer()
        holder.command(name)(target)
        return plain_flags(typer.main.get_command(holder))


def plain_flags(command: Any) -> Any:
    """`command` and its subcommands with flags shown as flags: Typer's help would give each
    one a `<bool>` metavar, as if it took a value."""
    for param in command.get_params(typer.Context(command)):  # the help option is made (once) here
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        plain_flags(sub)
    return command


class LazyGroup(TyperGroup):
    """A Typer group whose `lazy` commands are imported on first use. While help is being
    written they are stand-ins holding only their help."""

    lazy: ClassVar[dict[str, Lazy]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listing = False
        self._loaded: dict[str, Any] = {}
        plain_flags(self)

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        spec = self.lazy.get(cmd_name)
        if spec is None:
            return super().get_command(ctx, cmd_name)
        if self._listing:
            return TyperCommand(cmd_name, help=spec.help)
        if cmd_name not in self._loaded:
            self._loaded[cmd_name] = spec.load(cmd_name)
        return self._loaded[cmd_name]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False
