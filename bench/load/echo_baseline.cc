// echo_baseline: the yardstick of the router's request rate (issue: "lookup round trips per
// second >= those of an idiomatic Beast echo server"). It is deliberately the textbook Beast
// server (the shape of Beast's websocket_server_async example): one
// websocket::stream<beast::tcp_stream> per connection with timeout::suggested(server), a
// flat_buffer, async_accept, then async_read -> async_write of the same message, forever. It
// accepts the vrouter.v1 subprotocol so that vrouter_load --mode echo connects to it as to a
// router, and echoes every frame it reads.
//
//   echo_baseline --listen 127.0.0.1:0 [--threads 1]
//
// Prints one JSON line {"event":"listening","ws":"ws://HOST:PORT/v1/client"} on stdout when it
// accepts, and runs until SIGINT/SIGTERM. Loopback benchmarks only.
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "proto/messages.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket&& socket) : ws_(std::move(socket)) {}

  void Run() {
    asio::dispatch(ws_.get_executor(),
                   beast::bind_front_handler(&Session::Accept, shared_from_this()));
  }

 private:
  void Accept() {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
      res.set(beast::http::field::sec_websocket_protocol, vrouter::proto::kSubprotocol);
    }));
    ws_.async_accept(beast::bind_front_handler(&Session::OnAccept, shared_from_this()));
  }

  void OnAccept(beast::error_code ec) {
    if (ec) return;
    Read();
  }

  void Read() {
    ws_.async_read(buffer_, beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t) {
    if (ec) return;
    ws_.text(ws_.got_text());
    ws_.async_write(buffer_.data(),
                    beast::bind_front_handler(&Session::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, std::size_t) {
    if (ec) return;
    buffer_.consume(buffer_.size());
    Read();
  }

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(asio::io_context& io, const tcp::endpoint& endpoint) : io_(io), acceptor_(io) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(4096);
  }

  tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }

  void Accept() {
    acceptor_.async_accept(asio::make_strand(io_),
                           beast::bind_front_handler(&Listener::OnAccept, shared_from_this()));
  }

 private:
  void OnAccept(beast::error_code ec, tcp::socket socket) {
    if (!ec) std::make_shared<Session>(std::move(socket))->Run();
    Accept();
  }

  asio::io_context& io_;
  tcp::acceptor acceptor_;
};

int Usage(const char* error) {
  std::fprintf(stderr, "echo_baseline: %s\nusage: echo_baseline --listen HOST:PORT [--threads N]\n",
               error);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  int threads = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--listen" && i + 1 < argc) {
      listen = argv[++i];
    } else if (arg == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else {
      return Usage(("unknown argument '" + arg + "'").c_str());
    }
  }
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos || threads < 1 || threads > 64) return Usage("bad arguments");
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(listen.substr(0, colon), ec);
  if (ec) return Usage("--listen: not an IP address");
  const int port = std::atoi(listen.c_str() + colon + 1);
  if (port < 0 || port > 65535) return Usage("--listen: bad port");

  asio::io_context io(threads);
  std::shared_ptr<Listener> listener;
  try {
    listener =
        std::make_shared<Listener>(io, tcp::endpoint(address, static_cast<unsigned short>(port)));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_baseline: --listen %s: %s\n", listen.c_str(), e.what());
    return 2;
  }
  listener->Accept();
  const auto ep = listener->endpoint();
  std::printf("{\"event\":\"listening\",\"ws\":\"ws://%s:%u/v1/client\",\"threads\":%d}\n",
              ep.address().to_string().c_str(), ep.port(), threads);
  std::fflush(stdout);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code, int) { io.stop(); });
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
  return 0;
}
