"""Writes the configuration of one Janus instance for the real-media tests: the VideoRoom plugin
only, HTTP (Janus API and Admin API) and WebSocket transports, ICE on one interface.

    python3 janus_config.py DIR INTERFACE_NAME ADDRESS RTP_BASE ADMIN_SECRET
"""

import os
import sys

PLUGINS = "/usr/lib/x86_64-linux-gnu/janus"
# Everything but the VideoRoom plugin, and transports other than HTTP and WebSockets.
DISABLED_PLUGINS = ",".join(
    f"libjanus_{p}.so"
    for p in (
        "audiobridge echotest recordplay sip nosip streaming textroom videocall voicemail "
        "duktape lua"
    ).split()
)
DISABLED_TRANSPORTS = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so"

ROOM = 1234
API_PORT = 8088  # Janus API over HTTP (the agent's restart sentinel)
ADMIN_PORT = 7088  # Admin API (the agent reads handles here)
WS_PORT = 8188  # Janus API over WebSocket (browsers)


def write(directory, interface, address, rtp_base, admin_secret):
    os.makedirs(directory, exist_ok=True)
    files = {
        "janus.jcfg": f"""general: {{
  configs_folder = "{directory}"
  plugins_folder = "{PLUGINS}/plugins"
  transports_folder = "{PLUGINS}/transports"
  events_folder = "{PLUGINS}/events"
  loggers_folder = "{PLUGINS}/loggers"
  debug_level = 4
  admin_secret = "{admin_secret}"
  interface = "{address}"
  server_name = "{interface}"
}}
media: {{
  rtp_port_range = "{rtp_base}-{rtp_base + 999}"
  no_media_timer = 1
}}
nat: {{
  full_trickle = true
  ignore_mdns = true
  ice_enforce_list = "{interface}"
}}
plugins: {{
  disable = "{DISABLED_PLUGINS}"
}}
transports: {{
  disable = "{DISABLED_TRANSPORTS}"
}}
events: {{
  broadcast = false
}}
loggers: {{
  disable = "libjanus_jsonlog.so"
}}
""",
        "janus.transport.http.jcfg": f"""general: {{
  json = "compact"
  base_path = "/janus"
  http = true
  port = {API_PORT}
}}
admin: {{
  admin_base_path = "/admin"
  admin_http = true
  admin_port = {ADMIN_PORT}
}}
""",
        "janus.transport.websockets.jcfg": f"""general: {{
  json = "compact"
  ws = true
  ws_port = {WS_PORT}
}}
admin: {{
  admin_ws = false
}}
""",
        "janus.plugin.videoroom.jcfg": f"""general: {{
}}
room-{ROOM}: {{
  description = "vrouter real-media test"
  publishers = 32
  bitrate = 300000
  audiocodec = "opus"
  videocodec = "vp8"
  fir_freq = 2
}}
""",
    }
    for name, text in files.items():
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            f.write(text)
    return os.path.join(directory, "janus.jcfg")


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    print(write(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]))
