#include "router/net/tls_stream.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace vrouter::net {

namespace tls_detail {

std::pair<const void*, std::size_t> Gather(const boost::asio::const_buffer* first,
                                           const boost::asio::const_buffer* last) {
  constexpr std::size_t kRecord = std::size_t{16} * 1024;  // TLS's largest record payload
  if (last - first == 1 || first->size() >= kRecord) return {first->data(), first->size()};
  thread_local std::array<char, kRecord> scratch;
  std::size_t n = 0;
  for (const auto* b = first; b != last && n < kRecord; ++b) {
    const std::size_t take = std::min(b->size(), kRecord - n);
    std::memcpy(scratch.data() + n, b->data(), take);
    n += take;
  }
  return {scratch.data(), n};
}

}  // namespace tls_detail

void teardown(boost::beast::role_type role, TlsStream& stream, boost::system::error_code& ec) {
  // Best effort close_notify without waiting (the socket is non-blocking), then TCP's teardown.
  (void)stream.ShutdownNow();
  boost::beast::websocket::teardown(role, stream.next_layer(), ec);
  // The socket is non-blocking: Beast's drain may stop at would_block with the socket open.
  boost::system::error_code ignored;
  if (ec) stream.next_layer().close(ignored);
}

}  // namespace vrouter::net
