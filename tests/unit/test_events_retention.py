"""The event retention setting: `regwatch.eventRetentionDays`, REGWATCH_EVENT_RETENTION_DAYS."""

from __future__ import annotations

from datetime import timedelta

import pytest

from regwatch.config.settings import EVENT_RETENTION_ENV, parse_settings
from regwatch.errors import ConfigError


def test_the_default_is_thirty_days() -> None:
    assert parse_settings({}, environ={}).event_retention == timedelta(days=30)


def test_the_config_file_sets_it_and_the_environment_wins() -> None:
    assert parse_settings({"eventRetentionDays": 7}, environ={}).event_retention_days == 7
    env = {EVENT_RETENTION_ENV: " 2.5 "}
    settings = parse_settings({"eventRetentionDays": 7}, environ=env)
    assert settings.event_retention == timedelta(days=2.5)


@pytest.mark.parametrize("raw", ["soon", "30d", "0", "-3", "0.5", "nan", "inf", "99999"])
def test_a_bad_environment_value_is_a_config_error_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match=EVENT_RETENTION_ENV) as err:
        parse_settings({}, environ={EVENT_RETENTION_ENV: raw})
    assert "days" in str(err.value)


def test_a_bad_config_value_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="eventRetentionDays"):
        parse_settings({"eventRetentionDays": 0}, environ={})


def test_an_empty_environment_value_counts_as_unset() -> None:
    settings = parse_settings({"eventRetentionDays": 9}, environ={EVENT_RETENTION_ENV: " "})
    assert settings.event_retention_days == 9
