"""
What a L{txinferno.server.registry.Registry} tells its change observers:
one L{RegistryChange} per service registered, updated or removed, and per
write the registry or its C{new} port rejected.
"""

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from zope.interface import Interface

__all__ = ["ChangeKind", "RegistryChange", "IRegistryObserver"]


class ChangeKind(enum.Enum):
    """
    The kinds of L{RegistryChange} (each one's C{name} is its label:
    C{registered}, C{updated}, C{removed}, C{rejected}).
    """

    registered = enum.auto()
    updated = enum.auto()
    removed = enum.auto()
    rejected = enum.auto()


@dataclass(frozen=True)
class RegistryChange:
    """
    One change of a registry, or one rejected write.

    @ivar kind: what happened.
    @ivar name: the service's name; for a rejection, the name the write
        gave or the service of the connection, L{None} when there was none.
    @ivar attributes: the service's attributes after the change (before it,
        for a removal), newest-first; empty for a rejection.
    @ivar version: the registry's version once the change is made.
    @ivar reason: for a rejection, the registry's error text, else L{None}.
    """

    kind: ChangeKind
    name: str | None
    attributes: Sequence[tuple[str, str]]
    version: int
    reason: str | None = None


class IRegistryObserver(Interface):
    """
    Told of every change of a registry, at once and in order (added with
    L{txinferno.server.registry.Registry.addChangeObserver}).  It must not
    change the registry and should return quickly: it runs inside the
    write that made the change.
    """

    def registryChanged(change):
        """
        The registry changed, or rejected a write.

        @type change: L{RegistryChange}
        """
