"""
The lifecycle of a task as named states and a transition table: an enum of
states, and for each state the events it takes, the state each leads to and
the action run there.  An event a state does not take is ignored, so that a
stale one (the result of an attempt cancelled on the way out of a state)
arrives in a state that has no use for it.  Cheaper than automat for the ten
thousand tasks a manager may hold.
"""

from collections.abc import Callable
from enum import Enum
from typing import Any, ClassVar

__all__ = ["StateMachine"]

Transitions = dict[Enum, dict[str, tuple[Enum, Callable[..., Any] | None]]]


class StateMachine:
    """
    A mixin for a class with a current state C{_state} and a class-level
    table C{_transitions}: C{{state: {event: (next state, action)}}}, the
    action a function of the instance and the event's arguments, or
    L{None}.
    """

    __slots__ = ("_state",)

    _state: Enum
    _transitions: ClassVar[Transitions]

    def _handle(self, event: str, *args: Any) -> Any:
        """
        Take C{event} in the current state: move to the next state, then run
        the transition's action (which may itself take events).

        @return: what the action returns, or L{None} for an event this
            state ignores.
        """
        transition = self._transitions[self._state].get(event)
        if transition is None:
            return None
        self._state, action = transition
        return None if action is None else action(self, *args)
