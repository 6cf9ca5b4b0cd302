"""Sending at the pace a chat platform accepts, before it has to say "too fast".

Slack takes about one message per channel per interval (short bursts allowed) and has a
limit for the whole workspace; after a 429 it says how long everyone must wait. A `Pacer`
keeps a reservation per channel (GCRA: each channel's "theoretical arrival time"), an
optional workspace-wide rate, and a pause for everyone after a rate-limit answer.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
from collections.abc import Callable


class Later(Exception):
    """Not now: come back after `delay` seconds. A wait, not a failure."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"paced: retry in {delay:.1f}s")
        self.delay = delay


class Pacer:
    """Per-channel GCRA with a burst, an optional workspace rate, and a shared pause.

    `max_wait` bounds how long a caller may be held: a longer wait raises `Later` without
    taking a slot (the job goes back and comes later instead of holding its lease). `stop`,
    when set, ends a wait early with `Later`: the slot stays reserved, so the message keeps
    its turn. `clock` is a monotonic clock in seconds (the event loop's by default).
    """

    def __init__(self, interval: float = 0.0, burst: int = 1, rate: float = 0.0, *,
                 max_wait: float = math.inf, stop: asyncio.Event | None = None,
                 clock: Callable[[], float] | None = None, successor: bool = False) -> None:
        self.interval = interval
        self.burst = max(1, burst)
        self.rate = rate  # messages per second for the whole workspace; 0 = no pace
        self.max_wait = max_wait
        self._stop = stop
        self._clock = clock
        self._tat: dict[str, float] = {}  # channel -> when its next message may go
        self._workspace: list[float] = []  # when reserved messages go, in order
        self._paused_until = 0.0
        self._sent: dict[str, float] = {}  # channel -> when its last message actually went
        # a successor (a worker's pacer) may follow a worker that posted to any channel just
        # before it stopped or crashed: with no bursts allowed, each channel's first message
        # here keeps the interval from when this pacer was first used
        self._successor = successor
        self._began: float | None = None
        self.waiting = 0  # callers asleep in `slot` (their slots reserved), for the worker

    def now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def reserve(self, channel: str) -> float:
        """Take the channel's next slot and return how long to wait for it; raise `Later`
        (taking nothing) when that is longer than `max_wait`."""
        now = self.now()
        tat = max(self._tat.get(channel, now), now)  # theoretical arrival time
        at = max(now, tat - (self.burst - 1) * self.interval, self._paused_until)
        if self.rate > 0:  # the workspace-wide pace, when one is configured
            at = self._workspace_slot(at, now)
        wait = at - now
        if wait > self.max_wait:
            raise Later(wait)
        self._tat[channel] = max(tat, at) + self.interval  # the slot is ours
        if self.rate > 0:
            bisect.insort(self._workspace, at)
        return wait

    def _workspace_slot(self, at: float, now: float) -> float:
        """The first moment from `at` on at least 1/rate away from every message the
        workspace has reserved: a message held for its own busy channel (seconds ahead)
        does not hold up the messages of other channels due before it."""
        spacing = 1.0 / self.rate
        keep = bisect.bisect_left(self._workspace, now - spacing)
        if keep:
            del self._workspace[:keep]
        for reserved in self._workspace[bisect.bisect_left(self._workspace, at - spacing):]:
            if reserved >= at + spacing:
                break
            at = max(at, reserved + spacing)
        return at

    async def slot(self, channel: str) -> None:
        """Wait for the channel's next slot; a stop ends the wait with `Later`."""
        if self._began is None:
            self._began = self.now() if self._successor else -math.inf
        await self._sleep(self.reserve(channel))
        if self.burst == 1 and self.interval > 0:
            # slots are reserved ahead; a busy event loop may have sent the channel's last
            # message late (many waking at once after a pause), so keep the interval from
            # when it actually went
            # (the moment is taken before the wait: a message that wakes beside this one
            # sees it and keeps its own distance)
            last = self._sent.get(channel, self._began)
            at = max(self.now(), last + self.interval)
            self._sent[channel] = at
            await self._sleep(at - self.now())

    async def _sleep(self, wait: float) -> None:
        if wait <= 0:
            return
        self.waiting += 1
        try:
            if self._stop is None:
                await asyncio.sleep(wait)
                return
            # a stop ends the wait: the job goes back and keeps its turn for the next start
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=wait)
                raise Later(wait)
        finally:
            self.waiting -= 1

    def pause(self, seconds: float, channel: str | None = None) -> None:
        """The platform said "too many" and how long to wait: every channel waits, or only
        `channel` when the limit is the channel's own (a WeCom group's push webhook)."""
        if channel is not None:
            now = self.now()
            self._tat[channel] = max(self._tat.get(channel, now), now + seconds)
            return
        self._paused_until = max(self._paused_until, self.now() + seconds)


class Window:
    """Counted limits per key over sliding windows, e.g. WeCom's 20 messages a minute per
    push webhook, or 30 a minute and 1000 an hour per member for application messages.

    `take(key)` takes a slot and returns 0, or takes nothing and returns how many seconds
    until the oldest send in the fullest window leaves it. Counting here means the platform
    never has to say "too fast" (WeCom blocks a webhook for minutes, and drops application
    messages over the member limit without an error). `clock` is monotonic, in seconds.
    """

    def __init__(self, limits: tuple[tuple[int, float], ...],
                 clock: Callable[[], float]) -> None:
        self.limits = limits  # (count, seconds) pairs
        self.clock = clock
        self._span = max((seconds for _, seconds in limits), default=0.0)
        self._sent: dict[str, list[float]] = {}  # key -> send times within the longest span

    def take(self, key: str) -> float:
        now = self.clock()
        sent = [t for t in self._sent.get(key, ()) if t > now - self._span]
        wait = 0.0
        for count, seconds in self.limits:
            recent = [t for t in sent if t > now - seconds]
            if len(recent) >= count:
                wait = max(wait, recent[-count] + seconds - now)
        if wait <= 0:
            sent.append(now)
        if sent:
            self._sent[key] = sent
        else:
            self._sent.pop(key, None)
        return wait
