// Codec cost per message: the router decodes every client frame and encodes every answer.
//   build/release/bench/micro_bench --benchmark_filter=Codec
#include <benchmark/benchmark.h>

#include "proto/codec.h"

namespace {
using namespace vrouter::proto;

void BM_CodecDecodeLookup(benchmark::State& state) {
  Lookup lookup{1, {}};
  for (int i = 0; i < state.range(0); ++i) lookup.users.push_back("user-" + std::to_string(i));
  const std::string text = Encode(lookup);
  for (auto _ : state) benchmark::DoNotOptimize(DecodeClientMessage(text));
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(text.size()));
}
BENCHMARK(BM_CodecDecodeLookup)->Arg(1)->Arg(10)->Arg(100);

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

void BM_CodecDecodeHello(benchmark::State& state) {
  const std::string text = Encode(ClientMessage(Hello{1, std::string(180, 'x')}));
  for (auto _ : state) benchmark::DoNotOptimize(DecodeClientMessage(text));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CodecDecodeHello);
}  // namespace
