// A TCP accept loop on one io_context. Each worker thread opens its own listener on the same
// address with SO_REUSEPORT, so the kernel spreads connections across threads and no accept is
// ever handed between threads.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "router/base/result.h"
#include "router/telemetry/metrics.h"

namespace vrouter::net {

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  using Handler = std::function<void(boost::asio::ip::tcp::socket)>;

  // Opens, binds and listens. `backlog` is set explicitly: the default (SOMAXCONN) silently drops
  // connect storms on hosts with a small somaxconn.
  static base::Result<std::shared_ptr<Listener>> Open(
      boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& endpoint, int backlog,
      bool reuse_port, telemetry::Metrics& metrics, Handler on_accept);

  // Admission control under a connect storm: an accepted connection goes to the handler only
  // once `reserve` grants it a slot (the handler owns the slot and gives it back). Until then the
  // listener holds that one connection and accepts nothing more: the others wait in the kernel
  // backlog at no cost to this process, and are taken as slots free up. Set before Start().
  void SetAcceptGate(std::function<bool()> reserve) { reserve_ = std::move(reserve); }

  boost::asio::ip::tcp::endpoint local_endpoint() const;
  void Start();
  void Stop();  // from the listener's own thread

 private:
  Listener(boost::asio::io_context& io, telemetry::Metrics& metrics, Handler on_accept);
  void Accept();
  void Admit(bool recheck);  // hands held_ to the handler once a slot is free

  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_timer_;
  telemetry::Metrics& metrics_;
  Handler on_accept_;
  std::function<bool()> reserve_;
  std::optional<boost::asio::ip::tcp::socket> held_;  // accepted, waiting for a slot
};

}  // namespace vrouter::net
