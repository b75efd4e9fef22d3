// The video-server fleet as this replica sees it: an immutable snapshot swapped atomically on
// every change, so readers (every join, every lookup) never take a lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "proto/messages.h"
#include "router/base/mutex.h"
#include "router/base/result.h"

namespace vrouter::fleet {

struct VideoServer {
  std::string id;              // unique, stable across restarts of the server
  std::string url;             // public URL clients connect their media to
  std::string region;          // e.g. "eu-west"; used for region-aware choice
  std::uint32_t capacity = 0;  // users it is sized for (> 0)
  // Whether the server reports `stats` over /v1/video-server. A declared server that is not
  // monitored is trusted to be up and is scored on the router's own counts and client failure
  // reports only; a monitored one waits in `pending` until its first report.
  bool monitored = true;
  bool operator==(const VideoServer&) const = default;
};

class DirectorySnapshot {
 public:
  DirectorySnapshot() = default;
  explicit DirectorySnapshot(std::vector<VideoServer> servers);

  const std::vector<VideoServer>& servers() const { return servers_; }
  const VideoServer* Find(std::string_view id) const;
  bool empty() const { return servers_.empty(); }

 private:
  std::vector<VideoServer> servers_;
  absl::flat_hash_map<std::string, std::size_t> index_;
};

// Thread-safe holder of the current snapshot. Snapshot() and Current() can be called from any
// thread.
class Directory {
 public:
  Directory() : current_(std::make_shared<const DirectorySnapshot>()), version_(NextVersion()) {}
  std::shared_ptr<const DirectorySnapshot> Snapshot() const { return current_.load(); }
  void Replace(std::vector<VideoServer> servers) {
    current_.store(std::make_shared<const DirectorySnapshot>(std::move(servers)));
    version_.store(NextVersion(), std::memory_order_release);
  }

  // The current snapshot as this thread last took it: while nothing changed, one atomic load and
  // no reference count touched (Snapshot() costs a locked load and two atomic counts, which every
  // lookup paid). The reference holds until this thread's next Current() call on any Directory.
  const DirectorySnapshot& Current() const {
    thread_local Taken taken;
    const std::uint64_t version = version_.load(std::memory_order_acquire);
    if (taken.version != version) {
      // Loaded after the version: at worst newer than `version`, and taken again next time.
      taken.snapshot = Snapshot();
      taken.version = version;
    }
    return *taken.snapshot;
  }

 private:
  struct Taken {
    std::uint64_t version = 0;  // never a directory's: versions start at 1
    std::shared_ptr<const DirectorySnapshot> snapshot;
  };
  // Unique across every Directory of the process, so a thread's taken snapshot can never be
  // mistaken for another directory's (tests make many, possibly at the same address).
  static std::uint64_t NextVersion() {
    static std::atomic<std::uint64_t> last{0};
    return last.fetch_add(1, std::memory_order_relaxed) + 1;
  }

  AtomicSharedPtr<const DirectorySnapshot> current_;
  std::atomic<std::uint64_t> version_;
};

// Parses the `--video-servers` file: a JSON array of {"id","url","region","capacity"} with an
// optional "monitored" (default true).
// Pure (the caller reads the file). Returns the servers or a message naming the bad entry.
base::Result<std::vector<VideoServer>> ParseVideoServers(std::string_view json_text);

// The wire form of `server_id` for clients: its URL and region from the snapshot, or the bare id
// when the server has left the directory (the id is still the truth).
proto::ServerRef ServerRefFor(const DirectorySnapshot& directory, const std::string& server_id);

}  // namespace vrouter::fleet
