#include "router/net/tls.h"

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>

namespace vrouter::net {
namespace ssl = boost::asio::ssl;

namespace {
// TLS 1.2 suites (TLS 1.3 suites are OpenSSL's defaults, all AEAD): ECDHE only, AEAD only.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
}  // namespace

std::variant<std::shared_ptr<ssl::context>, std::string> MakeServerTlsContext(
    const std::string& cert_file, const std::string& key_file) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                       ssl::context::single_dh_use,
                   ec);
  if (ec) return "TLS options: " + ec.message();
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  // An idle connection keeps no 16 KiB read and write buffers: OpenSSL frees them between records
  // (most of a wss connection's memory otherwise).
  SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(ctx->native_handle(), kTls12Ciphers) != 1) {
    return std::string("TLS cipher list rejected by OpenSSL");
  }
  ctx->use_certificate_chain_file(cert_file, ec);
  if (ec) return "--tls-cert " + cert_file + ": " + ec.message();
  ctx->use_private_key_file(key_file, ssl::context::pem, ec);
  if (ec) return "--tls-key " + key_file + ": " + ec.message();
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    return "--tls-key " + key_file + " does not match --tls-cert " + cert_file;
  }
  return ctx;
}

}  // namespace vrouter::net
