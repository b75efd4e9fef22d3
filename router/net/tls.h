// Server TLS settings: TLS 1.2 and 1.3 only, forward-secret AEAD suites, ECDSA and/or RSA keys,
// stateless session tickets. The context is swapped when the certificate files change
// (cert-manager renews them): sessions already open keep the context they started with.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "router/base/mutex.h"
#include "router/base/result.h"

namespace boost::asio::ssl {
class context;
}

namespace vrouter::net {

struct ServerTls {
  std::shared_ptr<boost::asio::ssl::context> context;
  std::int64_t not_after_unix = 0;  // the earliest notAfter of the loaded certificates
};

// Loads PEM certificate chains and their private keys, pairwise (at most one per key type: one
// ECDSA and one RSA pair lets OpenSSL serve each client what it supports). Returns the context
// or a message saying which file is wrong and why.
base::Result<ServerTls> MakeServerTlsContext(const std::vector<std::string>& cert_files,
                                             const std::vector<std::string>& key_files);

// The context new wss connections use; Set() from the reloader, Get() from any listener thread.
class TlsContextHolder {
 public:
  std::shared_ptr<boost::asio::ssl::context> Get() const { return ctx_.load(); }
  void Set(std::shared_ptr<boost::asio::ssl::context> ctx) { ctx_.store(std::move(ctx)); }

 private:
  AtomicSharedPtr<boost::asio::ssl::context> ctx_{nullptr};
};

}  // namespace vrouter::net
