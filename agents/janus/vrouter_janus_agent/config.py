"""The agent's settings: each one a flag with a VROUTER_AGENT_* environment equivalent (the flag
wins), validated into a typed Config. Secrets are read from the environment or from a file, never
from a flag: flags show in `ps`."""

from __future__ import annotations

import argparse
import dataclasses
import os
import urllib.parse
from typing import Callable, Mapping

ENV_PREFIX = "VROUTER_AGENT_"


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names it."""


@dataclasses.dataclass(frozen=True)
class Config:
    routers: tuple[str, ...]
    server_id: str
    public_url: str
    region: str
    capacity: int
    janus_admin: str
    janus_api: str
    janus_admin_secret: str
    janus_api_secret: str | None
    video_server_secret: str | None
    token: str | None
    token_ttl_s: int
    ca_file: str | None
    janus_pid: int | None
    log_reports: bool
    janus_timeout_ms: int
    backoff_base_ms: int
    backoff_max_ms: int


@dataclasses.dataclass(frozen=True)
class Setting:
    flag: str
    help: str
    default: str | None = None
    required: bool = False


SETTINGS = [
    Setting("routers", "vrouter video-server endpoints, comma-separated "
            "(ws[s]://host:port/v1/video-server); one is tried at a time, in a random rotation",
            required=True),
    Setting("id", "this video server's id (the token's sub)", required=True),
    Setting("url", "public URL clients connect their media to (Janus's WebSocket API)",
            required=True),
    Setting("region", "the server's region", required=True),
    Setting("capacity", "users this Janus is sized for", required=True),
    Setting("janus-admin", "Janus Admin API URL", "http://127.0.0.1:7088/admin"),
    Setting("janus-api", "Janus API URL over HTTP (the restart sentinel)",
            "http://127.0.0.1:8088/janus"),
    Setting("janus-admin-secret-file", "file holding Janus's admin_secret "
            "(or VROUTER_AGENT_JANUS_ADMIN_SECRET)"),
    Setting("janus-api-secret-file", "file holding Janus's api_secret, if it has one "
            "(or VROUTER_AGENT_JANUS_API_SECRET)"),
    Setting("video-server-secret-file", "file holding the router's video-server key; the agent "
            "mints a short-lived token per registration (or VROUTER_AGENT_VIDEO_SERVER_SECRET)"),
    Setting("token-file", "file holding a ready-made registration token, instead of the key "
            "(or VROUTER_AGENT_TOKEN)"),
    Setting("token-ttl-s", "lifetime of minted tokens, seconds", "600"),
    Setting("ca-file", "CA bundle to verify wss:// routers with (default: the system's)"),
    Setting("janus-pid", "report this process's CPU share instead of the host's (for a Janus "
            "that shares its machine)"),
    Setting("log-reports", "1: log every stats report sent (debugging)", "0"),
    Setting("janus-timeout-ms", "deadline of each Janus request", "2000"),
    Setting("backoff-base-ms", "first reconnect delay ceiling (full jitter)", "250"),
    Setting("backoff-max-ms", "largest reconnect delay ceiling", "10000"),
]


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.upper().replace("-", "_")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vrouter-janus-agent",
        description="Registers one Janus (VideoRoom) with vrouter and reports its media counters "
        "(vrouter.video.v1). Every flag has an environment equivalent, shown in brackets.",
    )
    for s in SETTINGS:
        default = f" (default {s.default})" if s.default is not None else ""
        p.add_argument(f"--{s.flag}", help=f"{s.help}{default} [{env_name(s.flag)}]")
    return p


def _secret(env: Mapping[str, str], file_flag: str | None, env_var: str,
            read: Callable[[str], str]) -> str | None:
    if file_flag:
        try:
            value = read(file_flag).strip()
        except OSError as e:
            raise ConfigError(f"cannot read {file_flag}: {e.strerror}") from e
        if not value:
            raise ConfigError(f"{file_flag} is empty")
        return value
    value = env.get(env_var, "").strip()
    return value or None


def _int(name: str, text: str, lo: int, hi: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"--{name} must be an integer, not {text!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"--{name} must be in [{lo}, {hi}], not {value}")
    return value


def _url(name: str, text: str, schemes: tuple[str, ...]) -> str:
    parsed = urllib.parse.urlparse(text)
    if parsed.scheme not in schemes or not parsed.hostname:
        raise ConfigError(f"--{name}: {text!r} is not a {'/'.join(schemes)} URL")
    return text


def _id(name: str, text: str, limit: int) -> str:
    if not 1 <= len(text.encode()) <= limit or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ConfigError(f"--{name} must be 1-{limit} bytes without control characters")
    return text


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def load(argv: list[str], env: Mapping[str, str] | None = None,
         read: Callable[[str], str] = _read) -> Config:
    env = os.environ if env is None else env
    args = vars(parser().parse_args(argv))
    values: dict[str, str | None] = {}
    for s in SETTINGS:
        given = args[s.flag.replace("-", "_")]
        if given is None:
            given = env.get(env_name(s.flag)) or s.default
        if given is None and s.required:
            raise ConfigError(f"--{s.flag} (or {env_name(s.flag)}) is required")
        values[s.flag] = given

    routers = tuple(r.strip() for r in (values["routers"] or "").split(",") if r.strip())
    if not routers:
        raise ConfigError("--routers names no router")
    for r in routers:
        _url("routers", r, ("ws", "wss"))
    janus_admin_secret = _secret(env, values["janus-admin-secret-file"],
                                 env_name("janus-admin-secret"), read)
    if janus_admin_secret is None:
        raise ConfigError("Janus's admin secret is required: --janus-admin-secret-file or "
                          f"{env_name('janus-admin-secret')}")
    video_secret = _secret(env, values["video-server-secret-file"],
                           env_name("video-server-secret"), read)
    token = _secret(env, values["token-file"], env_name("token"), read)
    if (video_secret is None) == (token is None):
        raise ConfigError("give exactly one credential: the video-server key "
                          f"(--video-server-secret-file or {env_name('video-server-secret')}) or a "
                          f"token (--token-file or {env_name('token')})")
    backoff_base = _int("backoff-base-ms", values["backoff-base-ms"] or "", 1, 600_000)
    backoff_max = _int("backoff-max-ms", values["backoff-max-ms"] or "", 1, 3_600_000)
    if backoff_max < backoff_base:
        raise ConfigError("--backoff-max-ms must be at least --backoff-base-ms")
    return Config(
        routers=routers,
        server_id=_id("id", values["id"] or "", 128),
        public_url=_id("url", values["url"] or "", 1024),
        region=_id("region", values["region"] or "", 64),
        capacity=_int("capacity", values["capacity"] or "", 1, 1_000_000),
        janus_admin=_url("janus-admin", values["janus-admin"] or "", ("http", "https")),
        janus_api=_url("janus-api", values["janus-api"] or "", ("http", "https")),
        janus_admin_secret=janus_admin_secret,
        janus_api_secret=_secret(env, values["janus-api-secret-file"],
                                 env_name("janus-api-secret"), read),
        video_server_secret=video_secret,
        token=token,
        token_ttl_s=_int("token-ttl-s", values["token-ttl-s"] or "", 60, 86_400 * 30),
        ca_file=values["ca-file"],
        janus_pid=(_int("janus-pid", values["janus-pid"], 1, 2**22)
                   if values["janus-pid"] is not None else None),
        janus_timeout_ms=_int("janus-timeout-ms", values["janus-timeout-ms"] or "", 50, 60_000),
        log_reports=_int("log-reports", values["log-reports"] or "", 0, 1) == 1,
        backoff_base_ms=backoff_base,
        backoff_max_ms=backoff_max,
    )
