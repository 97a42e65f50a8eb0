"""The error tree of the state machine.

::

    Exception
    ├── ProtocolError        an expected rejection of a message or an input (stable ``code``,
    │                        human ``message``, structured ``fields``); the state is left untouched
    └── InvariantViolation   a bug: a rule the state machine guarantees was found broken; never persisted

Codes are stable snake_case identifiers: the API maps them to 4xx responses, the CLI to exit
codes, scenario files print them. Never use ``assert`` for rules: ``python -O`` strips it.
"""
from __future__ import annotations

from typing import Any


class ProtocolError(Exception):
    """An expected rejection, e.g. ``ProtocolError("insufficient_margin", "...")``."""

    def __init__(self, code: str, message: str, **fields: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields: dict[str, Any] = fields

    def __repr__(self) -> str:
        return f"ProtocolError({self.code!r}, {self.message!r})"


class InvariantViolation(Exception):
    """A broken invariant (conservation, crossed book, ...): a bug, never a business outcome."""
