// The OpenSSL half of a TLS stream (server side in the router, client side in bench/), free of
// Asio's templates: one SSL object reading and writing the connection's socket directly, one
// non-blocking step at a time. TlsStream (tls_stream.h) waits for the socket between steps.
//
// Why not Asio's ssl::stream: it keeps two 17 KiB record buffers per connection for its whole
// life, plus a 17 KiB BIO pair, ~60 KB of an idle wss connection's memory. Here OpenSSL reads
// from and writes to the socket itself (SSL_MODE_RELEASE_BUFFERS frees its record buffers while
// nothing is in flight), so an idle connection holds little more than its SSL object.
#pragma once

#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <string>
#include <string_view>

struct ssl_st;
struct ssl_ctx_st;

namespace vrouter::net {

// A bare socket bound to its io_context's concrete executor (what sessions use).
using Socket =
    boost::asio::basic_stream_socket<boost::asio::ip::tcp, boost::asio::io_context::executor_type>;

// What one non-blocking OpenSSL call came to.
struct TlsStep {
  enum class Kind { kDone, kWantRead, kWantWrite, kFailed };
  Kind kind = Kind::kDone;
  std::size_t bytes = 0;            // kDone: bytes read or written
  boost::system::error_code error;  // kFailed: eof after the peer's close_notify or a lost peer
                                    // (asio::error::eof), a socket error, or a TLS error
};

enum class TlsRole { kServer, kClient };

class TlsConnection {
 public:
  // `socket` is read from and written to only while open and attached, so a step after the
  // session closed it (or after TlsStream, which owns the socket, is gone) fails with
  // operation_aborted instead of touching a descriptor number the kernel may have reused.
  TlsConnection(ssl_ctx_st* context, Socket& socket, TlsRole role);
  // The socket is going away (TlsStream's destructor); an operation still queued sees it closed.
  void Detach() { socket_ = nullptr; }
  ~TlsConnection();
  TlsConnection(const TlsConnection&) = delete;
  TlsConnection& operator=(const TlsConnection&) = delete;

  // Client: the server's name, sent as SNI (unless an IP address) and checked against its
  // certificate when the context verifies peers. False when OpenSSL refuses it.
  bool ExpectServer(const std::string& host);

  // Bytes already read from the socket that belong to the TLS stream (those after a PROXY
  // protocol header): OpenSSL reads them before the socket.
  void Prepend(std::string_view bytes);

  TlsStep Handshake();
  TlsStep Read(void* data, std::size_t size);
  TlsStep Write(const void* data, std::size_t size);
  // Sends close_notify (once); does not wait for the peer's.
  TlsStep Shutdown();

  // Nothing is left to read without waiting: the last socket read came up short (the socket was
  // empty) and OpenSSL holds no record, decrypted or not. Lets a reader stop before the read that
  // would only say EAGAIN.
  bool ReadDrained() const;
  // Forgets earlier socket reads for ReadDrained(): a reader calls it each time it wakes up, so
  // that only reads since then count (readiness edges while it was not waiting are lost).
  void BeginReadRound() { short_read_ = false; }

  // After a failed step OpenSSL must not be called again (no close_notify after a fatal error).
  bool failed() const { return failed_; }

 private:
  friend struct TlsBio;
  TlsStep Finish(int result, std::size_t bytes);
  int ReadSocket(char* out, int size);
  int WriteSocket(const char* data, int size);

  ssl_st* ssl_ = nullptr;
  Socket* socket_;
  std::string prefix_;       // Prepend()ed bytes not read yet
  int last_errno_ = 0;       // the socket error of the last read or write (EAGAIN: try later)
  bool eof_ = false;         // the peer closed its side
  bool short_read_ = false;  // the last socket read returned less than asked, or EAGAIN
  bool failed_ = false;
  boost::system::error_code failure_;  // what every step returns once failed_
  bool shutdown_sent_ = false;
};

}  // namespace vrouter::net
