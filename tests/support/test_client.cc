#include "tests/support/test_client.h"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <deque>

namespace vrouter::testing {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

asio::ssl::context& ClientTlsContext() {
  static asio::ssl::context ctx = [] {
    asio::ssl::context c(asio::ssl::context::tls_client);
    c.set_verify_mode(asio::ssl::verify_none);  // the test certificate is self-signed
    return c;
  }();
  return ctx;
}

template <class NextLayer>
class Client final : public TestClient {
 public:
  template <class... Args>
  explicit Client(Args&&... args) : ws_(std::forward<Args>(args)...) {}

  bool Open(std::uint16_t port, const Options& o, std::string* error) {
    beast::error_code ec;
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    beast::get_lowest_layer(ws_).connect(ep, ec);
    if (!ec) {
      if constexpr (!std::is_same_v<NextLayer, beast::tcp_stream>) {
        ws_.next_layer().handshake(asio::ssl::stream_base::client, ec);
      }
    }
    if (!ec) {
      ws_.set_option(websocket::stream_base::decorator([o](websocket::request_type& req) {
        if (!o.subprotocol.empty()) req.set(http::field::sec_websocket_protocol, o.subprotocol);
      }));
      websocket::response_type res;
      ws_.handshake(res, "127.0.0.1", o.path, ec);
      subprotocol_ = std::string(res[http::field::sec_websocket_protocol]);
    }
    if (ec && error != nullptr) *error = ec.message();
    return !ec;
  }

  bool SendText(const std::string& text) override { return WriteFrame(text, true); }
  bool SendBinary(const std::string& data) override { return WriteFrame(data, false); }
  bool Ping() override {
    bool done = false;
    beast::error_code result;
    ws_.async_ping({}, [&](beast::error_code ec) {
      done = true;
      result = ec;
    });
    RunUntil(done, 5s);
    return done && !result;
  }

  std::optional<std::string> Read(std::chrono::milliseconds timeout) override {
    if (inbox_.empty() && !closed_) {
      StartRead();
      RunUntil(read_done_flag_, timeout);
    }
    if (inbox_.empty()) return std::nullopt;
    std::string s = std::move(inbox_.front());
    inbox_.pop_front();
    return s;
  }

  std::optional<std::uint16_t> WaitClosed(std::chrono::milliseconds timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!closed_ && std::chrono::steady_clock::now() < deadline) {
      inbox_.clear();
      StartRead();
      RunUntil(read_done_flag_, std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now()));
    }
    if (!closed_) return std::nullopt;
    return close_code_;
  }

  std::string negotiated_subprotocol() const override { return subprotocol_; }

 private:
  asio::io_context& io() { return static_cast<asio::io_context&>(ws_.get_executor().context()); }

  void RunUntil(bool& flag, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!flag && std::chrono::steady_clock::now() < deadline) {
      io().restart();
      io().run_for(std::chrono::milliseconds(10));
    }
  }

  void StartRead() {
    read_done_flag_ = false;
    if (reading_) return;  // the previous read is still pending: keep waiting for it
    reading_ = true;
    ws_.async_read(buffer_, [this](beast::error_code ec, std::size_t) {
      reading_ = false;
      read_done_flag_ = true;
      if (ec) {
        closed_ = true;
        const auto code = ws_.reason().code;
        close_code_ = code == 0 ? std::uint16_t{1006} : static_cast<std::uint16_t>(code);
        return;
      }
      inbox_.push_back(beast::buffers_to_string(buffer_.data()));
      buffer_.consume(buffer_.size());
    });
  }

  bool WriteFrame(const std::string& data, bool text) {
    bool done = false;
    beast::error_code result;
    ws_.text(text);
    ws_.async_write(asio::buffer(data), [&](beast::error_code ec, std::size_t) {
      done = true;
      result = ec;
    });
    RunUntil(done, 10s);
    return done && !result;
  }

  websocket::stream<NextLayer> ws_;
  beast::flat_buffer buffer_;
  std::deque<std::string> inbox_;
  bool reading_ = false;
  bool read_done_flag_ = false;
  bool closed_ = false;
  std::uint16_t close_code_ = 0;
  std::string subprotocol_;
};

template <class NextLayer>
class ClientWithIo final : public TestClient {
 public:
  ClientWithIo() {
    if constexpr (std::is_same_v<NextLayer, beast::tcp_stream>) {
      client_ = std::make_unique<Client<NextLayer>>(*io_);
    } else {
      client_ = std::make_unique<Client<NextLayer>>(*io_, ClientTlsContext());
    }
  }
  bool Open(std::uint16_t port, const Options& o, std::string* error) {
    return client_->Open(port, o, error);
  }
  bool SendText(const std::string& t) override { return client_->SendText(t); }
  bool SendBinary(const std::string& d) override { return client_->SendBinary(d); }
  bool Ping() override { return client_->Ping(); }
  std::optional<std::string> Read(std::chrono::milliseconds t) override { return client_->Read(t); }
  std::optional<std::uint16_t> WaitClosed(std::chrono::milliseconds t) override {
    return client_->WaitClosed(t);
  }
  std::string negotiated_subprotocol() const override { return client_->negotiated_subprotocol(); }

 private:
  std::unique_ptr<asio::io_context> io_ = std::make_unique<asio::io_context>(1);
  std::unique_ptr<Client<NextLayer>> client_;
};

}  // namespace

std::unique_ptr<TestClient> TestClient::Connect(std::uint16_t port, const Options& options,
                                                std::string* error) {
  if (options.tls) {
    auto c = std::make_unique<ClientWithIo<beast::ssl_stream<beast::tcp_stream>>>();
    if (!c->Open(port, options, error)) return nullptr;
    return c;
  }
  auto c = std::make_unique<ClientWithIo<beast::tcp_stream>>();
  if (!c->Open(port, options, error)) return nullptr;
  return c;
}

std::optional<proto::ServerMessage> TestClient::ReadMessage(std::chrono::milliseconds timeout) {
  auto text = Read(timeout);
  if (!text) {
    ADD_FAILURE() << "no frame within " << timeout.count() << " ms";
    return std::nullopt;
  }
  auto decoded = proto::DecodeServerMessage(*text);
  if (auto* err = std::get_if<proto::DecodeError>(&decoded)) {
    ADD_FAILURE() << "router sent an undecodable frame: " << err->message << ": " << *text;
    return std::nullopt;
  }
  return std::get<proto::ServerMessage>(std::move(decoded));
}

HttpResult HttpRequest(std::uint16_t port, std::string_view method, std::string_view target,
                       const std::map<std::string, std::string>& headers, bool tls) {
  asio::io_context io;
  HttpResult out;
  http::request<http::empty_body> req(http::string_to_verb(method), target, 11);
  req.set(http::field::host, "127.0.0.1");
  for (const auto& [k, v] : headers) req.set(k, v);
  http::response<http::string_body> res;
  beast::flat_buffer buffer;
  beast::error_code ec;
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
  auto finish = [&] {
    out.status = static_cast<int>(res.result_int());
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(c));
      out.headers[name] = std::string(f.value());
    }
    out.body = res.body();
  };
  if (tls) {
    beast::ssl_stream<beast::tcp_stream> s(io, ClientTlsContext());
    beast::get_lowest_layer(s).expires_after(10s);
    beast::get_lowest_layer(s).connect(ep, ec);
    if (!ec) s.handshake(asio::ssl::stream_base::client, ec);
    if (!ec) http::write(s, req, ec);
    if (!ec) http::read(s, buffer, res, ec);
  } else {
    beast::tcp_stream s(io);
    s.connect(ep, ec);
    if (!ec) http::write(s, req, ec);
    if (!ec) http::read(s, buffer, res, ec);
  }
  if (!ec || ec == http::error::end_of_stream) finish();
  return out;
}

}  // namespace vrouter::testing
