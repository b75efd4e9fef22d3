#include "bench/fleetsim/admission_budget.h"

#include <gtest/gtest.h>

namespace vrouter::bench::fleetsim {
namespace {

using std::chrono::milliseconds;

const base::SteadyTime kT0 = base::SteadyTime{} + std::chrono::hours(1);
constexpr std::uint32_t kRoomy = 1000;  // a room that never refuses
constexpr milliseconds kHorizon{2250};

TEST(AdmissionBudget, AdmitsUpToTheCapPerWindowAndReturnsTheCount) {
  AdmissionBudget budget(2);
  for (std::uint32_t i = 1; i <= 3; ++i) {
    const AdmitResult r =
        budget.Admit(0, 3, kRoomy, milliseconds(1000), kHorizon, kT0 + milliseconds(i));
    EXPECT_TRUE(r.admitted);
    EXPECT_EQ(r.count, i);
  }
  const AdmitResult refused =
      budget.Admit(0, 3, kRoomy, milliseconds(1000), kHorizon, kT0 + milliseconds(400));
  EXPECT_FALSE(refused.admitted);
  // The window started at the first admission (kT0 + 1 ms): 601 ms left.
  EXPECT_EQ(refused.remaining, milliseconds(601));
  // Another server has its own counter.
  EXPECT_TRUE(
      budget.Admit(1, 3, kRoomy, milliseconds(1000), kHorizon, kT0 + milliseconds(400)).admitted);
}

TEST(AdmissionBudget, ANewWindowStartsAtTheFirstAdmissionAfterTheOldOneExpired) {
  AdmissionBudget budget(1);
  EXPECT_TRUE(budget.Admit(0, 1, kRoomy, milliseconds(1000), kHorizon, kT0).admitted);
  EXPECT_FALSE(
      budget.Admit(0, 1, kRoomy, milliseconds(1000), kHorizon, kT0 + milliseconds(999)).admitted);
  // Expired at kT0 + 1000 ms; nothing for a while; the next window starts at 2500 ms.
  const AdmitResult r =
      budget.Admit(0, 1, kRoomy, milliseconds(1000), kHorizon, kT0 + milliseconds(2500));
  EXPECT_TRUE(r.admitted);
  EXPECT_EQ(r.count, 1u);
  const AdmitResult refused =
      budget.Admit(0, 1, kRoomy, milliseconds(1000), kHorizon, kT0 + milliseconds(3000));
  EXPECT_FALSE(refused.admitted);
  EXPECT_EQ(refused.remaining, milliseconds(500));
}

TEST(AdmissionBudget, ACapRaisedMidWindowAdmitsTheDifference) {
  // Replicas may pass different caps (a newcomer's slow start seen a little apart): the counter
  // is compared with the cap of each call.
  AdmissionBudget budget(1);
  EXPECT_TRUE(budget.Admit(0, 1, kRoomy, milliseconds(1000), kHorizon, kT0).admitted);
  EXPECT_FALSE(budget.Admit(0, 1, kRoomy, milliseconds(1000), kHorizon, kT0).admitted);
  EXPECT_TRUE(budget.Admit(0, 2, kRoomy, milliseconds(1000), kHorizon, kT0).admitted);
  EXPECT_FALSE(budget.Admit(0, 2, kRoomy, milliseconds(1000), kHorizon, kT0).admitted);
}

// The callers' views of a server's load lag (kAdmitScript): whatever the windows, the admissions
// of the last `horizon` count against the room the caller sees.
TEST(AdmissionBudget, RecentAdmissionsCountAgainstTheCallersRoomAcrossWindows) {
  AdmissionBudget budget(1);
  EXPECT_TRUE(budget.Admit(0, 10, 2, milliseconds(1000), kHorizon, kT0).admitted);
  EXPECT_TRUE(budget.Admit(0, 10, 2, milliseconds(1000), kHorizon, kT0 + milliseconds(1500))
                  .admitted);  // a new window: the first admission is still remembered
  const AdmitResult refused =
      budget.Admit(0, 10, 2, milliseconds(1000), kHorizon, kT0 + milliseconds(1600));
  EXPECT_FALSE(refused.admitted);
  EXPECT_EQ(refused.count, 1u);
  EXPECT_EQ(refused.remaining, milliseconds(650));  // until the first is forgotten
  EXPECT_TRUE(budget.Admit(0, 10, 3, milliseconds(1000), kHorizon, kT0 + milliseconds(1600))
                  .admitted);  // a caller that sees more room
  EXPECT_TRUE(budget.Admit(0, 10, 3, milliseconds(1000), kHorizon, kT0 + milliseconds(2250))
                  .admitted);  // the first is forgotten
}

TEST(AdmissionBudget, PerReportCountsStartOverWithEachNewReportAndKeepThePreviousOne) {
  AdmissionBudget budget(1);
  const auto interval = milliseconds(1000);
  EXPECT_EQ(budget.AdmitInReport(0, 7, 2, interval, kT0).count, 1u);
  EXPECT_EQ(budget.AdmitInReport(0, 7, 2, interval, kT0 + milliseconds(100)).count, 2u);
  const AdmitResult full = budget.AdmitInReport(0, 7, 2, interval, kT0 + milliseconds(300));
  EXPECT_FALSE(full.admitted);
  EXPECT_EQ(full.remaining, milliseconds(700));
  // Report 8 reached one replica: its count starts from zero ...
  EXPECT_EQ(budget.AdmitInReport(0, 8, 2, interval, kT0 + milliseconds(900)).count, 1u);
  // ... while a replica still on report 7 keeps counting against 7.
  EXPECT_FALSE(budget.AdmitInReport(0, 7, 2, interval, kT0 + milliseconds(901)).admitted);
  EXPECT_EQ(budget.AdmitInReport(0, 8, 2, interval, kT0 + milliseconds(902)).count, 2u);
}

}  // namespace
}  // namespace vrouter::bench::fleetsim
