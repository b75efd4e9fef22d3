#include "router/net/tls.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ssl/context.hpp>
#include <ctime>

#include "router/base/result.h"

namespace vrouter::net {
namespace ssl = boost::asio::ssl;

namespace {
// TLS 1.2 suites (TLS 1.3 suites are OpenSSL's defaults, all AEAD): ECDHE only, AEAD only.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::int64_t NotAfter(X509* cert) {
  const ASN1_TIME* t = X509_get0_notAfter(cert);
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<std::int64_t>(timegm(&tm));
}
}  // namespace

base::Result<ServerTls> MakeServerTlsContext(const std::vector<std::string>& cert_files,
                                             const std::vector<std::string>& key_files) {
  if (cert_files.empty() || cert_files.size() != key_files.size()) {
    return base::Fail(std::string("TLS needs as many --tls-key files as --tls-cert files"));
  }
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                       ssl::context::single_dh_use,
                   ec);
  if (ec) return base::Fail("TLS options: " + ec.message());
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  // An idle connection keeps no 16 KiB read and write buffers: OpenSSL frees them between records
  // (most of a wss connection's memory otherwise).
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
  // Resumption by stateless tickets only (OpenSSL's default ticket keys, per context): no
  // server-side session cache growing with the connection count.
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
  // No TLS 1.2 renegotiation: a handshake in the middle of a stream would let a write step read
  // the socket under a waiting read (TlsStream), and it is a DoS lever besides.
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1) {
    return base::Fail(std::string("TLS cipher list rejected by OpenSSL"));
  }
  ServerTls out;
  int key_types_seen = 0;
  for (std::size_t i = 0; i < cert_files.size(); ++i) {
    const std::string& cert = cert_files[i];
    const std::string& key = key_files[i];
    ctx->use_certificate_chain_file(cert, ec);
    if (ec) return base::Fail("--tls-cert " + cert + ": " + ec.message());
    ctx->use_private_key_file(key, ssl::context::pem, ec);
    if (ec) return base::Fail("--tls-key " + key + ": " + ec.message());
    if (SSL_CTX_check_private_key(native) != 1) {
      return base::Fail("--tls-key " + key +
                        std::string(" does not match --tls-cert ").append(cert));
    }
    X509* leaf = SSL_CTX_get0_certificate(native);  // the pair just loaded
    EVP_PKEY* pub = leaf == nullptr ? nullptr : X509_get0_pubkey(leaf);
    const int type = pub == nullptr ? 0 : EVP_PKEY_get_base_id(pub);
    if (type != EVP_PKEY_EC && type != EVP_PKEY_RSA) {
      return base::Fail("--tls-cert " + cert + ": the key must be ECDSA or RSA");
    }
    const int bit = type == EVP_PKEY_EC ? 1 : 2;
    if ((key_types_seen & bit) != 0) {
      return base::Fail("--tls-cert " + cert + ": a second " + (bit == 1 ? "ECDSA" : "RSA") +
                        " certificate would replace the first; give one of each at most");
    }
    key_types_seen |= bit;
    const std::int64_t not_after = NotAfter(leaf);
    if (out.not_after_unix == 0 || (not_after != 0 && not_after < out.not_after_unix)) {
      out.not_after_unix = not_after;
    }
  }
  out.context = std::move(ctx);
  return out;
}

}  // namespace vrouter::net
