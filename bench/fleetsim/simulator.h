// The fleet simulator (issue 20): R router replicas, each with its own fleet::FleetModel (the
// real scoring, ejection and model code), S video servers and U users on simulated time, driven
// by one seeded event queue. No sockets, no threads, no wall clock: the same scenario and seed
// give the same run.
//
// What each replica sees, and when (router/service/fleet_controller.cc does the same):
//   - a server's registration and reports: at once on the replica it is connected to, and on
//     every other replica after the pub/sub delay (the registration rides along with the stats);
//   - client failure reports: at once on the user's replica, gossiped to the others likewise;
//   - the fleet-wide users per server (SetOwn): refreshed once a second from every replica's
//     placements, plus its own placements and departures as they happen;
//   - its own placements' pending counts (FleetModel::Choose), and with the shared budget the
//     fleet-wide count the budget returns (Admitted) or its refusal (AdmissionRefused);
//   - Tick once a report interval (replicas staggered over the interval), then its own users'
//     migrations off evacuated servers (DueEvacuations), each through Choose like a join.
// Servers report every interval from the users actually placed on them. Users join in surges,
// retry refused joins with the JS client's full-jitter backoff, leave (churn), and report
// no_media while their server does not forward.
#pragma once

#include "bench/fleetsim/outcome.h"
#include "bench/fleetsim/scenario.h"
#include "router/fleet/fleet_model.h"

namespace vrouter::bench::fleetsim {

// Runs `scenario` with `admission`; every replica's model gets `params` (the router's defaults
// unless a test says otherwise). The scenario must be valid (Validate).
Outcome Simulate(const Scenario& scenario, Admission admission, const fleet::FleetParams& params);

}  // namespace vrouter::bench::fleetsim
