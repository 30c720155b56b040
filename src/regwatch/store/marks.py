"""The `@writes` marker of Store methods, apart so that Store's mixins can use it without an
import cycle (`regwatch.store.store` re-exports both names)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def writes(method: F) -> F:
    """Mark a Store method as a writer (AsyncStore sends it to the single writer thread)."""
    method.__regwatch_writes__ = True  # type: ignore[attr-defined]
    return method


def is_writer(method: Callable[..., Any]) -> bool:
    return bool(getattr(method, "__regwatch_writes__", False))
