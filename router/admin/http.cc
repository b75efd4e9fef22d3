#include "router/admin/http.h"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>

#include "router/admin/routes.h"

namespace vrouter::admin {
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

namespace {

// 127.0.0.0/8, ::1, and ::ffff:127.x.y.z (a dual-stack listener sees IPv4 peers that way).
bool IsLoopback(const boost::asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6()).is_loopback();
  }
  return a.is_loopback();
}

constexpr auto kAdminTimeout = std::chrono::seconds(10);
constexpr std::uint32_t kMaxAdminHeaderBytes = 8 * 1024;
constexpr std::uint64_t kMaxAdminBodyBytes = std::uint64_t{64} * 1024;

class AdminSession : public std::enable_shared_from_this<AdminSession> {
 public:
  AdminSession(tcp::socket socket, service::Service& service)
      : stream_(std::move(socket)), service_(service) {}

  void Read() {
    parser_.emplace();
    parser_->header_limit(kMaxAdminHeaderBytes);
    parser_->body_limit(kMaxAdminBodyBytes);
    stream_.expires_after(kAdminTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) return self->Shutdown();
                       self->Respond();
                     });
  }

 private:
  void Respond() {
    const auto& req = parser_->get();
    beast::error_code ec;
    const auto peer = stream_.socket().remote_endpoint(ec);
    const AdminRequest request{.method = req.method_string(),
                               .target = req.target(),
                               .caller = {.authorization = req[http::field::authorization],
                                          .host = req[http::field::host],
                                          .loopback = !ec && IsLoopback(peer.address())},
                               .origin = req[http::field::origin]};
    AdminResponse r = HandleAdmin(request, service_);
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(r.status), req.version());
    res->set(http::field::server, "vrouter-admin");
    res->set(http::field::content_type, r.content_type);
    res->set(http::field::cache_control, "no-store");
    for (const auto& [name, value] : r.headers) res->set(name, value);
    res->keep_alive(req.keep_alive());
    if (req.method() != http::verb::head) res->body() = std::move(r.body);
    res->prepare_payload();
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
                        if (ec || !res->keep_alive()) return self->Shutdown();
                        self->Read();
                      });
  }

  void Shutdown() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  service::Service& service_;
};

}  // namespace

void StartAdminSession(tcp::socket socket, service::Service& service) {
  std::make_shared<AdminSession>(std::move(socket), service)->Read();
}

}  // namespace vrouter::admin
