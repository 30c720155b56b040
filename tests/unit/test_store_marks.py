"""The `@writes` markers survive the split of Store into mixins: AsyncStore routes by them."""

from __future__ import annotations

from regwatch.store import Store
from regwatch.store.event_methods import EventMethods
from regwatch.store.store import is_writer, writes


def test_writers_defined_in_the_events_mixin_are_found_through_store() -> None:
    assert issubclass(Store, EventMethods)
    for name in ("record_push", "claim_next_deliveries", "acquire_lease", "redeliver"):
        assert is_writer(getattr(Store, name)), name
    for name in ("tag_history", "events", "lease_holder", "outbox_counts", "find_event"):
        assert not is_writer(getattr(Store, name)), name


def test_writers_of_store_itself_are_still_marked() -> None:
    assert is_writer(Store.finish_repository_scan)
    assert not is_writer(Store.find_images)


def test_writes_marks_a_function_in_place() -> None:
    def method() -> None:
        return None

    assert not is_writer(method)
    assert writes(method) is method
    assert is_writer(method)
