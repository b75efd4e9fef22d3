"""Reading one Janus: its Admin API (sessions, handles, per-handle media statistics) and a restart
sentinel on its Janus API.

Janus 1.1 has no bulk statistics call and no start time in `info`, so:
* statistics are `list_sessions` → `list_handles` per session → `handle_info` per handle
  (requests run a few at a time; a handle that closes between the calls is skipped);
* a restart is noticed through a session of the agent's own (the sentinel): created on the Janus
  API, kept alive at every poll, and lost, like every session, when Janus restarts.

`parse_handle_info` is pure (tested on recorded answers); the rest does HTTP.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import secrets
import urllib.error
import urllib.request
from typing import Any

from .counters import Counts, HandleSample, Role

VIDEOROOM = "janus.plugin.videoroom"


class JanusUnavailable(Exception):
    """Janus did not answer, or answered something that is not its API."""


class HandleGone(Exception):
    """The handle (or its session) closed between listing and reading it."""


def _int(value: Any) -> int:
    # Janus writes counters as JSON integers; anything else (missing, negative, a float, a string)
    # counts as zero rather than poisoning the totals.
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def parse_handle_info(session: int, handle: int, info: Any) -> HandleSample | None:
    """One `handle_info` answer's `info` → a sample; None for handles that are not VideoRoom's."""
    if not isinstance(info, dict) or info.get("plugin") != VIDEOROOM:
        return None
    specific = info.get("plugin_specific")
    specific = specific if isinstance(specific, dict) else {}
    role = {"publisher": Role.PUBLISHER, "subscriber": Role.SUBSCRIBER}.get(
        specific.get("type"), Role.OTHER
    )
    webrtc = info.get("webrtc")
    webrtc = webrtc if isinstance(webrtc, dict) else {}
    ice = webrtc.get("ice") if isinstance(webrtc.get("ice"), dict) else {}
    dtls = webrtc.get("dtls") if isinstance(webrtc.get("dtls"), dict) else {}
    connected = ice.get("state") in ("connected", "ready") and dtls.get("dtls-state") == "connected"

    packets_in = packets_out = bytes_in = bytes_out = 0
    media = webrtc.get("media")
    flowing = 0
    if isinstance(media, dict):
        for m in media.values():
            stats = m.get("stats") if isinstance(m, dict) else None
            if not isinstance(stats, dict):
                continue
            inbound = stats.get("in") if isinstance(stats.get("in"), dict) else {}
            outbound = stats.get("out") if isinstance(stats.get("out"), dict) else {}
            packets_in += _int(inbound.get("packets"))
            bytes_in += _int(inbound.get("bytes"))
            packets_out += _int(outbound.get("packets"))
            bytes_out += _int(outbound.get("bytes"))
            if m.get("type") in ("audio", "video"):
                flowing += 1

    streams = 0
    routed = specific.get("streams")
    if isinstance(routed, list):
        for s in routed:
            if not isinstance(s, dict) or s.get("type") not in ("audio", "video"):
                continue
            if role is Role.SUBSCRIBER:
                # A subscriber stream is routed when the plugin sends it (active, not paused).
                if s.get("active", True) and s.get("send", True) is not False:
                    streams += 1
            elif not s.get("disabled", False):
                streams += 1
    else:
        streams = flowing
    return HandleSample(
        session=session,
        handle=handle,
        role=role,
        counts=Counts(packets_in, packets_out, bytes_in, bytes_out),
        connected=connected,
        streams=streams,
    )


class JanusAdmin:
    """The Admin API (`/admin`) and the Janus API (`/janus`) of one Janus, over HTTP."""

    def __init__(
        self,
        admin_url: str,
        api_url: str,
        admin_secret: str,
        api_secret: str | None = None,
        timeout_s: float = 2.0,
        concurrency: int = 8,
    ) -> None:
        self._admin = admin_url.rstrip("/")
        self._api = api_url.rstrip("/")
        self._admin_secret = admin_secret
        self._api_secret = api_secret
        self._timeout = timeout_s
        self._limit = asyncio.Semaphore(concurrency)
        self._sentinel: int | None = None

    async def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "transaction": secrets.token_hex(6)}
        data = json.dumps(body).encode()

        def call() -> bytes:
            req = urllib.request.Request(
                url, data=data, headers={"content-type": "application/json"}, method="POST"
            )
            with urllib.request.urlopen(req, timeout=self._timeout) as res:  # noqa: S310 (config URL)
                return res.read()

        async with self._limit:
            try:
                raw = await asyncio.to_thread(call)
            except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as e:
                raise JanusUnavailable(f"{url}: {e}") from e
        try:
            answer = json.loads(raw)
        except ValueError as e:
            raise JanusUnavailable(f"{url}: not JSON: {e}") from e
        if not isinstance(answer, dict) or "janus" not in answer:
            raise JanusUnavailable(f"{url}: not a Janus answer")
        return answer

    async def _admin_call(self, path: str, request: str) -> dict[str, Any]:
        answer = await self._post(
            f"{self._admin}{path}", {"janus": request, "admin_secret": self._admin_secret}
        )
        if answer["janus"] == "error":
            error = answer.get("error")
            error = error if isinstance(error, dict) else {"reason": str(error)}
            # 458 no such session, 459 no such handle: it closed while we were reading.
            if error.get("code") in (458, 459):
                raise HandleGone(str(error))
            raise JanusUnavailable(f"admin {request}: {error}")
        return answer

    async def check_sentinel(self) -> bool:
        """Keeps the agent's own session alive; False when it is gone (Janus restarted, or was
        unreachable for longer than its session timeout), after opening a new one."""
        body: dict[str, Any] = {"janus": "keepalive"}
        if self._api_secret:
            body["apisecret"] = self._api_secret
        if self._sentinel is not None:
            answer = await self._post(f"{self._api}/{self._sentinel}", body)
            if answer["janus"] == "ack":
                return True
        create: dict[str, Any] = {"janus": "create"}
        if self._api_secret:
            create["apisecret"] = self._api_secret
        answer = await self._post(self._api, create)
        data = answer.get("data")
        if answer["janus"] != "success" or not isinstance(data, dict) or "id" not in data:
            raise JanusUnavailable(f"janus create: {answer.get('error')}")
        first = self._sentinel is None
        self._sentinel = data["id"]
        return first  # the first sentinel is no restart

    async def samples(self) -> list[HandleSample]:
        sessions = (await self._admin_call("", "list_sessions")).get("sessions") or []
        sessions = [s for s in sessions if isinstance(s, int) and s != self._sentinel]

        async def handles_of(session: int) -> list[int]:
            try:
                listed = await self._admin_call(f"/{session}", "list_handles")
            except HandleGone:
                return []
            return [h for h in listed.get("handles") or [] if isinstance(h, int)]

        async def sample(session: int, handle: int) -> HandleSample | None:
            try:
                answer = await self._admin_call(f"/{session}/{handle}", "handle_info")
            except HandleGone:
                return None
            return parse_handle_info(session, handle, answer.get("info"))

        listed = await asyncio.gather(*(handles_of(s) for s in sessions))
        pairs = [(s, h) for s, hs in zip(sessions, listed) for h in hs]
        found = await asyncio.gather(*(sample(s, h) for s, h in pairs))
        return [f for f in found if f is not None]
