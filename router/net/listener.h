// A TCP accept loop on one io_context. Each worker thread opens its own listener on the same
// address with SO_REUSEPORT, so the kernel spreads connections across threads and no accept is
// ever handed between threads.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <string>
#include <variant>

#include "router/core/metrics.h"

namespace vrouter::net {

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  using Handler = std::function<void(boost::asio::ip::tcp::socket)>;

  // Opens, binds and listens. `backlog` is set explicitly: the default (SOMAXCONN) silently drops
  // connect storms on hosts with a small somaxconn.
  static std::variant<std::shared_ptr<Listener>, std::string> Open(
      boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& endpoint, int backlog,
      bool reuse_port, core::Metrics& metrics, Handler on_accept);

  // Admission control under a connect storm: while `may_accept` says no, the listener does not
  // accept; connections wait in the kernel backlog at no cost to this process, and are taken as
  // handshakes in flight finish. Set before Start().
  void SetAcceptGate(std::function<bool()> may_accept) { may_accept_ = std::move(may_accept); }

  boost::asio::ip::tcp::endpoint local_endpoint() const;
  void Start();
  void Stop();  // from the listener's own thread

 private:
  Listener(boost::asio::io_context& io, core::Metrics& metrics, Handler on_accept);
  void Accept();

  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_timer_;
  core::Metrics& metrics_;
  Handler on_accept_;
  std::function<bool()> may_accept_;
  bool paused_ = false;
};

}  // namespace vrouter::net
