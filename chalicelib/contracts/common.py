"""Formatting shared by the contract views."""

from __future__ import annotations

from datetime import datetime


def iso_seconds(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def unix_seconds(moment: datetime) -> int:
    return int(moment.timestamp())
