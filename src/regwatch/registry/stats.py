"""Counters one RegistryClient keeps about its traffic (for metrics, the CLI and benchmarks)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from regwatch.registry.budget import RegistryBudget


class ClientStats:
    """Requests, responses by status, retries, 429s, token fetches, bytes, and the budget.

    `limit`/`remaining`/`reset_at` come from the registry's `RateLimit-*` headers when it sends
    them (None otherwise); they are shared by every client of the same registry.
    """

    __slots__ = (
        "_budget",
        "bytes",
        "rate_limited",
        "requests",
        "responses",
        "retries",
        "token_fetches",
    )

    def __init__(self, budget: RegistryBudget) -> None:
        self._budget = budget
        self.requests = 0
        self.responses: Counter[int] = Counter()
        self.retries = 0
        self.rate_limited = 0
        self.bytes = 0
        self.token_fetches = 0

    @property
    def limit(self) -> int | None:
        return self._budget.limit

    @property
    def remaining(self) -> int | None:
        return self._budget.remaining

    @property
    def reset_at(self) -> float | None:
        return self._budget.reset_at

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "responses": {str(k): v for k, v in sorted(self.responses.items())},
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "token_fetches": self.token_fetches,
            "bytes": self.bytes,
            "budget": {"limit": self.limit, "remaining": self.remaining, "reset_at": self.reset_at},
        }

    def __repr__(self) -> str:
        return f"ClientStats({self.as_dict()!r})"
