"""Server-wide monotonic counters from Janus's per-handle statistics (pure: no I/O).

Janus counts packets and bytes per handle (per PeerConnection), and a handle's counters vanish with
the handle. vrouter wants process-wide counters that only go up (PROTOCOL.md §14.4.2), so the agent
keeps its own totals and adds, at every poll, what each handle counted since the previous poll:

* a handle seen before: the difference from its previous sample;
* a handle not seen before: everything it has counted (it was created since the previous poll,
  or this is the first poll);
* a handle whose counter went down (Janus restarted its media, e.g. a renegotiation): its new
  value, counted since that restart;
* a handle that vanished: nothing more (what it counted between the last poll and its closing is
  lost: an undercount of at most one interval of one handle, never a decrease).

A Janus restart loses every handle at once; `reset()` starts the totals over from zero, which the
router reads as the counter reset of a restarted server (§14.7). Totals never exceed 2^53 - 1 (the
protocol's limit, so that JavaScript tools read them exactly): one that would is a reset too.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Iterable

MAX_COUNTER = 2**53 - 1


class Role(enum.Enum):
    PUBLISHER = "publisher"  # a VideoRoom participant: media comes in
    SUBSCRIBER = "subscriber"  # media goes out to a viewer
    OTHER = "other"


@dataclasses.dataclass(frozen=True)
class Counts:
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(
            self.packets_in + other.packets_in,
            self.packets_out + other.packets_out,
            self.bytes_in + other.bytes_in,
            self.bytes_out + other.bytes_out,
        )

    def fields(self) -> tuple[int, int, int, int]:
        return (self.packets_in, self.packets_out, self.bytes_in, self.bytes_out)


@dataclasses.dataclass(frozen=True)
class HandleSample:
    """One Janus handle as one Admin API `handle_info` showed it."""

    session: int
    handle: int
    role: Role
    counts: Counts
    # ICE connected/ready and DTLS connected: a PeerConnection that can carry media.
    connected: bool
    # Streams (m-lines) the VideoRoom routes through this handle: a publisher's active media
    # streams, or the streams a subscriber is being sent (the plugin's routing, not what left).
    streams: int

    @property
    def key(self) -> tuple[int, int]:
        return (self.session, self.handle)


@dataclasses.dataclass(frozen=True)
class Report:
    """The counter part of one `stats` message."""

    peers: int
    media_peers: int
    counts: Counts
    streams_in: int
    streams_out: int


def _delta(now: int, before: int | None) -> int:
    if before is None or now < before:
        return max(now, 0)
    return now - before


class ServerCounters:
    """Accumulates handle samples into monotonic server-wide totals."""

    def __init__(self) -> None:
        self._totals = Counts()
        self._last: dict[tuple[int, int], Counts] = {}
        # Subscriber handles Janus has sent at least one packet to: only those count in
        # streams_out (see ingest).
        self._sending: set[tuple[int, int]] = set()

    @property
    def totals(self) -> Counts:
        return self._totals

    def reset(self) -> None:
        """Janus restarted: every handle is gone and the totals start over."""
        self._totals = Counts()
        self._last = {}
        self._sending = set()

    def ingest(self, samples: Iterable[HandleSample]) -> Report:
        """Adds one poll's samples. A subscriber's streams count in `streams_out` from the first
        packet Janus sent it: a subscription that is still starting (ICE and DTLS up, the plugin
        not relaying yet) is not yet something the server should be forwarding, and counting it
        would make a healthy server look like a black hole while people arrive. A subscription
        that has sent and then stops sending keeps counting: that is the failure to catch."""
        seen: dict[tuple[int, int], Counts] = {}
        sending = {k for k in self._sending if k in self._last}
        added = [0, 0, 0, 0]
        peers = media_peers = streams_in = streams_out = 0
        for s in samples:
            if s.key in seen:
                continue  # a handle listed twice in one poll counts once
            before = self._last.get(s.key)
            deltas = [
                _delta(now, None if before is None else prev)
                for now, prev in zip(s.counts.fields(), (before or Counts()).fields())
            ]
            for i, d in enumerate(deltas):
                added[i] += d
            seen[s.key] = s.counts
            if s.counts.packets_out > 0:
                sending.add(s.key)
            if s.role is Role.PUBLISHER:
                # A participant is a user whose home this server is (the router's unit of load).
                peers += 1
                if s.connected and (deltas[0] > 0 or deltas[2] > 0):
                    media_peers += 1
                if s.connected:
                    streams_in += s.streams
            elif s.role is Role.SUBSCRIBER and s.connected and s.key in sending:
                streams_out += s.streams
        self._last = seen
        self._sending = {k for k in sending if k in seen}
        totals = self._totals + Counts(*added)
        if max(totals.fields()) > MAX_COUNTER:
            # Once in centuries at real rates: start over, which the router reads as a reset.
            totals = Counts(*(min(d, MAX_COUNTER) for d in added))
        self._totals = totals
        return Report(
            peers=peers,
            media_peers=media_peers,
            counts=totals,
            streams_in=streams_in,
            streams_out=streams_out,
        )
