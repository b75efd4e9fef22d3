// Codec cost per message: the router decodes every client frame and encodes every answer.
//   build/release/bench/micro_bench --benchmark_filter=Codec
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>
#include <vector>

#include "proto/client_view.h"
#include "proto/codec.h"

namespace {
using namespace vrouter::proto;

std::string LookupFrame(std::int64_t users) {
  Lookup lookup{1, {}};
  for (std::int64_t i = 0; i < users; ++i) lookup.users.push_back("user-" + std::to_string(i));
  return Encode(lookup);
}

// `decode` over a lookup frame of state.range(0) users.
template <class Decode>
void DecodeLookupWith(benchmark::State& state, Decode decode) {
  const std::string text = LookupFrame(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(decode(text));
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(text.size()));
}

// What DecodeClientMessage costs: the in-place reader, then the owning message.
void BM_CodecDecodeLookup(benchmark::State& state) { DecodeLookupWith(state, DecodeClientMessage); }
BENCHMARK(BM_CodecDecodeLookup)->Arg(1)->Arg(10)->Arg(100);

// The reference decoder (Boost.JSON DOM), what DecodeClientMessage cost before issue 21.
void BM_CodecDecodeLookupDom(benchmark::State& state) {
  DecodeLookupWith(state, DecodeClientMessageDom);
}
BENCHMARK(BM_CodecDecodeLookupDom)->Arg(1)->Arg(10)->Arg(100);

// What the router's lookup path does: the in-place reader only (views, no owning message).
void BM_CodecReadLookupView(benchmark::State& state) {
  DecodeLookupWith(state, [view = ClientView()](std::string_view text) mutable {
    return ReadClientView(text, view);
  });
}
BENCHMARK(BM_CodecReadLookupView)->Arg(1)->Arg(10)->Arg(100);

void BM_CodecEncodeLookupResult(benchmark::State& state) {
  LookupResult r{1, {}};
  for (int i = 0; i < state.range(0); ++i) {
    r.results.push_back(UserLocation{"user-" + std::to_string(i),
                                     ServerRef{"sfu-1", "wss://sfu-1.example/", "eu-west"}, 42});
  }
  const ServerMessage m = r;
  for (auto _ : state) benchmark::DoNotOptimize(Encode(m));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CodecEncodeLookupResult)->Arg(1)->Arg(10)->Arg(100);

// What the router's lookup path does: the answer written from views into a reused buffer.
void BM_CodecEncodeLocationsTo(benchmark::State& state) {
  std::vector<std::string> users;
  std::vector<UserLocationView> results;
  for (std::int64_t i = 0; i < state.range(0); ++i) users.push_back("user-" + std::to_string(i));
  for (const auto& u : users) {
    results.push_back({u, ServerRefView{"sfu-1", "wss://sfu-1.example/", "eu-west"}, 42});
  }
  std::string out;
  for (auto _ : state) {
    out.clear();
    EncodeLocationsTo(LocationsType::kLookupResult, 1, results, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CodecEncodeLocationsTo)->Arg(1)->Arg(10)->Arg(100);

void BM_CodecDecodeHello(benchmark::State& state) {
  const std::string text = Encode(ClientMessage(Hello{1, std::string(180, 'x')}));
  for (auto _ : state) benchmark::DoNotOptimize(DecodeClientMessage(text));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CodecDecodeHello);
}  // namespace
