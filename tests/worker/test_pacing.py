"""The pace of outgoing messages: per-channel GCRA with a burst, a workspace rate, the pause
after a 429, the bound on a wait, and a stop ending a wait."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from bot.pacing import Later, Pacer, Window


class Tick:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_burst_goes_at_once_then_one_per_interval() -> None:
    tick = Tick()
    p = Pacer(interval=1.0, burst=3, clock=tick)
    assert [p.reserve("C1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert [p.reserve("C1") for _ in range(3)] == pytest.approx([1.0, 2.0, 3.0])


def test_a_quiet_channel_earns_its_burst_back() -> None:
    tick = Tick()
    p = Pacer(interval=1.0, burst=2, clock=tick)
    assert [p.reserve("C1") for _ in range(3)] == pytest.approx([0.0, 0.0, 1.0])
    tick.t += 10
    assert [p.reserve("C1") for _ in range(2)] == [0.0, 0.0]


def test_channels_are_paced_independently() -> None:
    tick = Tick()
    p = Pacer(interval=1.0, burst=1, clock=tick)
    assert p.reserve("C1") == 0.0
    assert p.reserve("C1") == pytest.approx(1.0)
    assert p.reserve("C2") == 0.0


def test_a_pause_after_a_429_holds_every_channel() -> None:
    tick = Tick()
    p = Pacer(interval=1.0, burst=3, clock=tick)
    p.pause(5.0)
    assert p.reserve("C1") == pytest.approx(5.0)
    assert p.reserve("C2") == pytest.approx(5.0)
    p.pause(2.0)  # a shorter pause does not cut a longer one short
    assert p.reserve("C3") == pytest.approx(5.0)
    tick.t += 5
    assert p.reserve("C4") == 0.0


def test_the_workspace_rate_spaces_messages_across_channels() -> None:
    tick = Tick()
    p = Pacer(interval=1.0, burst=3, rate=4.0, clock=tick)
    waits = [p.reserve(f"C{i}") for i in range(4)]
    assert waits == pytest.approx([0.0, 0.25, 0.5, 0.75])
    assert Pacer(interval=1.0, burst=3, clock=tick).reserve("C9") == 0.0  # no rate: no pace


def test_a_wait_longer_than_allowed_raises_later_and_takes_no_slot() -> None:
    tick = Tick()
    p = Pacer(interval=10.0, burst=1, max_wait=5.0, clock=tick)
    assert p.reserve("C1") == 0.0
    with pytest.raises(Later) as caught:
        p.reserve("C1")
    assert caught.value.delay == pytest.approx(10.0)
    tick.t += 6  # the refused reservation did not push the channel's turn further out
    assert p.reserve("C1") == pytest.approx(4.0)


async def test_slot_waits_for_the_turn() -> None:
    p = Pacer(interval=0.2, burst=1)
    began = time.monotonic()
    await p.slot("C1")
    await p.slot("C1")
    assert time.monotonic() - began >= 0.18


async def test_a_stop_ends_a_wait_with_later_and_keeps_the_turn() -> None:
    stop = asyncio.Event()
    p = Pacer(interval=30.0, burst=1, stop=stop)
    await p.slot("C1")
    waiting = asyncio.create_task(p.slot("C1"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    began = time.monotonic()
    stop.set()
    with pytest.raises(Later):
        await waiting
    assert time.monotonic() - began < 5
    # the interrupted message kept its slot: the next one queues behind it
    assert p.reserve("C1") == pytest.approx(60.0, abs=1.0)


def test_a_window_counts_each_key_over_every_span() -> None:
    """WeCom's member limit: 30 a minute and 1000 an hour, each key on its own."""
    tick = Tick()
    w = Window(((30, 60.0), (1000, 3600.0)), tick)
    assert [w.take("li") for _ in range(30)] == [0.0] * 30
    assert w.take("li") == pytest.approx(60.0)  # the 31st waits for the 1st to leave
    assert w.take("wang") == 0.0  # another member is not held up
    tick.t += 30
    assert w.take("li") == pytest.approx(30.0)  # a refused take took nothing
    tick.t += 30
    assert w.take("li") == 0.0
    # the longer span holds too: 3 in 100 s, though each 10 s allows 2
    w = Window(((2, 10.0), (3, 100.0)), tick)
    start = tick.t
    assert [w.take("k"), w.take("k")] == [0.0, 0.0]
    assert w.take("k") == pytest.approx(10.0)
    tick.t += 10
    assert w.take("k") == 0.0
    tick.t += 10
    assert w.take("k") == pytest.approx(start + 100.0 - tick.t)  # the hour-like span
    tick.t = start + 100.0
    assert w.take("k") == 0.0


def test_a_message_held_for_its_busy_channel_does_not_hold_up_other_channels() -> None:
    """The workspace pace spaces messages by when they go: one reserved seconds ahead in
    its own busy channel leaves the workspace free until then."""
    tick = Tick()
    p = Pacer(interval=1.0, burst=1, rate=4.0, clock=tick)
    assert p.reserve("CDUTY") == 0.0
    assert p.reserve("CDUTY") == pytest.approx(1.0)
    assert p.reserve("CDUTY") == pytest.approx(2.0)
    assert p.reserve("C1") == pytest.approx(0.25)
    assert p.reserve("C2") == pytest.approx(0.5)
    assert p.reserve("C3") == pytest.approx(0.75)
    assert p.reserve("C4") == pytest.approx(1.25)  # 1.0 is the duty channel's


async def test_a_workers_pacer_keeps_the_interval_after_a_predecessors_last_post() -> None:
    """A worker started after another one stopped or crashed cannot know when that one last
    posted to a channel: with no bursts allowed, its first message to each channel waits
    one interval from its start; a plain pacer's first message goes at once."""
    loop = asyncio.get_running_loop()
    plain, successor = Pacer(interval=0.2, burst=1), Pacer(interval=0.2, burst=1,
                                                           successor=True)
    began = loop.time()
    await plain.slot("C1")
    plain_took = loop.time() - began
    began = loop.time()
    await successor.slot("C1")
    assert loop.time() - began >= 0.19 > plain_took


async def test_messages_waking_together_keep_their_channels_interval() -> None:
    p = Pacer(interval=0.1, burst=1)
    loop = asyncio.get_running_loop()
    sent: list[float] = []

    async def one() -> None:
        await p.slot("C1")
        sent.append(loop.time())

    await asyncio.gather(*(one() for _ in range(4)))
    assert len(sent) == 4 and all(b - a >= 0.099 for a, b in itertools.pairwise(sent))
