#include "cli/bench_workload.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "index/block_hash.h"

namespace kvr::cli {
namespace {

struct Conversation {
  std::vector<TokenId> tokens;
  std::vector<EngineHash> hashes;  // engine hashes of its full blocks on each holder
  uint32_t home = 0, second = 0;
  uint32_t system_prompt = 0;
  bool replicated = false;
};

void AppendRandom(std::vector<TokenId>* t, size_t n, Rng& rng) {
  for (size_t i = 0; i < n; ++i) t->push_back(static_cast<TokenId>(rng.Uniform(128000)));
}

KvStored StoreEvent(uint32_t worker, const std::vector<TokenId>& tokens, uint32_t bs, size_t first,
                    size_t last) {
  KvStored e{.worker = WorkerId(worker), .block_size = bs};
  auto seq = SequenceHashes(std::span(tokens).first(last * bs), bs);
  auto eh = [&](size_t i) { return EngineHash(seq[i].value() ^ (0x5bd1e995ULL * (worker + 1))); };
  if (first > 0) e.parent = eh(first - 1);
  for (size_t i = first; i < last; ++i) e.block_hashes.push_back(eh(i));
  e.token_ids.assign(tokens.begin() + first * bs, tokens.begin() + last * bs);
  return e;
}

}  // namespace

SyntheticWorkload MakeSyntheticWorkload(const SyntheticOptions& o) {
  Rng rng(o.seed);
  const uint32_t bs = o.block_size;
  std::vector<std::vector<TokenId>> system(o.system_prompts);
  for (auto& s : system) AppendRandom(&s, size_t{o.system_blocks} * bs, rng);
  SyntheticWorkload w;
  std::vector<Conversation> live;
  std::set<std::pair<uint32_t, uint32_t>> stored_system;  // (worker, system prompt)
  uint64_t entries = 0;
  while (entries < o.target_entries) {
    if (live.size() < 4 * o.workers || rng.Uniform(8) == 0) {
      // New conversation: system prompt i with probability ∝ 1/(i+1) (Zipf, s = 1).
      Conversation c;
      double u = rng.UniformDouble() * std::log(double(o.system_prompts) + 1);
      size_t sp = std::min<size_t>(o.system_prompts - 1, size_t(std::exp(u)) - 1);
      c.tokens = system[sp];
      c.system_prompt = uint32_t(sp);
      c.home = uint32_t(rng.Uniform(o.workers));
      c.replicated = rng.Uniform(10) == 0;
      c.second =
          o.workers > 1 ? uint32_t((c.home + 1 + rng.Uniform(o.workers - 1)) % o.workers) : c.home;
      c.replicated &= c.second != c.home;
      live.push_back(std::move(c));
    }
    const size_t pick = rng.Uniform(live.size());
    Conversation& c = live[pick];
    const size_t before = c.tokens.size() / bs;
    AppendRandom(&c.tokens, size_t(8 + rng.Uniform(25)) * bs, rng);
    const size_t after = std::min<size_t>(c.tokens.size() / bs, o.max_blocks);
    for (uint32_t worker : {c.home, c.second}) {
      if (worker != c.home && !c.replicated) continue;
      // A worker stores each system prompt once (from the root); turns extend it.
      if (before == o.system_blocks && stored_system.insert({worker, c.system_prompt}).second) {
        w.events.push_back(StoreEvent(worker, c.tokens, bs, 0, before));
        w.blocks += before;
        entries += before;
      }
      w.events.push_back(StoreEvent(worker, c.tokens, bs, before, after));
      w.blocks += after - before;
      entries += after - before;
    }
    if (after >= o.max_blocks) {
      c.tokens.resize(size_t{o.max_blocks} * bs);
      w.conversations.push_back(std::move(c.tokens));
      live[pick] = std::move(live.back());
      live.pop_back();
    }
  }
  for (auto& c : live) w.conversations.push_back(std::move(c.tokens));
  return w;
}

std::vector<TokenId> QueryPrompt(const SyntheticWorkload& w, uint32_t bs, uint32_t blocks,
                                 Rng& rng) {
  std::vector<TokenId> p = w.conversations[rng.Uniform(w.conversations.size())];
  p.resize(std::min<size_t>(p.size() / bs, blocks) * bs);
  AppendRandom(&p, size_t{blocks} * bs - p.size(), rng);
  return p;
}

Percentiles ComputePercentiles(std::vector<double>* samples) {
  Percentiles p;
  std::vector<double>& s = *samples;
  if (s.empty()) return p;
  std::sort(s.begin(), s.end());
  auto rank = [&](double q) {
    return s[std::min(s.size() - 1, size_t(std::ceil(q * s.size())) - 1)];
  };
  p.p50 = rank(0.50);
  p.p99 = rank(0.99);
  double sum = 0;
  for (double x : s) sum += x;
  p.mean = sum / double(s.size());
  return p;
}

}  // namespace kvr::cli
