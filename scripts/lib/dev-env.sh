# Sourced by scripts/run and scripts/demo: the development state in .dev/ (git-ignored), made on
# first use: a self-signed ECDSA certificate for 127.0.0.1/localhost, the client token key and the
# video-server credential key. Exports VROUTER_AUTH_SECRET and VROUTER_VIDEO_SERVER_SECRET.
mkdir -p .dev
if [[ ! -f .dev/cert.pem || ! -f .dev/key.pem ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout .dev/key.pem -out .dev/cert.pem -days 90 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
  chmod 600 .dev/key.pem
fi
if [[ ! -f .dev/auth-secret ]]; then
  (umask 077 && openssl rand -hex 32 > .dev/auth-secret)
fi
if [[ ! -f .dev/video-server-secret ]]; then
  (umask 077 && openssl rand -hex 32 > .dev/video-server-secret)
fi
export VROUTER_AUTH_SECRET VROUTER_VIDEO_SERVER_SECRET
VROUTER_AUTH_SECRET=$(cat .dev/auth-secret)
VROUTER_VIDEO_SERVER_SECRET=$(cat .dev/video-server-secret)
