#include "router/net/listener.h"

#include <sys/socket.h>

#include <boost/asio/socket_base.hpp>
#include <chrono>

#include "router/base/log.h"
#include "router/base/result.h"

namespace vrouter::net {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {
// After an accept failure (EMFILE, ENFILE, ENOBUFS) wait before retrying: retrying at once spins
// a core while the condition lasts; returning would stop accepting forever.
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(50);
// While the accept gate is closed, how often it is looked at again: short against a handshake
// (a few ms), long enough that a paused listener costs nothing measurable.
constexpr auto kGateRecheck = std::chrono::milliseconds(2);
}  // namespace

Listener::Listener(asio::io_context& io, telemetry::Metrics& metrics, Handler on_accept)
    : acceptor_(io), retry_timer_(io), metrics_(metrics), on_accept_(std::move(on_accept)) {}

base::Result<std::shared_ptr<Listener>> Listener::Open(asio::io_context& io,
                                                       const tcp::endpoint& endpoint, int backlog,
                                                       bool reuse_port, telemetry::Metrics& metrics,
                                                       Handler on_accept) {
  std::shared_ptr<Listener> l(new Listener(io, metrics, std::move(on_accept)));
  boost::system::error_code ec;
  const std::string where = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
  l->acceptor_.open(endpoint.protocol(), ec);
  if (ec) return base::Fail("open " + where + ": " + ec.message());
  l->acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (reuse_port) {
    const int one = 1;
    if (::setsockopt(l->acceptor_.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) !=
        0) {
      return base::Fail("SO_REUSEPORT on " + where + " failed");
    }
  }
  l->acceptor_.bind(endpoint, ec);
  if (ec) return base::Fail("bind " + where + ": " + ec.message());
  l->acceptor_.listen(backlog, ec);
  if (ec) return base::Fail("listen " + where + ": " + ec.message());
  return l;
}

tcp::endpoint Listener::local_endpoint() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec);
}

void Listener::Start() { Accept(); }

void Listener::Stop() {
  boost::system::error_code ec;
  retry_timer_.cancel();
  acceptor_.close(ec);
  held_.reset();
}

void Listener::Accept() {
  acceptor_.async_accept(
      [self = shared_from_this()](boost::system::error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !self->acceptor_.is_open()) return;
        if (ec) {
          self->metrics_.accept_errors->Increment();
          log::Warn("accept_failed", {{"error", ec.message()}});
          self->retry_timer_.expires_after(kAcceptRetryDelay);
          self->retry_timer_.async_wait([self](boost::system::error_code wait_ec) {
            if (!wait_ec) self->Accept();
          });
          return;
        }
        self->held_.emplace(std::move(socket));
        self->Admit(/*recheck=*/false);
      });
}

void Listener::Admit(bool recheck) {
  if (reserve_ && !reserve_()) {
    // No handshake slot: keep this one connection (nothing is read from it, so it costs a
    // descriptor and no CPU) and accept nothing more until a slot frees.
    if (!recheck) metrics_.accept_paused->Increment();
    retry_timer_.expires_after(kGateRecheck);
    retry_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec && self->acceptor_.is_open() && self->held_) self->Admit(/*recheck=*/true);
    });
    return;
  }
  tcp::socket socket = std::move(*held_);
  held_.reset();
  on_accept_(std::move(socket));
  Accept();
}

}  // namespace vrouter::net
