#include "bench/fleetsim/admission_budget.h"

#include <gtest/gtest.h>

namespace vrouter::bench::fleetsim {
namespace {

using std::chrono::milliseconds;

const base::SteadyTime kT0 = base::SteadyTime{} + std::chrono::hours(1);

TEST(AdmissionBudget, AdmitsUpToTheCapPerWindowAndReturnsTheCount) {
  AdmissionBudget budget(2);
  for (std::uint32_t i = 1; i <= 3; ++i) {
    const AdmitResult r = budget.Admit(0, 3, milliseconds(1000), kT0 + milliseconds(i));
    EXPECT_TRUE(r.admitted);
    EXPECT_EQ(r.count, i);
  }
  const AdmitResult refused = budget.Admit(0, 3, milliseconds(1000), kT0 + milliseconds(400));
  EXPECT_FALSE(refused.admitted);
  // The window started at the first admission (kT0 + 1 ms): 601 ms left.
  EXPECT_EQ(refused.remaining, milliseconds(601));
  // Another server has its own counter.
  EXPECT_TRUE(budget.Admit(1, 3, milliseconds(1000), kT0 + milliseconds(400)).admitted);
}

TEST(AdmissionBudget, ANewWindowStartsAtTheFirstAdmissionAfterTheOldOneExpired) {
  AdmissionBudget budget(1);
  EXPECT_TRUE(budget.Admit(0, 1, milliseconds(1000), kT0).admitted);
  EXPECT_FALSE(budget.Admit(0, 1, milliseconds(1000), kT0 + milliseconds(999)).admitted);
  // Expired at kT0 + 1000 ms; nothing for a while; the next window starts at 2500 ms.
  const AdmitResult r = budget.Admit(0, 1, milliseconds(1000), kT0 + milliseconds(2500));
  EXPECT_TRUE(r.admitted);
  EXPECT_EQ(r.count, 1u);
  const AdmitResult refused = budget.Admit(0, 1, milliseconds(1000), kT0 + milliseconds(3000));
  EXPECT_FALSE(refused.admitted);
  EXPECT_EQ(refused.remaining, milliseconds(500));
}

TEST(AdmissionBudget, ACapRaisedMidWindowAdmitsTheDifference) {
  // Replicas may pass different caps (a newcomer's slow start seen a little apart): the counter
  // is compared with the cap of each call.
  AdmissionBudget budget(1);
  EXPECT_TRUE(budget.Admit(0, 1, milliseconds(1000), kT0).admitted);
  EXPECT_FALSE(budget.Admit(0, 1, milliseconds(1000), kT0).admitted);
  EXPECT_TRUE(budget.Admit(0, 2, milliseconds(1000), kT0).admitted);
  EXPECT_FALSE(budget.Admit(0, 2, milliseconds(1000), kT0).admitted);
}

}  // namespace
}  // namespace vrouter::bench::fleetsim
