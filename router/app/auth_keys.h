// The client key ring from its files: --auth-secret (one kid-less HS256 secret) plus, in
// --auth-keys-dir, one file per key named by its kid: `<kid>.pem` holds an ES256 (P-256) public
// key, `<kid>.secret` an HS256 secret. A directory suits a Kubernetes Secret or ConfigMap mounted
// as a volume: adding a key file, then retiring the old one, rotates keys with no restart (the
// replica re-reads the directory when it changes: Server's Reload timer in server.cc).
#pragma once

#include <string>
#include <variant>

#include "router/base/result.h"
#include "router/edge/token.h"

namespace vrouter::app {

// Dot files (Kubernetes' ..data links and the like) and other extensions are ignored. Fails,
// naming the file, on an unreadable file, a kid that is not an id, or a key that does not parse:
// a half-read ring would lock out every user of the bad key without a word.
base::Result<edge::TokenKeyRing> LoadClientKeys(const std::string& secret,
                                                const std::string& keys_dir);

}  // namespace vrouter::app
