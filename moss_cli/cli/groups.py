"""Options declared once, in groups: a group is a frozen dataclass whose fields carry their Typer
declaration and default (`name: Annotated[type, typer.Option(...)] = default`).

A command names the groups it takes as parameters annotated with them; `@options` writes each
group's fields into the command's signature in its place (Typer reads inspect.signature) and hands
the command one instance per group. A command that shows only some of a group's options, in another
order, or with another default or help says so with `Annotated[Group, only(...)]` (or `without`,
`changing`): the group stays the one declaration, and an option the command hides keeps its default.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from copy import copy
from dataclasses import MISSING, dataclass, field, fields
from typing import Annotated

import typer
from typer.models import OptionInfo

from ..errors import UsageError
from .console import report

_KEEP = object()


class Change:
    """One command's version of a group's option: another default, and typer.Option attributes (help, ...)."""

    def __init__(self, default: object = _KEEP, **declaration: object):
        self.default = default
        self.declaration = declaration


@dataclass(frozen=True)
class Shown:
    """Which of a group's options a command shows, in its order, and what it changes in them."""

    names: tuple[str, ...] | None = None  # None: every option but `hidden`, in the group's order
    hidden: tuple[str, ...] = ()
    changes: Mapping[str, Change] = field(default_factory=dict)


def only(*names: str, **changes: Change) -> Shown:
    return Shown(names, (), changes)


def without(*names: str, **changes: Change) -> Shown:
    return Shown(None, names, changes)


def changing(**changes: Change) -> Shown:
    return Shown(None, (), changes)


class OptionGroup:
    """Base of the groups. A field whose annotation carries no typer.Option is the group's own state."""

    @classmethod
    def from_options(cls, values: dict, shown: tuple[str, ...]):
        """The instance a command gets: `values` holds the options it shows, by name, in `shown`'s order."""
        return cls(**values)

    @classmethod
    def parameters(cls, shown: Shown = Shown()) -> list[inspect.Parameter]:
        """The options as keyword parameters, `Annotated[type, typer.Option(...)] = default`, as Typer reads them."""
        declared = _declared(cls)
        names = shown.names if shown.names is not None else tuple(n for n in declared if n not in shown.hidden)
        unknown = (set(names) | set(shown.hidden) | set(shown.changes)) - set(declared)
        if unknown:
            raise TypeError(f"{cls.__name__} has no option {', '.join(sorted(unknown))}")
        return [_changed(declared[name], shown.changes.get(name)) for name in names]


@functools.cache
def _declared(group: type[OptionGroup]) -> dict[str, inspect.Parameter]:
    hints = typing.get_type_hints(group, include_extras=True)  # the module's `from __future__` strings resolved
    declared = {}
    for item in fields(group):
        if not any(isinstance(extra, OptionInfo) for extra in getattr(hints[item.name], "__metadata__", ())):
            continue
        if item.default is MISSING:  # an option a command hides must still have a value
            raise TypeError(f"{group.__name__}.{item.name} needs a default")
        declared[item.name] = inspect.Parameter(item.name, inspect.Parameter.KEYWORD_ONLY, default=item.default,
                                                annotation=hints[item.name])
    return declared


def _changed(parameter: inspect.Parameter, change: Change | None) -> inspect.Parameter:
    """The parameter with the command's default and a copy of its typer.Option changed (the group's stays)."""
    if change is None:
        return parameter
    info = copy(next(extra for extra in parameter.annotation.__metadata__ if isinstance(extra, OptionInfo)))
    for name, value in change.declaration.items():
        if name == "default" or not hasattr(info, name):  # Annotated options take their default from `=`
            raise TypeError(f"typer.Option has no {name!r} to change")
        setattr(info, name, value)
    default = parameter.default if change.default is _KEEP else change.default
    return parameter.replace(annotation=Annotated[parameter.annotation.__origin__, info], default=default)


def _group_of(annotation) -> tuple[type[OptionGroup], Shown] | None:
    shown = Shown()
    if typing.get_origin(annotation) is Annotated:
        shown = next((extra for extra in annotation.__metadata__ if isinstance(extra, Shown)), shown)
        annotation = annotation.__origin__
    try:
        return (annotation, shown) if issubclass(annotation, OptionGroup) else None
    except TypeError:  # not a class (list[str], ...): an ordinary parameter
        return None


def options(command: Callable) -> Callable:
    """The command with each group parameter replaced, in place, by the group's options.

    A UsageError the command raises (a group's values that cannot work together, found before any
    work) ends it as every usage error does: one line on stderr, exit 2."""
    parameters, groups = [], {}
    for parameter in inspect.signature(command, eval_str=True).parameters.values():
        found = _group_of(parameter.annotation)
        if found is None:
            parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))
            continue
        group, shown = found
        expanded = group.parameters(shown)
        groups[parameter.name] = (group, tuple(option.name for option in expanded))
        parameters += expanded
    names = [parameter.name for parameter in parameters]
    if len(set(names)) < len(names):
        raise TypeError(f"{command.__name__}: options named twice: {sorted({n for n in names if names.count(n) > 1})}")

    @functools.wraps(command)
    def with_groups(**given):
        made = {name: group.from_options({option: given.pop(option) for option in shown}, shown)
                for name, (group, shown) in groups.items()}
        try:
            return command(**given, **made)
        except UsageError as exc:
            raise typer.Exit(report(exc)) from None

    with_groups.__signature__ = inspect.Signature(parameters, return_annotation=None)
    with_groups.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    return with_groups
