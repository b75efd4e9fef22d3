// Server TLS settings: TLS 1.2 and 1.3 only, forward-secret AEAD suites, ECDSA or RSA keys.
#pragma once

#include <memory>
#include <string>
#include <variant>

namespace boost::asio::ssl {
class context;
}

namespace vrouter::net {

// Loads a PEM certificate chain and private key. Returns the context or a message saying which
// file is wrong and why.
std::variant<std::shared_ptr<boost::asio::ssl::context>, std::string> MakeServerTlsContext(
    const std::string& cert_file, const std::string& key_file);

}  // namespace vrouter::net
