#include "router/net/tls_connection.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>
#include <cerrno>
#include <climits>
#include <cstring>
#include <new>

namespace vrouter::net {

// OpenSSL's view of the socket: a source/sink BIO whose data is the TlsConnection.
struct TlsBio {
  static TlsConnection& Of(BIO* bio) { return *static_cast<TlsConnection*>(BIO_get_data(bio)); }

  static int Read(BIO* bio, char* out, int size) {
    BIO_clear_retry_flags(bio);
    const int n = Of(bio).ReadSocket(out, size);
    if (n < 0 && Of(bio).last_errno_ == EAGAIN) BIO_set_retry_read(bio);
    return n;
  }
  static int Write(BIO* bio, const char* data, int size) {
    BIO_clear_retry_flags(bio);
    const int n = Of(bio).WriteSocket(data, size);
    if (n < 0 && Of(bio).last_errno_ == EAGAIN) BIO_set_retry_write(bio);
    return n;
  }
  static long Control(BIO* bio, int command, long, void*) {  // NOLINT(google-runtime-int)
    switch (command) {
      case BIO_CTRL_FLUSH:  // writes go straight to the socket
        return 1;
      case BIO_CTRL_EOF:  // how OpenSSL tells a peer gone mid-record ("unexpected eof")
        return Of(bio).eof_ ? 1 : 0;
      default:
        return 0;
    }
  }
  static int Create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
  }

  static BIO_METHOD* Method() {
    static BIO_METHOD* const method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "vrouter socket");
      if (m == nullptr) throw std::bad_alloc();
      BIO_meth_set_read(m, &Read);
      BIO_meth_set_write(m, &Write);
      BIO_meth_set_ctrl(m, &Control);
      BIO_meth_set_create(m, &Create);
      return m;
    }();
    return method;
  }
};

TlsConnection::TlsConnection(ssl_ctx_st* context, Socket& socket, TlsRole role) : socket_(&socket) {
  ssl_ = SSL_new(context);
  BIO* bio = ssl_ != nullptr ? BIO_new(TlsBio::Method()) : nullptr;
  if (bio == nullptr) {
    SSL_free(ssl_);
    throw std::bad_alloc();
  }
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);  // the SSL object owns it now
  // Records are read ahead (fewer recv calls), writes may complete record by record, and the
  // record buffers are freed whenever nothing is in flight.
  SSL_set_read_ahead(ssl_, 1);
  SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                         SSL_MODE_RELEASE_BUFFERS);
  if (role == TlsRole::kServer) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
  }
}

bool TlsConnection::ExpectServer(const std::string& host) {
  boost::system::error_code not_ip;
  boost::asio::ip::make_address(host, not_ip);  // as the URL parser does (IPv6 scope ids too)
  if (!not_ip) return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str()) == 1;
  return SSL_set_tlsext_host_name(ssl_, host.c_str()) == 1 &&
         SSL_set1_host(ssl_, host.c_str()) == 1;
}

TlsConnection::~TlsConnection() { SSL_free(ssl_); }

void TlsConnection::Prepend(std::string_view bytes) { prefix_.insert(0, bytes); }

int TlsConnection::ReadSocket(char* out, int size) {
  last_errno_ = 0;
  if (!prefix_.empty()) {
    const auto n = std::min<std::size_t>(static_cast<std::size_t>(size), prefix_.size());
    short_read_ = false;
    std::memcpy(out, prefix_.data(), n);
    prefix_.erase(0, n);
    if (prefix_.empty()) std::string().swap(prefix_);
    return static_cast<int>(n);
  }
  if (socket_ == nullptr || !socket_->is_open()) {
    last_errno_ = ECANCELED;  // closed by the session: operation_aborted
    return -1;
  }
  for (;;) {
    const ssize_t n = ::recv(socket_->native_handle(), out, static_cast<std::size_t>(size), 0);
    if (n >= 0) {
      eof_ = n == 0;
      short_read_ = n < size;
      return static_cast<int>(n);
    }
    if (errno == EINTR) continue;
    last_errno_ = errno == EWOULDBLOCK ? EAGAIN : errno;
    short_read_ = true;
    return -1;
  }
}

int TlsConnection::WriteSocket(const char* data, int size) {
  last_errno_ = 0;
  if (socket_ == nullptr || !socket_->is_open()) {
    last_errno_ = ECANCELED;  // closed by the session: operation_aborted
    return -1;
  }
  for (;;) {
    const ssize_t n =
        ::send(socket_->native_handle(), data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
    if (n >= 0) return static_cast<int>(n);
    if (errno == EINTR) continue;
    last_errno_ = errno == EWOULDBLOCK ? EAGAIN : errno;
    return -1;
  }
}

TlsStep TlsConnection::Finish(int result, std::size_t bytes) {
  if (result > 0) return {TlsStep::Kind::kDone, bytes, {}};
  const int error = SSL_get_error(ssl_, result);
  TlsStep step{TlsStep::Kind::kFailed, 0, {}};
  switch (error) {
    case SSL_ERROR_WANT_READ:
      return {TlsStep::Kind::kWantRead, 0, {}};
    case SSL_ERROR_WANT_WRITE:
      return {TlsStep::Kind::kWantWrite, 0, {}};
    case SSL_ERROR_ZERO_RETURN:  // the peer's close_notify: a clean end, close_notify may follow
      step.error = boost::asio::error::eof;
      return step;
    case SSL_ERROR_SYSCALL:
      step.error = last_errno_ != 0
                       ? boost::system::error_code(last_errno_, boost::system::system_category())
                       : boost::system::error_code(boost::asio::error::eof);
      break;
    case SSL_ERROR_SSL: {
      // The peer going away mid-record is OpenSSL's "unexpected eof": for a WebSocket (which has
      // its own close handshake) that is a lost peer like any other, not a TLS failure.
      const unsigned long code = ERR_peek_last_error();  // NOLINT(google-runtime-int)
      step.error = eof_ ? boost::system::error_code(boost::asio::error::eof)
                        : boost::system::error_code(static_cast<int>(code),
                                                    boost::asio::error::get_ssl_category());
      break;
    }
    default:
      step.error = boost::system::errc::make_error_code(boost::system::errc::protocol_error);
      break;
  }
  ERR_clear_error();
  failed_ = true;
  failure_ = step.error;
  return step;
}

TlsStep TlsConnection::Handshake() {
  if (failed_) return {TlsStep::Kind::kFailed, 0, failure_};
  ERR_clear_error();
  return Finish(SSL_do_handshake(ssl_), 0);
}

bool TlsConnection::ReadDrained() const {
  return short_read_ && prefix_.empty() && SSL_pending(ssl_) == 0 && SSL_has_pending(ssl_) == 0;
}

TlsStep TlsConnection::Read(void* data, std::size_t size) {
  if (failed_) return {TlsStep::Kind::kFailed, 0, failure_};
  std::size_t n = 0;
  ERR_clear_error();
  const int result = SSL_read_ex(ssl_, data, std::min<std::size_t>(size, INT_MAX), &n);
  return Finish(result, n);
}

TlsStep TlsConnection::Write(const void* data, std::size_t size) {
  if (failed_) return {TlsStep::Kind::kFailed, 0, failure_};
  std::size_t n = 0;
  ERR_clear_error();
  const int result = SSL_write_ex(ssl_, data, std::min<std::size_t>(size, INT_MAX), &n);
  return Finish(result, n);
}

TlsStep TlsConnection::Shutdown() {
  // Nothing to say after a fatal error, and nothing to close before the handshake finished.
  if (failed_ || shutdown_sent_ || SSL_is_init_finished(ssl_) != 1) return {};
  ERR_clear_error();
  const int result = SSL_shutdown(ssl_);
  if (result >= 0) {  // 0: ours is sent, the peer's not read (we do not wait for it)
    shutdown_sent_ = true;
    return {};
  }
  return Finish(result, 0);
}

}  // namespace vrouter::net
