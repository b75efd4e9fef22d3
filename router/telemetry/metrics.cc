#include "router/telemetry/metrics.h"

namespace vrouter::telemetry {

Metrics::Metrics(std::string_view version, std::string_view commit)
    : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  auto& r = *registry_;
  constexpr const char* kTransports[] = {"ws", "wss"};

  BuildGauge()
      .Name("vrouter_build_info")
      .Help("Build of this replica (always 1)")
      .Register(r)
      .Add({{"version", std::string(version)}, {"commit", std::string(commit)}})
      .Set(1);

  auto& conns = BuildGauge()
                    .Name("vrouter_connections")
                    .Help("Open client WebSocket connections")
                    .Register(r);
  auto& hs = BuildCounter()
                 .Name("vrouter_handshakes_total")
                 .Help("WebSocket (and TLS) handshakes by transport and result")
                 .Register(r);
  for (int t = 0; t < kTransportCount; ++t) {
    connections[t] = &conns.Add({{"transport", kTransports[t]}});
    handshakes_ok[t] = &hs.Add({{"transport", kTransports[t]}, {"result", "ok"}});
    handshakes_failed[t] = &hs.Add({{"transport", kTransports[t]}, {"result", "failed"}});
  }
  auto& rejected =
      BuildCounter()
          .Name("vrouter_connections_rejected_total")
          .Help(
              "Connections refused before the WebSocket opened, by reason: full (503, the "
              "replica is at --max-connections or draining), per_ip (429), origin (403), "
              "handshakes_per_ip (closed at accept: --max-handshakes-per-ip handshakes from that "
              "address in flight), before_auth (closed 1008: too many messages before "
              "hello/register), proxy_protocol (a trusted proxy sent a bad or no PROXY header: "
              "closed)")
          .Register(r);
  rejected_overload = &rejected.Add({{"reason", "full"}});
  rejected_per_ip = &rejected.Add({{"reason", "per_ip"}});
  rejected_origin = &rejected.Add({{"reason", "origin"}});
  rejected_handshakes_per_ip = &rejected.Add({{"reason", "handshakes_per_ip"}});
  rejected_before_auth = &rejected.Add({{"reason", "before_auth"}});
  rejected_proxy = &rejected.Add({{"reason", "proxy_protocol"}});
  handshakes_in_flight = &BuildGauge()
                              .Name("vrouter_handshakes_in_flight")
                              .Help(
                                  "Accepted connections whose TLS handshake or WebSocket "
                                  "upgrade is not done yet")
                              .Register(r)
                              .Add({});
  accept_paused = &BuildCounter()
                       .Name("vrouter_accept_paused_total")
                       .Help(
                           "Times a listener stopped accepting because --max-handshakes "
                           "handshakes were in flight (the kernel backlog holds the rest)")
                       .Register(r)
                       .Add({});
  max_connections = &BuildGauge()
                         .Name("vrouter_max_connections")
                         .Help("Client connections this replica accepts before refusing with 503")
                         .Register(r)
                         .Add({});
  accept_errors = &BuildCounter()
                       .Name("vrouter_accept_errors_total")
                       .Help("accept() failures (e.g. EMFILE); the listener backs off and retries")
                       .Register(r)
                       .Add({});

  auto& in = BuildCounter()
                 .Name("vrouter_messages_received_total")
                 .Help("Client messages decoded, by type")
                 .Register(r);
  for (std::size_t i = 0; i < messages_received.size(); ++i) {
    messages_received[i] = &in.Add({{"type", std::string(proto::kClientTypeNames[i])}});
  }
  auto& out = BuildCounter()
                  .Name("vrouter_messages_sent_total")
                  .Help("Messages sent to clients, by type")
                  .Register(r);
  for (std::size_t i = 0; i < messages_sent.size(); ++i) {
    messages_sent[i] = &out.Add({{"type", std::string(proto::kServerTypeNames[i])}});
  }
  auto& err = BuildCounter()
                  .Name("vrouter_errors_total")
                  .Help("Error frames sent to clients, by code")
                  .Register(r);
  for (int i = 0; i < proto::kErrorCodeCount; ++i) {
    errors[i] =
        &err.Add({{"code", std::string(proto::ErrorCodeName(static_cast<proto::ErrorCode>(i)))}});
  }
  auto& closes = BuildCounter()
                     .Name("vrouter_forced_closes_total")
                     .Help("Connections the router closed, by reason")
                     .Register(r);
  slow_consumer_closes = &closes.Add({{"reason", "slow_consumer"}});
  sessions_replaced = &closes.Add({{"reason", "session_replaced"}});
  protocol_closes = &closes.Add({{"reason", "protocol"}});
  rate_limit_closes = &closes.Add({{"reason", "rate_limited"}});
  auto& limited = BuildCounter()
                      .Name("vrouter_rate_limited_total")
                      .Help("Client messages refused with rate_limited, by type")
                      .Register(r);
  for (std::size_t i = 0; i < rate_limited.size(); ++i) {
    rate_limited[i] = &limited.Add({{"type", std::string(proto::kClientTypeNames[i])}});
  }
  auto& reloads = BuildCounter()
                      .Name("vrouter_reloads_total")
                      .Help(
                          "Files re-read after a change, by what and result (failed: the "
                          "previous version is kept)")
                      .Register(r);
  static constexpr const char* kReloadable[] = {"tls", "auth_keys", "region_cidrs"};
  for (std::size_t i = 0; i < reloads_ok.size(); ++i) {
    reloads_ok[i] = &reloads.Add({{"what", kReloadable[i]}, {"result", "ok"}});
    reloads_failed[i] = &reloads.Add({{"what", kReloadable[i]}, {"result", "failed"}});
  }
  tls_cert_expiry = &BuildGauge()
                         .Name("vrouter_tls_certificate_expiry_timestamp_seconds")
                         .Help(
                             "notAfter of the served TLS certificate (the earliest, when "
                             "there are several), unix seconds")
                         .Register(r)
                         .Add({});

  assignments = &BuildGauge()
                     .Name("vrouter_assignments")
                     .Help("Users with a video-server assignment")
                     .Register(r)
                     .Add({});
  assignments_written = &BuildCounter()
                             .Name("vrouter_assignments_written_total")
                             .Help("Assignments written (joins, re-assignments, resumes)")
                             .Register(r)
                             .Add({});
  assignments_expired = &BuildCounter()
                             .Name("vrouter_assignments_expired_total")
                             .Help("Assignments removed after their resume grace period")
                             .Register(r)
                             .Add({});
  watches = &BuildGauge()
                 .Name("vrouter_watches")
                 .Help("Active (watcher, user) pairs")
                 .Register(r)
                 .Add({});
  video_servers = &BuildGauge()
                       .Name("vrouter_video_servers")
                       .Help("Video servers known to this replica")
                       .Register(r)
                       .Add({});
  ready = &BuildGauge()
               .Name("vrouter_ready")
               .Help("1 when this replica accepts new clients")
               .Register(r)
               .Add({});

  auto& reports = BuildCounter()
                      .Name("vrouter_media_failure_reports_total")
                      .Help("Client reports of media failing through a video server, by reason")
                      .Register(r);
  for (int i = 0; i < proto::kFailureReasonCount; ++i) {
    media_failure_reports[i] = &reports.Add(
        {{"reason", std::string(proto::FailureReasonName(static_cast<proto::FailureReason>(i)))}});
  }

  // 50 us .. 1 s: lookups are memory reads; anything above a few ms means a stalled thread.
  lookup_seconds =
      &prometheus::BuildHistogram()
           .Name("vrouter_lookup_duration_seconds")
           .Help("Time to answer a lookup, from the wake-up that read it to its queued answer")
           .Register(r)
           .Add({}, prometheus::Histogram::BucketBoundaries{0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                                            0.0025, 0.005, 0.01, 0.025, 0.1, 1.0});

  store_errors = &BuildCounter()
                      .Name("vrouter_store_errors_total")
                      .Help(
                          "Client requests refused because the shared store was unreachable, "
                          "overloaded or slow")
                      .Register(r)
                      .Add({});
  auto& lookup_users_family = BuildCounter()
                                  .Name("vrouter_lookup_users_total")
                                  .Help("Users looked up, by where the answer came from")
                                  .Register(r);
  lookup_users[0] = &lookup_users_family.Add({{"source", "local"}});
  lookup_users[1] = &lookup_users_family.Add({{"source", "store"}});
  // 50 us .. 2.5 s: loopback Redis answers in ~100 us; the timeout defaults to 1 s.
  redis_command_seconds =
      &prometheus::BuildHistogram()
           .Name("vrouter_redis_command_duration_seconds")
           .Help("Redis round trip per command, from send to reply (failures included)")
           .Register(r)
           .Add({},
                prometheus::Histogram::BucketBoundaries{0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                                        0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 2.5});
  redis_command_errors = &BuildCounter()
                              .Name("vrouter_redis_command_errors_total")
                              .Help(
                                  "Redis commands that failed (disconnected, timed out, queue "
                                  "full, error reply)")
                              .Register(r)
                              .Add({});
  redis_reconnects = &BuildCounter()
                          .Name("vrouter_redis_reconnects_total")
                          .Help("Attempts to reconnect to Redis after an outage")
                          .Register(r)
                          .Add({});
  redis_up = &BuildGauge()
                  .Name("vrouter_redis_up")
                  .Help("1 when both Redis connections are up (0 with the in-memory store)")
                  .Register(r)
                  .Add({});
  redis_pending = &BuildGauge()
                       .Name("vrouter_redis_pending_commands")
                       .Help("Redis commands sent and not yet answered")
                       .Register(r)
                       .Add({});
  redis_primaries_down = &BuildGauge()
                              .Name("vrouter_redis_primaries_down")
                              .Help("Redis Cluster primaries down and not yet replaced")
                              .Register(r)
                              .Add({});
  store_resyncs = &BuildCounter()
                       .Name("vrouter_store_resyncs_total")
                       .Help("Full resynchronizations of the local copy after a Redis outage")
                       .Register(r)
                       .Add({});
  store_reasserted = &BuildCounter()
                          .Name("vrouter_store_reasserted_total")
                          .Help("Live users' assignments written back after Redis lost them")
                          .Register(r)
                          .Add({});
  store_channels_moved =
      &BuildCounter()
           .Name("vrouter_store_channels_moved_total")
           .Help("Shard channels subscribed again: their slot moved, or their node came back")
           .Register(r)
           .Add({});
  store_space_loads = &BuildCounter()
                           .Name("vrouter_store_space_loads_total")
                           .Help("Space snapshots loaded into the local copy")
                           .Register(r)
                           .Add({});
  store_local_spaces = &BuildGauge()
                            .Name("vrouter_store_local_spaces")
                            .Help("Spaces this replica keeps a local copy of")
                            .Register(r)
                            .Add({});
  store_gaps = &BuildCounter()
                    .Name("vrouter_store_sequence_gaps_total")
                    .Help("Space change streams that skipped a change (the space is reloaded)")
                    .Register(r)
                    .Add({});
  store_corrupt = &BuildCounter()
                       .Name("vrouter_store_corrupt_records_total")
                       .Help(
                           "Values read from the shared store that failed validation, by kind "
                           "(record, sequence, wrong_type, pointer, other); each is logged with "
                           "its key and repaired or isolated")
                       .Register(r);
  store_changes_rejected = &BuildCounter()
                                .Name("vrouter_store_changes_rejected_total")
                                .Help(
                                    "Change messages from the shared store's pub/sub not applied "
                                    "as published (malformed, wrong_channel: dropped; "
                                    "epoch_ahead: the record was read from the store instead)")
                                .Register(r);
  fleet_gossip_rejected = &BuildCounter()
                               .Name("vrouter_fleet_gossip_rejected_total")
                               .Help(
                                   "Fleet messages from other replicas refused: unsigned, "
                                   "bad_mac, stale, replayed, or undecodable")
                               .Register(r);

  server_state = &BuildGauge()
                      .Name("vrouter_video_server_state")
                      .Help("1 for the state each video server is in, 0 for the others")
                      .Register(r);
  server_effective_load = &BuildGauge()
                               .Name("vrouter_video_server_effective_load")
                               .Help(
                                   "Effective load the router scores each video server on, "
                                   "in users")
                               .Register(r);
  server_assigned = &BuildGauge()
                         .Name("vrouter_video_server_assigned_users")
                         .Help("Users the router's own table places on each video server")
                         .Register(r);
  server_packet_rate = &BuildGauge()
                            .Name("vrouter_video_server_packets_per_second")
                            .Help("Media packet rate from each server's last two reports")
                            .Register(r);
  auto& by_state = BuildGauge()
                       .Name("vrouter_video_servers_in_state")
                       .Help("Video servers per state")
                       .Register(r);
  for (int i = 0; i < fleet::kServerStateCount; ++i) {
    servers_in_state[i] = &by_state.Add(
        {{"state", std::string(fleet::ServerStateName(static_cast<fleet::ServerState>(i)))}});
  }
  auto& ejected = BuildCounter()
                      .Name("vrouter_video_server_ejections_total")
                      .Help("Video servers ejected, by the rule that ejected them")
                      .Register(r);
  for (int i = 0; i < fleet::kEjectReasonCount; ++i) {
    ejections[i] = &ejected.Add(
        {{"reason", std::string(fleet::EjectReasonName(static_cast<fleet::EjectReason>(i)))}});
  }
  fleet_panic = &BuildGauge()
                     .Name("vrouter_fleet_panic")
                     .Help(
                         "1 while too much of the fleet looks bad to eject: health evidence is "
                         "set aside (fail open)")
                     .Register(r)
                     .Add({});
  panics = &BuildCounter()
                .Name("vrouter_fleet_panics_total")
                .Help("Times the fleet entered panic (fail open)")
                .Register(r)
                .Add({});
  auto& stats = BuildCounter()
                    .Name("vrouter_video_server_reports_total")
                    .Help("Video-server stats reports, by what the router made of them")
                    .Register(r);
  for (int i = 0; i < fleet::kStatsVerdictCount; ++i) {
    stats_reports[i] = &stats.Add(
        {{"result", std::string(fleet::StatsVerdictName(static_cast<fleet::StatsVerdict>(i)))}});
  }
  stats_invalid = &stats.Add({{"result", "invalid"}});
  auto& migrated = BuildCounter()
                       .Name("vrouter_migrations_total")
                       .Help("Users moved off a video server, by cause")
                       .Register(r);
  for (std::size_t i = 0; i < migrations.size(); ++i) {
    migrations[i] = &migrated.Add({{"cause", std::string(fleet::EvacuationCauseName(
                                                 static_cast<fleet::EvacuationCause>(i)))}});
  }
  migrations_failed = &BuildCounter()
                           .Name("vrouter_migrations_failed_total")
                           .Help(
                               "Migrations not done (no eligible target, or a concurrent write "
                               "won); retried on the next step")
                           .Register(r)
                           .Add({});
  auto& picked = BuildCounter()
                     .Name("vrouter_picks_total")
                     .Help("Video servers chosen for new users, by the tier they came from")
                     .Register(r);
  for (std::size_t i = 0; i < picks.size(); ++i) {
    picks[i] = &picked.Add({{"tier", std::string(fleet::PickTierName(
                                         static_cast<fleet::PickTier>(static_cast<int>(i) + 1)))}});
  }
  picks_space_affinity = &BuildCounter()
                              .Name("vrouter_picks_space_affinity_total")
                              .Help("Picks that kept a user with its space on one server")
                              .Register(r)
                              .Add({});
  auto& admitted = BuildCounter()
                       .Name("vrouter_admissions_total")
                       .Help(
                           "Placements put to the video servers' fleet-wide admission budgets, by "
                           "outcome (several replicas on a shared store)")
                       .Register(r);
  for (std::size_t i = 0; i < admissions.size(); ++i) {
    static constexpr const char* kOutcomes[] = {"admitted", "refused", "unreachable"};
    admissions[i] = &admitted.Add({{"outcome", kOutcomes[i]}});
  }
  video_server_connections = &BuildGauge()
                                  .Name("vrouter_video_server_connections")
                                  .Help("Registered video-server connections to this replica")
                                  .Register(r)
                                  .Add({});
  auto& refused = BuildCounter()
                      .Name("vrouter_video_server_registrations_refused_total")
                      .Help(
                          "Video-server registrations refused although the credential was good, "
                          "by reason: declared_mismatch (url, region or capacity differ from the "
                          "fleet file), url_malformed, url_scheme, url_host")
                      .Register(r);
  const char* const kRefusals[] = {"declared_mismatch", "url_malformed", "url_scheme", "url_host"};
  for (std::size_t i = 0; i < registrations_refused.size(); ++i) {
    registrations_refused[i] = &refused.Add({{"reason", kRefusals[i]}});
  }
  registered_capacity_capped =
      &BuildCounter()
           .Name("vrouter_video_server_capacity_capped_total")
           .Help("Self-registered video servers that claimed more than --max-registered-capacity")
           .Register(r)
           .Add({});
}

}  // namespace vrouter::telemetry
