"""In-memory fakes: a clock tests move by hand and a recording messenger; helpers that run
a worker and read what it sent."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from bot.messages import Button, Message
from bot.services.base import AppContext
from bot.services.messenger import DeliveryError, Posted
from bot.worker import Worker


class Clock:
    """A clock tests move by hand; starts on an ordinary Chinese working day."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # Tue 10:00 Shanghai

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now


@dataclass
class Sent:
    kind: str  # post | dm | update
    target: str
    message: Message
    thread_ts: str | None = None
    key: str | None = None
    ts: str = ""

    @property
    def text(self) -> str:
        return self.message.text

    @property
    def buttons(self) -> list[Button]:
        return list(self.message.buttons)

    @property
    def card(self) -> Message | None:
        """The message when it is a case card (the only titled message a group gets)."""
        return self.message if self.message.title else None

    def field(self, label: str) -> str | None:
        """A card field's value by its (English) label."""
        for sec in self.message.sections:
            for f in sec.fields:
                if f.label == label:
                    return f.value
        return None


@dataclass
class RecordingMessenger:
    """In-memory Messenger for service and worker tests; can fail on demand."""

    sent: list[Sent] = field(default_factory=list)
    failures: list[DeliveryError] = field(default_factory=list)
    counter: int = 0
    uploads: list[tuple[str, str, bytes, str | None]] = field(default_factory=list)
    homes: list[tuple[str, Message]] = field(default_factory=list)

    def _maybe_fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    def _ts(self) -> str:
        self.counter += 1
        return f"1700000000.{self.counter:06d}"

    async def post(self, channel: str, message: Message, *, thread_ts: str | None = None,
                   key: str | None = None) -> Posted:
        self._maybe_fail()
        ts = self._ts()
        if channel.startswith("DM-"):
            self.sent.append(Sent("dm", channel[3:], message, thread_ts, key, ts))
        else:
            self.sent.append(Sent("post", channel, message, thread_ts, key, ts))
        return Posted(channel, ts)

    async def find(self, channel: str, key: str, *, thread_ts: str | None = None
                   ) -> Posted | None:
        for s in self.sent:
            if s.key == key:
                return Posted(channel, s.ts)
        return None

    async def dm_channel(self, user_id: str) -> str:
        return "DM-" + user_id

    async def publish_home(self, user_id: str, home: Message) -> None:
        self.homes.append((user_id, home))

    async def upload(self, channel: str, filename: str, content: bytes, *, title: str,
                     thread_ts: str | None = None) -> None:
        self.uploads.append((channel, filename, content, thread_ts))

    async def update(self, channel: str, ts: str, message: Message) -> None:
        self._maybe_fail()
        self.sent.append(Sent("update", channel, message, ts))

    def link(self, channel: str, ts: str) -> str:
        return f"https://example.test/{channel}/{ts}"

    def texts(self, kind: str | None = None, target: str | None = None) -> list[str]:
        return [s.text for s in self.sent
                if (kind is None or s.kind == kind) and (target is None or s.target == target)]


def with_settings(ctx: AppContext, **changes: object) -> AppContext:
    return replace(ctx, settings=replace(ctx.settings, **changes))  # type: ignore[arg-type]


async def drain(worker: Worker, rounds: int = 2) -> None:
    """Run what is due now (more than once: a first pass can queue follow-ups due now)."""
    for _ in range(rounds):
        await worker.run_once()


def notices(m: RecordingMessenger, word: str) -> list[tuple[str, str]]:
    """Who got a non-card message containing `word`, as (kind, target) pairs."""
    return [(s.kind, s.target) for s in m.sent if word in s.text and s.card is None]


REF = re.compile(r"\bCS-\d+\b")


def final_notices(m: RecordingMessenger) -> dict[tuple[str, str], str]:
    """Each non-card message as it reads now (its last update), by (recipient, ts); a DM's
    recipient is the user."""
    out: dict[tuple[str, str], str] = {}
    for s in m.sent:
        if s.card is not None:
            continue
        if s.kind == "update":  # recorded with the updated message's ts as `thread_ts`
            where = (s.target.removeprefix("DM-"), s.thread_ts or "")
            if where in out:
                out[where] = s.text
        elif s.thread_ts is None:
            out[(s.target, s.ts)] = s.text
    return out


def notice_refs(m: RecordingMessenger, mark: str = "breach") -> dict[str, Counter[str]]:
    """Per recipient, how often each case is listed with `<mark:{mark}>` (a breach or a
    near-breach warning) across the messages as they read now, digests included."""
    out: dict[str, Counter[str]] = {}
    for (who, _), text in final_notices(m).items():
        for line in text.splitlines():
            if f"<mark:{mark}>" in line and (ref := REF.search(line)):
                out.setdefault(who, Counter())[ref.group()] += 1
    return out
