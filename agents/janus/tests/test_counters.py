"""The agent's pure logic: counters accumulated from per-handle samples, the Admin API parser, the
CPU parsers and the settings."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from vrouter_janus_agent import config  # noqa: E402
from vrouter_janus_agent.counters import (  # noqa: E402
    MAX_COUNTER,
    Counts,
    HandleSample,
    Role,
    ServerCounters,
)
from vrouter_janus_agent.host_cpu import busy_share, parse_pid_stat, parse_proc_stat  # noqa: E402
from vrouter_janus_agent.janus_admin import parse_handle_info  # noqa: E402


def pub(handle, packets_in, bytes_in=None, session=1, connected=True, streams=2):
    return HandleSample(session, handle, Role.PUBLISHER,
                        Counts(packets_in, 0, bytes_in if bytes_in is not None else packets_in * 1000, 0),
                        connected, streams)


def sub(handle, packets_out, session=2, connected=True, streams=2):
    return HandleSample(session, handle, Role.SUBSCRIBER, Counts(0, packets_out, 0, packets_out * 1000),
                        connected, streams)


class ServerCountersTest(unittest.TestCase):
    def test_first_poll_counts_everything_then_deltas(self):
        c = ServerCounters()
        r = c.ingest([pub(1, 100), sub(2, 300)])
        self.assertEqual(r.counts, Counts(100, 300, 100_000, 300_000))
        r = c.ingest([pub(1, 150), sub(2, 450)])
        self.assertEqual(r.counts, Counts(150, 450, 150_000, 450_000))

    def test_a_new_handle_adds_all_it_counted(self):
        c = ServerCounters()
        c.ingest([pub(1, 100)])
        r = c.ingest([pub(1, 110), sub(7, 40)])
        self.assertEqual(r.counts.packets_in, 110)
        self.assertEqual(r.counts.packets_out, 40)

    def test_a_vanishing_handle_never_makes_a_counter_go_down(self):
        c = ServerCounters()
        c.ingest([pub(1, 100), sub(2, 300), sub(3, 300)])
        r = c.ingest([pub(1, 120), sub(2, 360)])  # handle 3 closed
        self.assertEqual(r.counts.packets_out, 660)
        r = c.ingest([pub(1, 130)])  # every subscriber gone
        self.assertEqual(r.counts.packets_out, 660)
        self.assertEqual(r.counts.packets_in, 130)
        r = c.ingest([])  # everyone gone
        self.assertEqual(r.counts, Counts(130, 660, 130_000, 660_000))
        self.assertEqual((r.peers, r.media_peers, r.streams_in, r.streams_out), (0, 0, 0, 0))

    def test_a_handle_whose_counter_went_down_restarted_its_media(self):
        c = ServerCounters()
        c.ingest([sub(2, 300)])
        r = c.ingest([sub(2, 20)])  # renegotiated: its stats start over
        self.assertEqual(r.counts.packets_out, 320)

    def test_same_handle_id_in_another_session_is_another_handle(self):
        c = ServerCounters()
        r = c.ingest([pub(5, 10, session=1), pub(5, 20, session=2)])
        self.assertEqual(r.counts.packets_in, 30)

    def test_a_handle_listed_twice_counts_once(self):
        c = ServerCounters()
        r = c.ingest([pub(5, 10), pub(5, 10)])
        self.assertEqual(r.counts.packets_in, 10)
        self.assertEqual(r.peers, 1)

    def test_janus_restart_resets_the_totals(self):
        c = ServerCounters()
        c.ingest([pub(1, 1000), sub(2, 3000)])
        c.reset()
        r = c.ingest([pub(9, 5)])  # new handles after the restart
        self.assertEqual(r.counts, Counts(5, 0, 5000, 0))
        self.assertLess(r.counts.packets_in, 1000, "the router must see the counters go down")

    def test_peers_media_peers_and_streams(self):
        c = ServerCounters()
        c.ingest([pub(1, 10), pub(2, 10), pub(3, 0, connected=False), sub(4, 5), sub(5, 5, connected=False)])
        r = c.ingest([
            pub(1, 20),  # media flowing
            pub(2, 10),  # connected, but nothing arrived this interval
            pub(3, 0, connected=False),  # a participant without a PeerConnection
            sub(4, 9),
            sub(5, 5, connected=False),
        ])
        self.assertEqual(r.peers, 3)
        self.assertEqual(r.media_peers, 1)
        self.assertEqual(r.streams_in, 4)  # publishers 1 and 2, audio + video each
        self.assertEqual(r.streams_out, 2)  # only the connected subscriber

    def test_a_subscription_counts_in_streams_out_from_its_first_packet_on(self):
        c = ServerCounters()
        r = c.ingest([pub(1, 100), sub(2, 0)])  # connected, the plugin not relaying yet
        self.assertEqual(r.streams_out, 0)
        r = c.ingest([pub(1, 200), sub(2, 50)])
        self.assertEqual(r.streams_out, 2)
        r = c.ingest([pub(1, 300), sub(2, 50)])  # stopped sending: still expected to forward
        self.assertEqual(r.streams_out, 2)
        c.reset()
        r = c.ingest([pub(1, 10), sub(2, 0)])
        self.assertEqual(r.streams_out, 0, "a restart forgets which subscriptions had started")

    def test_totals_never_pass_2_to_the_53(self):
        c = ServerCounters()
        c.ingest([pub(1, MAX_COUNTER - 10)])
        r = c.ingest([pub(1, MAX_COUNTER - 10), pub(2, 100)])
        self.assertLessEqual(max(r.counts.fields()), MAX_COUNTER)
        self.assertLess(r.counts.packets_in, MAX_COUNTER - 10, "reported as a reset")
        r2 = c.ingest([pub(1, MAX_COUNTER - 10), pub(2, 150)])
        self.assertGreaterEqual(r2.counts.packets_in, r.counts.packets_in, "monotonic again")

    def test_huge_handle_counters_are_clamped(self):
        c = ServerCounters()
        r = c.ingest([pub(1, 2**64)])
        self.assertLessEqual(max(r.counts.fields()), MAX_COUNTER)


# Shaped like Janus 1.1.2's `handle_info` (Admin API), trimmed.
PUBLISHER_INFO = {
    "session_id": 11, "handle_id": 22, "plugin": "janus.plugin.videoroom",
    "plugin_specific": {"type": "publisher", "room": 1234, "id": 5, "display": "alice",
                        "streams": [{"type": "audio", "mindex": 0, "mid": "0", "codec": "opus"},
                                    {"type": "video", "mindex": 1, "mid": "1", "codec": "vp8"}]},
    "webrtc": {
        "ice": {"state": "ready"}, "dtls": {"dtls-state": "connected"},
        "media": {
            "0": {"mid": "0", "type": "audio",
                  "stats": {"in": {"packets": 500, "bytes": 40000}, "out": {"packets": 0, "bytes": 0}}},
            "1": {"mid": "1", "type": "video",
                  "stats": {"in": {"packets": 900, "bytes": 700000}, "out": {"packets": 3, "bytes": 90}}},
        },
    },
}


class ParseHandleInfoTest(unittest.TestCase):
    def test_publisher(self):
        s = parse_handle_info(11, 22, PUBLISHER_INFO)
        self.assertEqual(s.role, Role.PUBLISHER)
        self.assertEqual(s.counts, Counts(1400, 3, 740000, 90))
        self.assertTrue(s.connected)
        self.assertEqual(s.streams, 2)

    def test_subscriber_counts_only_streams_being_sent(self):
        info = {**PUBLISHER_INFO, "plugin_specific": {"type": "subscriber", "streams": [
            {"type": "audio", "active": True, "send": True},
            {"type": "video", "active": True, "send": False},  # paused by the viewer
            {"type": "video", "active": False},  # its publisher left
            {"type": "data"},
        ]}}
        s = parse_handle_info(1, 2, info)
        self.assertEqual(s.role, Role.SUBSCRIBER)
        self.assertEqual(s.streams, 1)

    def test_not_connected(self):
        info = {**PUBLISHER_INFO, "webrtc": {"ice": {"state": "checking"}, "dtls": {"dtls-state": "created"}}}
        s = parse_handle_info(1, 2, info)
        self.assertFalse(s.connected)
        self.assertEqual(s.counts, Counts())

    def test_other_plugins_and_garbage_are_skipped_or_zero(self):
        self.assertIsNone(parse_handle_info(1, 2, {"plugin": "janus.plugin.echotest"}))
        self.assertIsNone(parse_handle_info(1, 2, None))
        self.assertIsNone(parse_handle_info(1, 2, []))
        weird = {"plugin": "janus.plugin.videoroom", "plugin_specific": "x",
                 "webrtc": {"ice": 3, "media": {"0": {"stats": {"in": {"packets": -5, "bytes": "9"}}},
                                                "1": None, "2": {"stats": {"in": {"packets": 1.5}}}}}}
        s = parse_handle_info(1, 2, weird)
        self.assertEqual(s.role, Role.OTHER)
        self.assertEqual(s.counts, Counts())
        self.assertFalse(s.connected)


class CpuTest(unittest.TestCase):
    def test_proc_stat(self):
        text = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n"
        self.assertEqual(parse_proc_stat(text), (150, 1000))
        self.assertIsNone(parse_proc_stat("intr 1 2 3\n"))
        self.assertIsNone(parse_proc_stat("cpu  x y\n"))
        self.assertEqual(busy_share((150, 1000), (250, 1200)), 0.5)
        self.assertEqual(busy_share((150, 1000), (150, 1000)), 0.0)
        self.assertEqual(busy_share(None, (1, 2)), 0.0)

    def test_pid_stat_with_spaces_in_the_name(self):
        fields = ["S"] + ["0"] * 10 + ["70", "30"] + ["0"] * 30
        self.assertEqual(parse_pid_stat("42 (janus (x) y) " + " ".join(fields)), 100)
        self.assertIsNone(parse_pid_stat("garbage"))


class ConfigTest(unittest.TestCase):
    BASE = ["--routers", "ws://r1:8080/v1/video-server,wss://r2:8443/v1/video-server",
            "--id", "janus-1", "--url", "wss://janus-1.example.net/", "--region", "eu",
            "--capacity", "200"]
    ENV = {"VROUTER_AGENT_JANUS_ADMIN_SECRET": "admin", "VROUTER_AGENT_VIDEO_SERVER_SECRET": "key"}

    def test_flags_and_environment(self):
        cfg = config.load(self.BASE, self.ENV)
        self.assertEqual(cfg.routers, ("ws://r1:8080/v1/video-server", "wss://r2:8443/v1/video-server"))
        self.assertEqual(cfg.capacity, 200)
        self.assertEqual(cfg.video_server_secret, "key")
        self.assertEqual(cfg.janus_admin, "http://127.0.0.1:7088/admin")
        env = {**self.ENV, "VROUTER_AGENT_CAPACITY": "50", "VROUTER_AGENT_REGION": "us"}
        cfg = config.load(self.BASE[:-4], env)
        self.assertEqual((cfg.capacity, cfg.region), (50, "us"))
        cfg = config.load(self.BASE, env)
        self.assertEqual(cfg.capacity, 200, "the flag wins")

    def test_secrets_from_files(self):
        files = {"/s/admin": "from-file\n", "/s/token": "tok\n"}
        cfg = config.load(self.BASE + ["--janus-admin-secret-file", "/s/admin", "--token-file", "/s/token"],
                          {}, read=files.__getitem__)
        self.assertEqual((cfg.janus_admin_secret, cfg.token, cfg.video_server_secret), ("from-file", "tok", None))

    def test_errors_are_typed_and_name_the_setting(self):
        def err(argv, env=None):
            with self.assertRaises(config.ConfigError) as e:
                config.load(argv, self.ENV if env is None else env, read=lambda p: (_ for _ in ()).throw(FileNotFoundError(2, "No such file")))
            return str(e.exception)

        self.assertIn("--id", err(["--routers", "ws://r/v1/video-server"]))
        self.assertIn("--capacity", err(self.BASE[:-1] + ["0"]))
        self.assertIn("--capacity", err(self.BASE[:-1] + ["many"]))
        self.assertIn("--routers", err(["--routers", "http://r/"] + self.BASE[2:]))
        self.assertIn("admin secret", err(self.BASE, {"VROUTER_AGENT_VIDEO_SERVER_SECRET": "k"}))
        self.assertIn("exactly one credential", err(self.BASE, {"VROUTER_AGENT_JANUS_ADMIN_SECRET": "a"}))
        self.assertIn("exactly one credential", err(self.BASE, {**self.ENV, "VROUTER_AGENT_TOKEN": "t"}))
        self.assertIn("cannot read", err(self.BASE + ["--token-file", "/nope"], {"VROUTER_AGENT_JANUS_ADMIN_SECRET": "a"}))
        self.assertIn("--id", err(self.BASE + ["--id", "a\x01b"]))
        self.assertIn("--backoff-max-ms", err(self.BASE + ["--backoff-base-ms", "500", "--backoff-max-ms", "100"]))

    def test_no_secret_flag_exists(self):
        flags = {s.flag for s in config.SETTINGS}
        self.assertFalse({"janus-admin-secret", "video-server-secret", "token"} & flags,
                         "secrets come from the environment or a file, never a flag (ps shows flags)")


if __name__ == "__main__":
    unittest.main()
