#include "router/fleet/registration_policy.h"

#include <gtest/gtest.h>

namespace vrouter::fleet {
namespace {

VideoServer Offer(std::string url, std::uint32_t capacity = 100) {
  return {"sfu-1", std::move(url), "eu", capacity, true};
}

std::optional<RegistrationRefusal> RefusalOf(const std::variant<Accepted, Refused>& v) {
  if (const auto* r = std::get_if<Refused>(&v)) return r->reason;
  return std::nullopt;
}

TEST(RegistrationPolicy, UrlsMustBeSecureWellFormedAndOnAllowedHosts) {
  RegistrationPolicy p;
  EXPECT_EQ(RefusalOf(VetRegistration(Offer("wss://sfu-1.media.example.com:8443/rtc"), nullptr, p)),
            std::nullopt);
  EXPECT_EQ(RefusalOf(VetRegistration(Offer("HTTPS://SFU-1.example/"), nullptr, p)), std::nullopt);
  EXPECT_EQ(RefusalOf(VetRegistration(Offer("javascript:alert(1)"), nullptr, p)),
            RegistrationRefusal::kUrlMalformed);
  EXPECT_EQ(RefusalOf(VetRegistration(Offer("wss://a.example@evil.example/"), nullptr, p)),
            RegistrationRefusal::kUrlMalformed);
  EXPECT_EQ(RefusalOf(VetRegistration(Offer("wss:///path"), nullptr, p)),
            RegistrationRefusal::kUrlMalformed);
  EXPECT_EQ(RefusalOf(VetRegistration(Offer("ws://sfu-1/"), nullptr, p)),
            RegistrationRefusal::kUrlScheme);
  p.url_schemes.push_back("ws");
  EXPECT_EQ(RefusalOf(VetRegistration(Offer("ws://sfu-1/"), nullptr, p)), std::nullopt);
  p.url_hosts = {"media.example.com"};
  EXPECT_EQ(RefusalOf(VetRegistration(Offer("wss://media.example.com/"), nullptr, p)),
            std::nullopt);
  EXPECT_EQ(RefusalOf(VetRegistration(Offer("wss://[::1]:8443/"), nullptr, p)),
            RegistrationRefusal::kUrlHost);
  EXPECT_EQ(RefusalOf(VetRegistration(Offer("wss://sfu-1.media.example.com/"), nullptr, p)),
            std::nullopt);
  EXPECT_EQ(RefusalOf(VetRegistration(Offer("wss://evilmedia.example.com/"), nullptr, p)),
            RegistrationRefusal::kUrlHost);
  EXPECT_EQ(RefusalOf(VetRegistration(Offer("wss://media.example.com.evil.test/"), nullptr, p)),
            RegistrationRefusal::kUrlHost);
}

TEST(RegistrationPolicy, HostsAreReadAsBrowsersReadThem) {
  RegistrationPolicy p;
  p.url_hosts = {".media.example.com"};  // a leading dot means the same as none
  for (const char* bad :
       {"wss://evil.example\\.media.example.com/", "wss://\\evil.example/x",
        "wss://evil.example .media.example.com/", "wss://[::1]evil/", "wss://[zz]/",
        "wss://media.example.com:port/", "wss://media.example.com:123456/",
        "wss://.media.example.com/", "wss://media.example.com:/"}) {
    EXPECT_EQ(RefusalOf(VetRegistration(Offer(bad), nullptr, p)),
              RegistrationRefusal::kUrlMalformed)
        << bad;
  }
  EXPECT_EQ(RefusalOf(VetRegistration(Offer("wss://sfu.media.example.com./rtc"), nullptr, p)),
            std::nullopt);
  EXPECT_EQ(
      RefusalOf(VetRegistration(Offer("wss://SFU.Media.Example.COM:443/rtc?x=1"), nullptr, p)),
      std::nullopt);
}

TEST(RegistrationPolicy, SelfRegisteredCapacityIsCapped) {
  RegistrationPolicy p;
  p.max_capacity = 500;
  const auto v = VetRegistration(Offer("wss://sfu-1/", 1'000'000), nullptr, p);
  ASSERT_TRUE(std::holds_alternative<Accepted>(v));
  EXPECT_EQ(std::get<Accepted>(v).server.capacity, 500u);
  EXPECT_TRUE(std::get<Accepted>(v).capacity_capped);
  EXPECT_FALSE(
      std::get<Accepted>(VetRegistration(Offer("wss://sfu-1/", 500), nullptr, p)).capacity_capped);
}

TEST(RegistrationPolicy, DeclaredServersKeepTheFleetFilesValues) {
  const VideoServer declared{"sfu-1", "ws://10.0.0.1:8188/", "eu", 100, false};
  RegistrationPolicy p;  // ws:// is the operator's choice for a declared server
  const auto same = VetRegistration(Offer("ws://10.0.0.1:8188/"), &declared, p);
  ASSERT_TRUE(std::holds_alternative<Accepted>(same));
  EXPECT_TRUE(std::get<Accepted>(same).server.monitored);
  EXPECT_EQ(RefusalOf(VetRegistration(Offer("wss://elsewhere/"), &declared, p)),
            RegistrationRefusal::kDeclaredMismatch);
  EXPECT_EQ(RefusalOf(VetRegistration(Offer("ws://10.0.0.1:8188/", 101), &declared, p)),
            RegistrationRefusal::kDeclaredMismatch);
  VideoServer other_region = Offer("ws://10.0.0.1:8188/");
  other_region.region = "us";
  EXPECT_EQ(RefusalOf(VetRegistration(other_region, &declared, p)),
            RegistrationRefusal::kDeclaredMismatch);
}

}  // namespace
}  // namespace vrouter::fleet
