"""`StagedTag.seen` (built without `__init__` for speed) is the same as the plain constructor."""

from __future__ import annotations

import dataclasses

import pytest

from regwatch.store import TAG_ADDED, StagedTag


@pytest.mark.parametrize("event", [None, TAG_ADDED])
def test_seen_equals_the_constructor(event: str | None) -> None:
    seen = StagedTag.seen("v1.2", event=event)
    built = StagedTag("v1.2", metadata=False, event=event)
    assert seen == built
    assert repr(seen) == repr(built).replace("{}", "mappingproxy({})")
    assert {f.name: getattr(seen, f.name) for f in dataclasses.fields(StagedTag)} == vars(seen)


def test_seen_sets_every_field_and_stays_frozen() -> None:
    seen = StagedTag.seen("latest")
    assert set(vars(seen)) == {f.name for f in dataclasses.fields(StagedTag)}
    assert (seen.metadata, seen.digest, seen.event, seen.event_id) == (False, None, None, None)
    assert dict(seen.labels) == {}
    assert dict(seen.platform_digests) == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        seen.tag = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):  # the shared empty mappings cannot be filled
        seen.labels["a"] = "b"  # type: ignore[index]
    assert dataclasses.replace(seen, digest="sha256:" + "0" * 64).digest == "sha256:" + "0" * 64
