#include "gateway/slot_model.h"

#include <algorithm>
#include <utility>

namespace kvr::gateway {
namespace {

// llama.cpp's thresholds (server_prompt_cache::load, get_available_slot).
constexpr double kMinKeepToLoad = 0.25;  // a saved prompt is loaded only if this much of it is used
constexpr double kKeepToSave = 0.5;      // a slot keeping less than this of its prompt is saved

int TierIndex(Tier tier) { return tier == Tier::kDevice ? 0 : 1; }

double Ratio(uint64_t num, uint64_t den) { return den == 0 ? 0.0 : double(num) / double(den); }

}  // namespace

uint32_t CommonBlocks(std::span<const BlockHash> a, std::span<const BlockHash> b) {
  // Chained hashes: the first differing block ends the shared prefix.
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return static_cast<uint32_t>(i);
}

SlotModel::SlotModel(SlotModelConfig config)
    : config_(config), slots_(std::max<uint32_t>(1, config.slots)) {}

uint64_t SlotModel::Arrive(std::span<const BlockHash> blocks, uint32_t prompt_tokens,
                           std::vector<KvEvent>* events) {
  const uint64_t id = next_request_++;
  Request& r = requests_[id];
  r.prompt.blocks.assign(blocks.begin(), blocks.end());
  r.prompt.tokens = prompt_tokens;
  Place(id, r, events);
  return id;
}

std::optional<SlotPlacement> SlotModel::Placement(uint64_t request) const {
  auto it = requests_.find(request);
  if (it == requests_.end()) return std::nullopt;
  return it->second.placed;
}

// get_available_slot: the idle slot with the longest common prefix above the similarity
// threshold, else the least recently used idle slot (the last of equals, as llama.cpp's `<=`).
SlotModel::Pick SlotModel::PickSlot(const Content& prompt) const {
  std::optional<uint32_t> best;
  double f_best = 0;
  uint64_t lcp_best = 0;
  for (uint32_t i = 0; config_.similarity != 0 && i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    if (s.request != 0 || s.content.tokens == 0) continue;
    const uint64_t lcp = uint64_t{CommonBlocks(s.content.blocks, prompt.blocks)} *
                         config_.block_size;
    const double f = Ratio(lcp, prompt.tokens);
    if (f > f_best && f > config_.similarity) {
      f_best = f;
      lcp_best = lcp;
      best = i;
    }
  }
  if (best) {
    return {.slot = best,
            .by_similarity = true,
            .update_cache = Ratio(lcp_best, slots_[*best].content.tokens) < kKeepToSave};
  }
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].request != 0) continue;
    if (!best || slots_[i].last_used <= slots_[*best].last_used) best = i;
  }
  return {.slot = best, .update_cache = best.has_value()};
}

void SlotModel::Place(uint64_t id, Request& r, std::vector<KvEvent>* events) {
  const Pick pick = PickSlot(r.prompt);
  if (!pick.slot) {
    waiting_.push_back(id);
    return;
  }
  Slot& s = slots_[*pick.slot];
  bool restored = false;
  if (pick.update_cache && config_.prompt_cache_tokens > 0) {
    Save(s.content, events);
    if (std::optional<Content> loaded = Load(s.content, r.prompt, events)) {
      SetSlot(s, *std::move(loaded), events);
      restored = true;
    }
  }
  r.placed = SlotPlacement{.slot = *pick.slot,
                           .cached_blocks = CommonBlocks(s.content.blocks, r.prompt.blocks),
                           .by_similarity = pick.by_similarity,
                           .restored = restored};
  SetSlot(s, r.prompt, events);
  s.request = id;
  if (config_.prompt_cache_tokens > 0) {
    // --cache-idle-slots (on by default): every idle slot is saved at each new request.
    for (const Slot& other : slots_) {
      if (other.request == 0) Save(other.content, events);
    }
  }
}

void SlotModel::Finish(uint64_t request, std::vector<KvEvent>* events) {
  auto it = requests_.find(request);
  if (it == requests_.end()) return;
  if (!it->second.placed) {
    std::erase(waiting_, request);
    requests_.erase(it);
    return;
  }
  Slot& s = slots_[it->second.placed->slot];
  s.request = 0;
  s.last_used = ++tick_;
  requests_.erase(it);
  // The deferred requests are retried in order; the first takes the freed slot.
  const auto any_idle = [this] {
    return std::any_of(slots_.begin(), slots_.end(), [](const Slot& x) { return x.request == 0; });
  };
  while (!waiting_.empty() && any_idle()) {
    const uint64_t next = waiting_.front();
    waiting_.pop_front();
    Place(next, requests_[next], events);
  }
}

bool SlotModel::Observe(uint64_t request, int64_t cached_tokens, std::vector<KvEvent>* events) {
  auto it = requests_.find(request);
  if (it == requests_.end() || !it->second.placed || cached_tokens < 0) return false;
  const SlotPlacement& p = *it->second.placed;
  const uint64_t reported = uint64_t(cached_tokens) / config_.block_size;
  if (p.cached_blocks <= reported + 1) return false;
  // The server did not hold what the model believed. What it reported is all this prompt's
  // prefix can be trusted for anywhere on it: nothing at all when it reported nothing.
  const std::span<const BlockHash> prompt = it->second.prompt.blocks;
  const uint32_t keep = static_cast<uint32_t>(reported);
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    if (i == p.slot || s.request != 0) continue;
    if (keep == 0) {
      SetSlot(s, Content{}, events);
    } else if (CommonBlocks(s.content.blocks, prompt) > keep) {
      Content cut;
      cut.blocks.assign(prompt.begin(), prompt.begin() + keep);
      cut.tokens = keep * config_.block_size;
      SetSlot(s, std::move(cut), events);
    }
  }
  for (size_t i = cache_.size(); i-- > 0;) {
    if (keep == 0 || CommonBlocks(cache_[i].blocks, prompt) > keep) EraseSaved(i, events);
  }
  return true;
}

void SlotModel::Clear(std::vector<KvEvent>* events) {
  for (Slot& s : slots_) SetSlot(s, Content{}, events);
  while (!cache_.empty()) EraseSaved(cache_.size() - 1, events);
}

std::vector<SlotState> SlotModel::Slots() const {
  std::vector<SlotState> out;
  for (const Slot& s : slots_) {
    out.push_back({.blocks = uint32_t(s.content.blocks.size()),
                   .tokens = s.content.tokens,
                   .busy = s.request != 0});
  }
  return out;
}

void SlotModel::Save(const Content& c, std::vector<KvEvent>* events) {
  if (c.blocks.empty() || c.tokens > config_.prompt_cache_tokens) return;
  for (const Content& saved : cache_) {
    if (CommonBlocks(saved.blocks, c.blocks) == c.blocks.size()) return;  // already there
  }
  for (size_t i = cache_.size(); i-- > 0;) {
    if (CommonBlocks(cache_[i].blocks, c.blocks) == cache_[i].blocks.size()) EraseSaved(i, events);
  }
  while (!cache_.empty() && cache_tokens_ + c.tokens > config_.prompt_cache_tokens) {
    EraseSaved(0, events);
  }
  cache_.push_back(c);
  cache_tokens_ += c.tokens;
  Acquire(Tier::kHost, c.blocks, events);
}

std::optional<SlotModel::Content> SlotModel::Load(const Content& current, const Content& prompt,
                                                  std::vector<KvEvent>* events) {
  const uint64_t bs = config_.block_size;
  const uint64_t lcp = CommonBlocks(current.blocks, prompt.blocks) * bs;
  double keep_best = current.tokens > 0 ? Ratio(lcp, current.tokens) : -1.0;
  double sim_best = Ratio(lcp, prompt.tokens);
  std::optional<size_t> best;
  for (size_t i = 0; i < cache_.size(); ++i) {
    const uint64_t n = CommonBlocks(cache_[i].blocks, prompt.blocks) * bs;
    const double keep = Ratio(n, cache_[i].tokens);
    const double sim = Ratio(n, prompt.tokens);
    if (keep < kMinKeepToLoad) continue;  // "don't trash large prompts"
    if (keep_best < keep && sim_best < sim) {
      keep_best = keep;
      sim_best = sim;
      best = i;
    }
  }
  if (!best) return std::nullopt;
  Content out = cache_[*best];
  EraseSaved(*best, events);
  return out;
}

void SlotModel::EraseSaved(size_t i, std::vector<KvEvent>* events) {
  Content c = std::move(cache_[i]);
  cache_.erase(cache_.begin() + static_cast<std::ptrdiff_t>(i));
  cache_tokens_ -= c.tokens;
  Release(Tier::kHost, c.blocks, events);
}

// The new content is referenced before the old is released, so the prefix they share never
// leaves the index.
void SlotModel::SetSlot(Slot& s, Content c, std::vector<KvEvent>* events) {
  Acquire(Tier::kDevice, c.blocks, events);
  Release(Tier::kDevice, s.content.blocks, events);
  s.content = std::move(c);
}

// A block is held with its whole prefix (chained hashes), so the blocks new to the tier are a
// suffix of `blocks`, stored as one event under the block before them.
void SlotModel::Acquire(Tier tier, std::span<const BlockHash> blocks,
                        std::vector<KvEvent>* events) {
  auto& refs = refs_[TierIndex(tier)];
  size_t first = blocks.size();
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (refs[blocks[i].value()]++ == 0 && first == blocks.size()) first = i;
  }
  if (first == blocks.size()) return;
  // Built in place: GCC 12 warns (maybe-uninitialized) on moving a KvStored into the variant.
  auto& e = std::get<KvStored>(events->emplace_back(std::in_place_type<KvStored>));
  e.worker = config_.worker;
  e.tier = tier;
  e.block_size = config_.block_size;
  if (first > 0) e.parent = EngineHash(blocks[first - 1].value());
  for (size_t i = first; i < blocks.size(); ++i) {
    e.block_hashes.emplace_back(blocks[i].value());
    e.block_keys.push_back(blocks[i]);
  }
}

void SlotModel::Release(Tier tier, std::span<const BlockHash> blocks,
                        std::vector<KvEvent>* events) {
  auto& refs = refs_[TierIndex(tier)];
  KvRemoved* e = nullptr;
  for (BlockHash b : blocks) {
    auto it = refs.find(b.value());
    if (it == refs.end()) continue;
    if (--it->second == 0) {
      refs.erase(it);
      if (e == nullptr) {
        e = &std::get<KvRemoved>(events->emplace_back(std::in_place_type<KvRemoved>));
        e->worker = config_.worker;
        e->tier = tier;
      }
      e->block_hashes.emplace_back(b.value());
    }
  }
}

}  // namespace kvr::gateway
