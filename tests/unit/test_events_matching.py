"""Echo's trigger rules, webhook filters, and which sinks want an event."""

from __future__ import annotations

import pytest

from regwatch.config.settings import ServiceSettings, parse_settings
from regwatch.config.triggers import TriggerSettings
from regwatch.errors import ConfigError
from regwatch.events.matching import SinkSet, sink_names, trigger_matches


def trigger(tag: str = "", **changes: object) -> TriggerSettings:
    fields: dict[str, object] = {
        "name": "t",
        "account": "hub",
        "repository": "library/nginx",
        "tag": tag,
        "sink": "ci",
    }
    fields.update(changes)
    return TriggerSettings.model_validate(fields)


@pytest.mark.parametrize(
    ("tag", "matches"),
    [("1.25.3", True), ("v1", True), ("latest", False), ("latest-2", True), ("LATEST", True)],
)
def test_a_blank_tag_matches_every_tag_but_latest(tag: str, matches: bool) -> None:
    assert trigger_matches(trigger(""), "hub", "library/nginx", tag) is matches
    assert trigger_matches(trigger("   "), "hub", "library/nginx", tag) is matches


@pytest.mark.parametrize(
    ("pattern", "tag", "matches"),
    [
        (r"1\.25\..*", "1.25.3", True),
        (r"1\.25\..*", "1.25", False),
        (r"1\.25", "1.25.3", False),  # a full match, not a search
        (r"1\.25", "v1.25", False),
        ("latest", "latest", True),  # an explicit regex may match latest
        (".*", "latest", True),
        (r" v\d+ ", "v12", True),  # trimmed, as Echo trims
        ("v[0-9]+", "v12-rc", False),
    ],
)
def test_a_tag_regex_must_match_the_whole_tag(pattern: str, tag: str, matches: bool) -> None:
    assert trigger_matches(trigger(pattern), "hub", "library/nginx", tag) is matches


def test_account_and_repository_match_exactly() -> None:
    t = trigger()
    assert trigger_matches(t, "hub", "library/nginx", "1")
    assert not trigger_matches(t, "hub2", "library/nginx", "1")
    assert not trigger_matches(t, "hub", "library/nginx2", "1")
    assert not trigger_matches(t, "hub", "nginx", "1")
    assert not trigger_matches(t, "Hub", "library/nginx", "1")


def test_a_disabled_trigger_matches_nothing() -> None:
    assert not trigger_matches(trigger(enabled=False), "hub", "library/nginx", "1")


def test_an_invalid_regex_is_rejected_when_configured() -> None:
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        settings(
            triggers=[{"name": "t", "account": "a", "repository": "r", "tag": "v(", "sink": "ci"}]
        )


def settings(**data: object) -> ServiceSettings:
    base: dict[str, object] = {"webhooks": [{"name": "ci", "url": "http://127.0.0.1:1/hook"}]}
    base.update(data)
    return parse_settings(base, environ={})


def test_a_sink_without_triggers_or_filters_wants_every_event() -> None:
    sinks = SinkSet.from_settings(settings())
    assert sinks.sinks_for("tag_added", "hub", "any/repo", "latest") == ["ci"]


def test_a_sink_with_triggers_wants_only_what_one_of_them_matches() -> None:
    sinks = SinkSet.from_settings(
        settings(
            triggers=[
                {"name": "a", "account": "hub", "repository": "app", "sink": "ci"},
                {"name": "b", "account": "hub", "repository": "db", "tag": "v.*", "sink": "ci"},
            ]
        )
    )
    assert sinks.sinks_for("tag_added", "hub", "app", "1.0") == ["ci"]
    assert sinks.sinks_for("tag_added", "hub", "app", "latest") == []
    assert sinks.sinks_for("tag_added", "hub", "db", "v2") == ["ci"]
    assert sinks.sinks_for("tag_added", "hub", "db", "2") == []
    ci = sinks.get("ci")
    assert ci is not None
    assert ci.decide("tag_added", "hub", "other", "1") == (
        "no trigger of sink 'ci' matches hub/other:1"
    )


def test_filters_limit_a_sink_by_kind_account_repository_and_tag() -> None:
    sinks = SinkSet.from_settings(
        settings(
            webhooks=[
                {
                    "name": "ci",
                    "url": "http://127.0.0.1:1/",
                    "filters": {
                        "accounts": ["hub"],
                        "repositories": ["team/.*"],
                        "tags": "v.*",
                        "kinds": ["tag_added"],
                    },
                }
            ]
        )
    )
    ci = sinks.get("ci")
    assert ci is not None
    assert ci.decide("tag_added", "hub", "team/app", "v1") is None
    assert "kinds" in (ci.decide("digest_changed", "hub", "team/app", "v1") or "")
    assert "accounts" in (ci.decide("tag_added", "gcr", "team/app", "v1") or "")
    assert "repositories" in (ci.decide("tag_added", "hub", "other/app", "v1") or "")
    assert "repositories" in (ci.decide("tag_added", "hub", "xteam/app", "v1") or "")
    assert "tags" in (ci.decide("tag_added", "hub", "team/app", "1") or "")


def test_echo_url_is_the_sink_echo_and_webhooks_get_default_names() -> None:
    configured = parse_settings(
        {"echoUrl": "http://127.0.0.1:8089/", "webhooks": [{"url": "http://127.0.0.1:2/"}]},
        environ={},
    )
    assert sink_names(configured) == ["echo", "webhook-1"]
    sinks = SinkSet.from_settings(configured)
    echo = sinks.get("echo")
    assert echo is not None
    assert echo.url == "http://127.0.0.1:8089/"
    assert echo.format == "echo"
    assert sinks.sinks_for("tag_added", "a", "r", "latest") == ["echo", "webhook-1"]


def test_a_trigger_must_deliver_to_a_configured_sink() -> None:
    with pytest.raises(ConfigError, match="'nope', which is not a configured sink"):
        settings(triggers=[{"name": "t", "account": "a", "repository": "r", "sink": "nope"}])


def test_sink_and_trigger_names_are_unique() -> None:
    with pytest.raises(ConfigError, match="used twice"):
        settings(webhooks=[{"name": "a", "url": "http://x/"}, {"name": "a", "url": "http://y/"}])
    with pytest.raises(ConfigError, match="used twice"):
        parse_settings(
            {"echoUrl": "http://e/", "webhooks": [{"name": "echo", "url": "http://x/"}]},
            environ={},
        )
    with pytest.raises(ConfigError, match="used twice"):
        settings(
            triggers=[
                {"name": "t", "account": "a", "repository": "r", "sink": "ci"},
                {"name": "t", "account": "a", "repository": "s", "sink": "ci"},
            ]
        )


def test_webhook_urls_must_be_http() -> None:
    with pytest.raises(ConfigError, match="http:// or https://"):
        settings(webhooks=[{"name": "ci", "url": "ftp://x/"}])


def test_secrets_never_show_in_the_settings_repr() -> None:
    configured = settings(
        webhooks=[{"name": "ci", "url": "http://x/", "secret": "hunter2"}],
        notifications={"token": "tok3n"},
    )
    text = repr(configured) + str(configured)
    assert "hunter2" not in text
    assert "tok3n" not in text
    hook = SinkSet.from_settings(configured).get("ci")
    assert hook is not None
    assert hook.secret is not None
    assert hook.secret.reveal() == "hunter2"


def test_delivery_lease_must_outlast_the_request_timeout() -> None:
    with pytest.raises(ConfigError, match="leaseSeconds must be longer"):
        settings(delivery={"timeoutSeconds": 30, "leaseSeconds": 10})


def test_per_account_rate_caps_override_the_default() -> None:
    configured = settings(
        delivery={
            "rateCap": {"perMinute": 60, "burst": 5},
            "accountRateCaps": {"hub": {"perMinute": 6}},
        }
    )
    assert configured.delivery.cap_for("gcr").burst == 5
    assert configured.delivery.cap_for("hub").per_minute == 6


def test_the_notification_token_can_come_from_the_environment() -> None:
    configured = parse_settings({}, environ={"REGWATCH_NOTIFICATIONS_TOKEN": "abc"})
    assert configured.notifications.token is not None
    assert configured.notifications.token.reveal() == "abc"
