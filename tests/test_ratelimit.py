"""The client-side limiter and 429 header parsing, on a fake clock."""

from __future__ import annotations

import pytest

from bot.sonoran.ratelimit import SlidingWindowLimiter, retry_after_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_window_and_reserve() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(4, clock=clock)
    assert await limiter.acquire(0, reserve=3) == 0.0  # a member's request: 1 of 4 is theirs
    clock.now += 5
    assert await limiter.acquire(0, reserve=3) == pytest.approx(55)  # refused: the rest is the feed's
    for _ in range(3):
        assert await limiter.acquire(0) == 0.0  # the feed still gets its three
    assert await limiter.acquire(0) == pytest.approx(55)  # the window is full for everyone
    clock.now += 55
    assert await limiter.acquire(0) == 0.0


async def test_everything_reserved_waits_a_window() -> None:
    limiter = SlidingWindowLimiter(3, clock=Clock())
    assert await limiter.acquire(0, reserve=3) == 60


async def test_block_for_holds_everyone() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(100, clock=clock)
    limiter.block_for(12)
    assert await limiter.acquire(5) == pytest.approx(12)
    clock.now += 12
    assert await limiter.acquire(5) == 0.0


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"Retry-After": "7"}) == 7
    assert retry_after_seconds({"Retry-After": "Thu, 01 Jan 1970 00:01:40 GMT"}, now=90) == pytest.approx(10)
    assert retry_after_seconds({"X-RateLimit-Reset": "2000000010"}, now=2_000_000_000) == pytest.approx(10)
    assert retry_after_seconds({"RateLimit-Reset": "3"}) == 3
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_take_counts_several_slots_without_waiting() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(3, clock=clock)
    assert limiter.take(2) == 0.0
    clock.now += 10
    assert limiter.take(2) == 50.0  # the first two leave the window at 60 s; nothing is taken
    assert limiter.take(1) == 0.0
    assert limiter.take(4) == 60.0  # more than the window ever holds
    clock.now += 51
    assert limiter.take(2) == 0.0
