// libFuzzer target for the KV index: arbitrary bytes become a stream of engine events (stores
// with known, unknown or absent parents, wrong block sizes, malformed token counts, aliased and
// duplicate engine hashes, removals of known and unknown hashes, clears, worker removals, worker
// ids past the limit), predictions with TTL and capacity, and queries. KvIndex must never crash
// and must answer every query exactly as the naive oracle does.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "index/block_hash.h"
#include "index/kv_index.h"
#include "index/naive_index.h"

namespace {

constexpr uint32_t kBs = 2;

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  bool more() const { return p_ < end_; }
  uint8_t Byte() { return p_ < end_ ? *p_++ : 0; }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// Token runs drawn from a tiny alphabet, so prefixes repeat and blocks are shared.
std::vector<kvr::TokenId> Tokens(Reader& r, size_t blocks) {
  std::vector<kvr::TokenId> t(blocks * kBs);
  for (auto& x : t) x = r.Byte() % 3;
  return t;
}

kvr::KvStored Store(Reader& r, uint32_t worker) {
  const size_t blocks = 1 + r.Byte() % 4;
  kvr::KvStored e{.worker = kvr::WorkerId(worker), .tier = kvr::Tier(r.Byte() % 3)};
  e.token_ids = Tokens(r, blocks);
  e.block_size = r.Byte() % 16 == 0 ? kBs + 1 : kBs;
  if (r.Byte() % 16 == 0 && !e.token_ids.empty()) e.token_ids.pop_back();
  const uint8_t parent = r.Byte();
  if (parent % 2 == 1) e.parent = kvr::EngineHash(parent % 32);
  for (size_t i = 0; i < blocks; ++i) e.block_hashes.emplace_back(r.Byte() % 32);
  return e;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader r(data, size);
  kvr::ManualClock clock;
  kvr::IndexConfig config{.block_size = kBs, .max_workers = 80,
                          .predict = {.ttl = 20, .capacity_blocks = 6}};
  kvr::KvIndex index(config, clock);
  kvr::NaiveIndex naive(config);
  for (int ops = 0; r.more() && ops < 2000; ++ops) {
    const uint8_t op = r.Byte();
    // Worker ids cluster around 0 and 64 (the inline word and the spill rows) and past 80.
    const uint32_t worker = (op & 0x80 ? 60 : 0) + r.Byte() % 24;
    switch (op % 8) {
      case 0:
      case 1: {
        const kvr::KvEvent e = Store(r, worker);
        index.Apply(e);
        naive.Apply(e);
        break;
      }
      case 2: {
        kvr::KvRemoved e{.worker = kvr::WorkerId(worker), .tier = kvr::Tier(r.Byte() % 3)};
        for (int i = 0, n = 1 + r.Byte() % 3; i < n; ++i) e.block_hashes.emplace_back(r.Byte() % 32);
        index.Apply(e);
        naive.Apply(e);
        break;
      }
      case 3:
        if (r.Byte() % 4 == 0) {
          index.Apply(kvr::KvCleared{kvr::WorkerId(worker)});
          naive.Apply(kvr::KvCleared{kvr::WorkerId(worker)});
        } else if (r.Byte() % 4 == 0) {
          index.RemoveWorker(kvr::WorkerId(worker));
          naive.RemoveWorker(kvr::WorkerId(worker));
        }
        break;
      case 4: {
        auto blocks = kvr::SequenceHashes(Tokens(r, 1 + r.Byte() % 4), kBs);
        index.Predict(kvr::WorkerId(worker), blocks);
        naive.Predict(kvr::WorkerId(worker), blocks, clock.Now());
        break;
      }
      case 5:
        clock.Advance(r.Byte() % 8);
        break;
      default: {
        auto blocks = kvr::SequenceHashes(Tokens(r, 1 + r.Byte() % 6), kBs);
        const kvr::OverlapScores a = index.Query(blocks);
        const kvr::OverlapScores b = naive.Query(blocks, clock.Now());
        if (a.device != b.device || a.host != b.host || a.storage != b.storage ||
            a.predicted != b.predicted || a.cached_blocks != b.cached_blocks) {
          std::abort();
        }
      }
    }
  }
  if (index.Entries() != naive.Entries()) std::abort();
  return 0;
}
