"""When schedules fire: 5-field cron and rate expressions, in a time zone, across DST."""

from datetime import UTC, datetime

import pytest

from chalicelib.cron import BadRecurrence, Cron, Rate, fires_between, next_runs, zone

NEW_YORK = zone("America/New_York")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_a_daily_cron_fires_at_its_wall_clock_time_in_its_zone():
    daily = Cron.parse("30 9 * * *", zone("Europe/Berlin"))
    assert next_runs(daily, utc(2026, 12, 7), 2) == [
        utc(2026, 12, 7, 8, 30),
        utc(2026, 12, 8, 8, 30),
    ]


def test_a_daily_cron_keeps_its_wall_clock_time_across_the_spring_change():
    nine = Cron.parse("0 9 * * *", NEW_YORK)
    assert next_runs(nine, utc(2026, 3, 7), 2) == [utc(2026, 3, 7, 14), utc(2026, 3, 8, 13)]


def test_a_time_the_clocks_skip_fires_once_at_the_jump():
    half_past_two = Cron.parse("30 2 * * *", NEW_YORK)
    runs = next_runs(half_past_two, utc(2026, 3, 7), 3)
    # 7 March 02:30 EST; 8 March has no 02:30: 03:00 EDT (07:00 UTC); 9 March 02:30 EDT.
    assert runs == [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)]


def test_minutes_the_clocks_skip_fire_once_together_not_once_each():
    every_half_hour = Cron.parse("0,30 2,3 * * *", NEW_YORK)
    runs = next_runs(every_half_hour, utc(2026, 3, 8, 5), 3)
    assert runs == [utc(2026, 3, 8, 7), utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6)]


def test_a_time_the_clocks_repeat_fires_once_at_its_first_occurrence():
    half_past_one = Cron.parse("30 1 * * *", NEW_YORK)
    runs = next_runs(half_past_one, utc(2026, 10, 31, 12), 2)
    # 1 November: 01:30 EDT (05:30 UTC) comes first; 01:30 EST an hour later does not fire.
    assert runs == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


def test_day_of_week_is_read_in_the_schedules_zone():
    weekdays = Cron.parse("0 20 * * mon-fri", NEW_YORK)
    # Friday 4 December 20:00 New York is Saturday 01:00 UTC; the next is Monday's.
    assert next_runs(weekdays, utc(2026, 12, 4, 12), 2) == [
        utc(2026, 12, 5, 1),
        utc(2026, 12, 8, 1),
    ]


def test_when_both_day_fields_are_restricted_either_matches():
    first_or_monday = Cron.parse("0 0 1 * mon", zone("UTC"))
    runs = next_runs(first_or_monday, utc(2026, 11, 29), 3)
    assert runs == [utc(2026, 11, 30), utc(2026, 12, 1), utc(2026, 12, 7)]


def test_steps_ranges_lists_and_names_are_read():
    cron = Cron.parse("*/15 8-10/2 * jan,jul sun", zone("UTC"))
    assert cron.minutes == {0, 15, 30, 45}
    assert cron.hours == {8, 10}
    assert cron.months == {1, 7}
    assert cron.weekdays == {0}


def test_seven_is_sunday_too():
    assert Cron.parse("0 0 * * 7", zone("UTC")).weekdays == {0}


def test_a_date_that_never_comes_never_fires():
    assert next_runs(Cron.parse("0 0 30 feb *", zone("UTC")), utc(2026, 1, 1), 1) == []


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("61 * * * *", "minute field '61': 61 is outside 0-59"),
        ("* 24 * * *", "hour field '24': 24 is outside 0-23"),
        ("* * * *", "5 fields"),
        ("*/0 * * * *", "step '0'"),
        ("5-1 * * * *", "runs backwards"),
        ("* * * foo *", "month field 'foo'"),
    ],
)
def test_a_bad_cron_is_refused_naming_the_part_at_fault(expression, names):
    with pytest.raises(BadRecurrence, match=names):
        Cron.parse(expression, zone("UTC"))


def test_a_rate_fires_every_interval_from_its_anchor():
    every_five = Rate.parse("5 minutes", utc(2026, 1, 1))
    assert next_runs(every_five, utc(2026, 1, 1, 0, 7), 2) == [
        utc(2026, 1, 1, 0, 10),
        utc(2026, 1, 1, 0, 15),
    ]


def test_a_daily_rate_counts_absolute_time_across_dst():
    daily = Rate.parse("1 day", utc(2026, 3, 7, 12))
    assert next_runs(daily, utc(2026, 3, 7, 12), 2) == [utc(2026, 3, 8, 12), utc(2026, 3, 9, 12)]


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("5 minute", "write '5 minutes'"),
        ("1 hours", "write '1 hour'"),
        ("0 days", "at least 1"),
        ("2 weeks", "minute\\(s\\)\\|hour\\(s\\)\\|day\\(s\\)"),
        ("every 5 minutes", "minute\\(s\\)"),
    ],
)
def test_a_bad_rate_is_refused_in_eventbridges_words(expression, says):
    with pytest.raises(BadRecurrence, match=says):
        Rate.parse(expression, utc(2026, 1, 1))


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "/etc/localtime"])
def test_an_unknown_zone_is_refused(name):
    with pytest.raises(BadRecurrence, match="IANA time zone"):
        zone(name)


def test_fires_between_keeps_the_newest_and_counts_the_older_left_out():
    hourly = Cron.parse("0 * * * *", zone("UTC"))
    kept, left_out = fires_between(hourly, utc(2026, 1, 1), utc(2026, 1, 1, 23, 59), limit=3)
    assert kept == [utc(2026, 1, 1, 21), utc(2026, 1, 1, 22), utc(2026, 1, 1, 23)]
    assert left_out == 21


@pytest.fixture
def no_system_zone_data():
    """A runtime without /usr/share/zoneinfo (Amazon Linux 2023's images have none): zoneinfo
    then finds zones only in the `tzdata` package that requirements.txt ships."""
    import zoneinfo

    zoneinfo.reset_tzpath(to=[])
    zoneinfo.ZoneInfo.clear_cache()
    yield
    zoneinfo.reset_tzpath()
    zoneinfo.ZoneInfo.clear_cache()


def test_a_schedules_zone_is_found_without_the_systems_zone_data(no_system_zone_data):
    daily = Cron.parse("30 9 * * *", zone("Europe/Berlin"))
    assert next_runs(daily, utc(2026, 7, 7), 1) == [utc(2026, 7, 7, 7, 30)]  # summer time
