// TlsStream against Asio's own TLS client over loopback sockets on port 0.
#include "router/net/tls_stream.h"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "router/net/tls.h"

namespace vrouter::net {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;

std::shared_ptr<ssl::context> ServerContext() {
  const std::string dir = VROUTER_TEST_CERT_DIR;
  auto made = MakeServerTlsContext({dir + "/cert.pem"}, {dir + "/key.pem"});
  if (auto* error = made.error_message()) ADD_FAILURE() << *error;
  return std::get<ServerTls>(made).context;
}

// A completion handler that expects success and raises `flag`.
auto Succeeds(bool& flag) {
  return [&flag](error_code ec) {
    EXPECT_FALSE(ec) << ec.message();
    flag = true;
  };
}

// One server-side TlsStream and one Asio TLS client, connected, both on `io` (one thread: the
// stream's contract).
class TlsStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tcp::acceptor acceptor(io_, {asio::ip::make_address("127.0.0.1"), 0});
    client_.next_layer().connect(acceptor.local_endpoint());
    Socket accepted(io_.get_executor());
    acceptor.accept(accepted);
    server_.emplace(std::move(accepted), context_->native_handle());
  }

  // Runs the io_context until `done()` or the deadline.
  void RunUntil(const std::function<bool()>& done, std::chrono::seconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_for(10ms);
    }
    ASSERT_TRUE(done()) << "timed out";
  }
  void RunUntil(const bool& flag) {
    RunUntil([&] { return flag; });
  }

  void Handshake() {
    bool server_done = false;
    bool client_done = false;
    server_->async_handshake(Succeeds(server_done));
    client_.async_handshake(ssl::stream_base::client, Succeeds(client_done));
    RunUntil(server_done);
    RunUntil(client_done);
  }

  // Reads once from the server stream.
  std::pair<error_code, std::string> ServerRead() {
    std::string buffer(4096, '\0');
    std::optional<std::pair<error_code, std::string>> out;
    server_->async_read_some(asio::buffer(buffer), [&](error_code ec, std::size_t n) {
      out.emplace(ec, buffer.substr(0, n));
    });
    RunUntil([&] { return out.has_value(); });
    return out.value_or(std::pair{error_code(asio::error::timed_out), std::string()});
  }

  asio::io_context io_{1};
  std::shared_ptr<ssl::context> context_ = ServerContext();
  ssl::context client_context_{ssl::context::tls_client};
  ssl::stream<tcp::socket> client_{io_, client_context_};
  std::optional<TlsStream> server_;
};

TEST_F(TlsStreamTest, MegabytesBothWaysAtOnce) {
  Handshake();
  // More than the socket buffers hold: both sides see want-write and partial writes.
  std::string up(1 << 20, '\0');
  std::string down(1 << 20, '\0');
  for (std::size_t i = 0; i < up.size(); ++i) {
    up[i] = static_cast<char>(i * 7);
    down[i] = static_cast<char>(i * 13);
  }
  std::string got_up(up.size(), '\0');
  std::string got_down(down.size(), '\0');
  int finished = 0;
  auto done = [&](const char* what) {
    return [&, what](error_code ec, std::size_t n) {
      EXPECT_FALSE(ec) << what << ": " << ec.message();
      EXPECT_EQ(n, up.size()) << what;
      ++finished;
    };
  };
  asio::async_write(client_, asio::buffer(up), done("client write"));
  asio::async_read(*server_, asio::buffer(got_up), done("server read"));
  asio::async_write(*server_, asio::buffer(down), done("server write"));
  asio::async_read(client_, asio::buffer(got_down), done("client read"));
  RunUntil([&] { return finished == 4; }, 30s);
  EXPECT_TRUE(got_up == up);
  EXPECT_TRUE(got_down == down);
}

TEST_F(TlsStreamTest, SeveralSmallBuffersArriveInOrder) {
  Handshake();
  const std::string a = "\x81\x05", b = "hello", c = " world";
  const std::array<asio::const_buffer, 3> pieces{asio::buffer(a), asio::buffer(b), asio::buffer(c)};
  bool written = false;
  asio::async_write(*server_, pieces, [&](error_code ec, std::size_t n) {
    EXPECT_FALSE(ec);
    EXPECT_EQ(n, a.size() + b.size() + c.size());
    written = true;
  });
  RunUntil(written);
  std::string got(a.size() + b.size() + c.size(), '\0');
  bool read = false;
  asio::async_read(client_, asio::buffer(got), [&](error_code ec, std::size_t) {
    EXPECT_FALSE(ec);
    read = true;
  });
  RunUntil(read);
  EXPECT_EQ(got, a + b + c);
}

TEST_F(TlsStreamTest, BytesReadBeforeTheHandshakeArePrepended) {
  // What a PROXY protocol reader does: it reads past its header into the ClientHello.
  bool client_done = false;
  client_.async_handshake(ssl::stream_base::client, Succeeds(client_done));
  io_.restart();
  io_.run_for(50ms);  // the ClientHello is sent
  std::string early(10, '\0');
  asio::read(server_->next_layer(), asio::buffer(early));
  server_->Prepend(early);
  bool server_done = false;
  server_->async_handshake(Succeeds(server_done));
  RunUntil(server_done);
  RunUntil(client_done);
}

TEST_F(TlsStreamTest, CloseNotifyEndsTheStreamWithEof) {
  Handshake();
  bool shut = false;
  client_.async_shutdown([&](error_code) { shut = true; });
  EXPECT_EQ(ServerRead().first, asio::error::eof);
  bool sent = false;
  server_->async_shutdown(Succeeds(sent));
  RunUntil(sent);
  RunUntil(shut);
}

TEST_F(TlsStreamTest, PeerGoneWithoutCloseNotifyIsEof) {
  Handshake();
  // One round trip first, so the client has read everything (session tickets) and its close is
  // a FIN, not a reset.
  bool written = false;
  asio::async_write(*server_, asio::buffer(std::string("x")),
                    [&](error_code, std::size_t) { written = true; });
  RunUntil(written);
  char byte = 0;
  bool read = false;
  asio::async_read(client_, asio::buffer(&byte, 1), [&](error_code, std::size_t) { read = true; });
  RunUntil(read);
  client_.next_layer().close();
  EXPECT_EQ(ServerRead().first, asio::error::eof);
  // Failed for good: no close_notify after it, and no second attempt at the socket.
  EXPECT_EQ(ServerRead().first, asio::error::eof);
  EXPECT_EQ(server_->ShutdownNow().kind, TlsStep::Kind::kDone);
}

TEST_F(TlsStreamTest, PeerResetIsConnectionReset) {
  Handshake();
  // The session tickets are unread on the client: closing it resets the connection.
  client_.next_layer().set_option(asio::socket_base::linger(true, 0));
  client_.next_layer().close();
  EXPECT_EQ(ServerRead().first, asio::error::connection_reset);
}

TEST_F(TlsStreamTest, GarbageInsteadOfAClientHelloFailsTheHandshake) {
  asio::write(client_.next_layer(), asio::buffer(std::string("GET / HTTP/1.1\r\n\r\n")));
  std::optional<error_code> result;
  server_->async_handshake([&](error_code ec) { result = ec; });
  RunUntil([&] { return result.has_value(); });
  ASSERT_TRUE(result);
  EXPECT_TRUE(*result);
  EXPECT_EQ(result->category(), asio::error::get_ssl_category()) << result->message();
}

TEST_F(TlsStreamTest, ClosingTheSocketAbortsAPendingReadAndLaterOnesFail) {
  Handshake();
  std::optional<error_code> pending;
  std::string buffer(64, '\0');
  server_->async_read_some(asio::buffer(buffer), [&](error_code ec, std::size_t) { pending = ec; });
  io_.restart();
  io_.run_for(20ms);
  ASSERT_FALSE(pending);  // waiting for the socket
  server_->next_layer().close();
  RunUntil([&] { return pending.has_value(); });
  ASSERT_TRUE(pending);
  EXPECT_EQ(*pending, asio::error::operation_aborted);
  // A later read must not reach a descriptor number the kernel may have given to someone else.
  EXPECT_EQ(ServerRead().first, asio::error::operation_aborted);
}

TEST_F(TlsStreamTest, AStepAfterTheStreamIsGoneFailsWithoutTheSocket) {
  // An operation keeps the TlsConnection alive after its stream (a Beast idle ping holds only a
  // weak_ptr to the stream and its readiness wait may already have completed): the stream's
  // destructor detaches the socket, and a step then fails instead of using freed memory.
  Socket socket(io_.get_executor());
  socket.open(tcp::v4());  // open: only the detach can make the step refuse it
  TlsConnection tls(context_->native_handle(), socket, TlsRole::kServer);
  tls.Detach();
  char byte = 0;
  const TlsStep step = tls.Read(&byte, 1);
  EXPECT_EQ(step.kind, TlsStep::Kind::kFailed);
  EXPECT_EQ(step.error, asio::error::operation_aborted);
}

}  // namespace
}  // namespace vrouter::net
