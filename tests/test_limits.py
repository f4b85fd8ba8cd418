"""The desk's per-member limits on their own clock: a share of a budget and a cooldown."""

from __future__ import annotations

import pytest

from bot.desk.limits import MemberShare
from bot.messages import WaitBeforeAgain


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_cooldown_longer_than_a_minute_is_kept_whole() -> None:
    clock = Clock()
    share = MemberShare(cooldown=300, per_minute=2, clock=clock)
    share.check(1, "panic off")
    share.spent(1, "panic off")
    for minutes in (1, 2, 4):
        clock.now = 1000.0 + 60 * minutes + 1
        with pytest.raises(WaitBeforeAgain):
            share.check(1, "panic off")
        share.check(1, f"other {minutes}")  # other writes are this member's to make
        share.spent(1, f"other {minutes}")
    clock.now = 1000.0 + 301
    share.check(1, "panic off")


def test_a_members_share_counts_the_last_minute_only() -> None:
    clock = Clock()
    share = MemberShare(cooldown=120, per_minute=2, clock=clock)
    share.spent(1, "a")
    share.spent(1, "b")
    with pytest.raises(WaitBeforeAgain):
        share.check(1, "c")
    share.check(2, "c")  # another member's share is untouched
    clock.now += 61
    share.check(1, "c")  # a minute on: the share has room, though the cooldown window is longer
