"""The three text forms of a moment: stored items, history entries, the wire."""

from datetime import UTC, datetime, timedelta, timezone

from chalicelib import timefmt

MOMENT = datetime(2025, 1, 21, 13, 44, 58, 159007, tzinfo=UTC)


def test_an_item_keeps_microseconds():
    assert timefmt.item(MOMENT) == "2025-01-21T13:44:58.159007Z"


def test_a_history_entry_keeps_milliseconds():
    assert timefmt.history(MOMENT) == "2025-01-21T13:44:58.159Z"


def test_the_wire_keeps_seconds():
    assert timefmt.wire(MOMENT) == "2025-01-21T13:44:58Z"


def test_an_unset_moment_stays_unset_on_the_wire():
    assert timefmt.wire(None) is None


def test_a_moment_in_another_zone_is_written_in_utc():
    paris = MOMENT.astimezone(timezone(timedelta(hours=1)))
    assert (timefmt.item(paris), timefmt.wire(paris)) == (
        timefmt.item(MOMENT),
        timefmt.wire(MOMENT),
    )


def test_items_sort_as_their_moments_do():
    moments = [MOMENT + timedelta(microseconds=n * 999_983) for n in range(50)]
    assert sorted(timefmt.item(m) for m in moments) == [timefmt.item(m) for m in moments]
