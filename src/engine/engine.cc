#include "engine/engine.h"

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <utility>

#include "common/check.h"
#include "index/block_hash.h"

namespace kvr::engine {
namespace {

uint64_t Mix64(uint64_t z) {  // splitmix64's finalizer
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// A stand-in for the id the model would sample at output position `pos`: deterministic, and
// different per request so that output blocks of different requests never share a hash.
TokenId SyntheticToken(uint64_t request_id, uint32_t pos) {
  return static_cast<TokenId>(Mix64(request_id * 0x9E3779B97F4A7C15ULL + pos + 1) >> 40);
}

uint32_t CeilDiv(uint64_t a, uint32_t b) { return static_cast<uint32_t>((a + b - 1) / b); }

}  // namespace

struct Engine::Request {
  uint64_t id = 0;
  std::vector<TokenId> tokens;        // the prompt, then output ids as far as materialized
  std::vector<TokenId> given_output;  // caller-supplied output ids (may be short or empty)
  std::vector<uint64_t> hashes;       // engine hashes of full blocks, prefix-chained
  uint32_t prompt_len = 0, max_output = 0;
  uint32_t num_output = 0;    // output tokens produced so far
  uint32_t num_computed = 0;  // tokens whose KV is computed (or scheduled this step)
  std::vector<uint32_t> blocks;
  uint32_t num_cached_blocks = 0;  // blocks[0, num_cached_blocks) are registered in the pool
  bool caching_disabled = false;   // set by ClearCache until the request is readmitted
  bool admitted_before = false;
  bool finished = false;

  // Prompt plus every output token but the newest, whose KV the next step computes.
  uint32_t num_tokens() const { return prompt_len + num_output; }
  // Tokens that still count as prefill work (a decoding request has exactly one to compute).
  uint32_t PrefillRemaining() const {
    const uint32_t left = num_tokens() - num_computed;
    return (num_output > 0 && left == 1) ? 0 : left;
  }
};

absl::StatusOr<EngineConfig> EnginePreset(std::string_view name) {
  EngineConfig c;
  if (name == "default") return c;
  if (name == "fast") {
    c.speed = 2.0;
    return c;
  }
  if (name == "slow") {
    c.speed = 0.5;
    return c;
  }
  if (name == "small-memory") {
    c.num_blocks = 4096;
    return c;
  }
  if (name == "test") {
    c.num_blocks = 64;
    c.block_size = 16;
    c.max_num_seqs = 4;
    c.max_num_batched_tokens = 128;
    return c;
  }
  return absl::InvalidArgumentError("unknown engine preset '" + std::string(name) +
                                    "' (known: default, fast, slow, small-memory, test)");
}

void SetBlockSize(EngineConfig& c, uint32_t block_size) {
  const uint64_t capacity = uint64_t{c.num_blocks} * c.block_size;
  c.num_blocks = static_cast<uint32_t>(capacity / block_size);
  c.block_size = block_size;
}

absl::Status ValidateEngineConfig(const EngineConfig& c) {
  if (c.num_blocks == 0 || c.block_size == 0 || c.max_num_seqs == 0 ||
      c.max_num_batched_tokens == 0) {
    return absl::InvalidArgumentError(
        "engine num_blocks, block_size, max_num_seqs and max_num_batched_tokens must be > 0");
  }
  if (!(c.speed > 0) || !std::isfinite(c.speed)) {
    return absl::InvalidArgumentError("engine speed must be a positive number");
  }
  return absl::OkStatus();
}

Engine::Engine(EngineConfig config)
    : config_(config),
      hash_salt_(Mix64(0x6b76722d656e67ULL ^ config.worker.value()) | 1),
      pool_(config.num_blocks) {
  KVR_CHECK(ValidateEngineConfig(config_).ok());  // callers validate (the simulator, engine-sim)
}

Engine::~Engine() = default;

EngineHash Engine::ToEngineHash(BlockHash router_hash) const {
  return EngineHash(router_hash.value() ^ hash_salt_);
}

BlockHash Engine::ToRouterHash(EngineHash engine_hash) const {
  return BlockHash(engine_hash.value() ^ hash_salt_);
}

void Engine::Add(EngineRequest request) {
  const uint32_t bs = config_.block_size;
  const uint64_t kv_tokens = request.prompt.size() + request.max_output_tokens - 1;
  if (request.prompt.empty() || request.max_output_tokens == 0 ||
      CeilDiv(kv_tokens, bs) > config_.num_blocks) {
    rejected_.push_back(request.id);
    return;
  }
  auto r = std::make_unique<Request>();
  r->id = request.id;
  r->prompt_len = static_cast<uint32_t>(request.prompt.size());
  r->max_output = request.max_output_tokens;
  r->tokens = std::move(request.prompt);
  r->given_output = std::move(request.output);
  if (config_.enable_prefix_caching) {
    if (request.prompt_hashes.empty()) request.prompt_hashes = SequenceHashes(r->tokens, bs);
    r->hashes.reserve(request.prompt_hashes.size());
    for (BlockHash h : request.prompt_hashes) r->hashes.push_back(ToEngineHash(h).value());
  }
  waiting_tokens_ += r->num_tokens();
  waiting_.push_back(std::move(r));
}

bool Engine::HasWork() const {
  return !waiting_.empty() || !running_.empty() || !rejected_.empty();
}

StepOutput Engine::Step() {
  StepOutput out;
  out.events = std::move(pending_events_);
  pending_events_.clear();
  out.rejected = std::move(rejected_);
  rejected_.clear();
  std::vector<Scheduled> scheduled;
  uint32_t budget = config_.max_num_batched_tokens;
  // As in vLLM, a step that had to preempt admits nobody: memory is short.
  if (!ScheduleRunning(&scheduled, &budget, &out)) ScheduleWaiting(&scheduled, &budget, &out);
  uint32_t decoding = 0;
  for (const Scheduled& s : scheduled) {
    if (s.request->PrefillRemaining() == 0) {
      ++decoding;
    } else {
      out.prefill_tokens += s.tokens;
    }
  }
  out.decode_tokens = decoding;
  // Decode cost is read at the utilisation this step runs with (after its allocations).
  const double kv_usage = static_cast<double>(pool_.num_used()) / config_.num_blocks;
  out.duration = config_.perf.StepTime(out.prefill_tokens, decoding, kv_usage, config_.speed);
  Finish(scheduled, &out);
  return out;
}

bool Engine::ScheduleRunning(std::vector<Scheduled>* scheduled, uint32_t* budget, StepOutput* out) {
  static const std::vector<uint32_t> kNoHits;
  bool preempted = false;
  for (size_t i = 0; i < running_.size() && *budget > 0; ++i) {
    Request& r = *running_[i];
    const uint32_t n = std::min(r.num_tokens() - r.num_computed, *budget);
    bool self_preempted = false;
    while (!AllocateSlots(r, n, kNoHits, 0, &out->events)) {
      preempted = true;
      self_preempted = running_.back().get() == &r;
      PreemptLast(out);
      if (self_preempted) break;
    }
    if (self_preempted) break;
    scheduled->push_back({&r, n});
    *budget -= n;
  }
  return preempted;
}

void Engine::ScheduleWaiting(std::vector<Scheduled>* scheduled, uint32_t* budget, StepOutput* out) {
  const uint32_t bs = config_.block_size;
  while (!waiting_.empty() && *budget > 0 && running_.size() < config_.max_num_seqs) {
    Request& r = *waiting_.front();
    hits_scratch_.clear();
    const uint32_t free_hits = MatchPrefix(r, &hits_scratch_);
    const uint32_t computed = static_cast<uint32_t>(hits_scratch_.size()) * bs;
    const uint32_t n = std::min(r.num_tokens() - computed, *budget);
    if (!AllocateSlots(r, n, hits_scratch_, free_hits, &out->events)) break;  // FCFS: no skip
    r.num_computed = computed;
    if (!r.admitted_before) {
      r.admitted_before = true;
      cached_tokens_[r.id] = computed;
      out->admitted.push_back({r.id, computed});
      totals_.prompt_tokens += r.prompt_len;
      totals_.cached_prompt_tokens += std::min(computed, r.prompt_len);
    }
    waiting_tokens_ -= r.num_tokens();
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
    scheduled->push_back({running_.back().get(), n});
    *budget -= n;
  }
}

uint32_t Engine::MatchPrefix(Request& r, std::vector<uint32_t>* hit_blocks) {
  if (!config_.enable_prefix_caching) return 0;
  // At least one token must be computed to produce logits, so a fully cached sequence
  // recomputes its last block.
  const uint32_t max_blocks = (r.num_tokens() - 1) / config_.block_size;
  EnsureHashes(r, max_blocks);
  uint32_t free_hits = 0;
  for (uint32_t j = 0; j < max_blocks; ++j) {
    const uint32_t block = pool_.Lookup(r.hashes[j]);
    if (block == BlockPool::kNone) break;
    hit_blocks->push_back(block);
    if (pool_.IsFree(block)) ++free_hits;
  }
  return free_hits;
}

bool Engine::AllocateSlots(Request& r, uint32_t new_tokens, const std::vector<uint32_t>& hit_blocks,
                           uint32_t free_hits, std::vector<KvEvent>* events) {
  const uint32_t bs = config_.block_size;
  const uint32_t hits = static_cast<uint32_t>(hit_blocks.size());
  const uint32_t total = r.num_computed + hits * bs + new_tokens;
  const uint32_t have = static_cast<uint32_t>(r.blocks.size()) + hits;
  const uint32_t needed = CeilDiv(total, bs);
  const uint32_t fresh = needed > have ? needed - have : 0;
  // Touching a free cached hit takes it off the free queue, so it cannot also be allocated.
  if (fresh > pool_.num_free() - free_hits) return false;
  for (uint32_t block : hit_blocks) {
    pool_.Touch(block);
    r.blocks.push_back(block);
  }
  r.num_cached_blocks += hits;
  evicted_scratch_.clear();
  for (uint32_t k = 0; k < fresh; ++k) r.blocks.push_back(pool_.Allocate(&evicted_scratch_));
  AppendRemoved(events, config_.worker, evicted_scratch_);
  CacheFullBlocks(r, total, events);
  return true;
}

void Engine::CacheFullBlocks(Request& r, uint32_t computed_tokens, std::vector<KvEvent>* events) {
  if (!config_.enable_prefix_caching || r.caching_disabled) return;
  const uint32_t bs = config_.block_size;
  const uint32_t full = computed_tokens / bs;
  if (full <= r.num_cached_blocks) return;
  EnsureHashes(r, full);
  KvStored* run = nullptr;  // the BlockStored being extended: one per contiguous new run
  for (uint32_t j = r.num_cached_blocks; j < full; ++j) {
    if (!pool_.Cache(r.blocks[j], r.hashes[j])) {
      run = nullptr;  // another copy already announced this hash
      continue;
    }
    if (run == nullptr) {
      KvStored stored{.worker = config_.worker, .block_size = bs};
      if (j > 0) stored.parent = EngineHash(r.hashes[j - 1]);
      events->push_back(std::move(stored));
      run = &std::get<KvStored>(events->back());
    }
    run->block_hashes.push_back(EngineHash(r.hashes[j]));
    const auto first = r.tokens.begin() + static_cast<ptrdiff_t>(j) * bs;
    run->token_ids.insert(run->token_ids.end(), first, first + bs);
  }
  r.num_cached_blocks = full;
}

void Engine::EnsureHashes(Request& r, uint32_t full_blocks) {
  const uint32_t bs = config_.block_size;
  while (r.hashes.size() < full_blocks) {
    const uint32_t j = static_cast<uint32_t>(r.hashes.size());
    while (r.tokens.size() < static_cast<size_t>(j + 1) * bs) {
      const uint32_t pos = static_cast<uint32_t>(r.tokens.size()) - r.prompt_len;
      r.tokens.push_back(pos < r.given_output.size() ? r.given_output[pos]
                                                     : SyntheticToken(r.id, pos));
    }
    const std::span<const TokenId> block(r.tokens.data() + static_cast<size_t>(j) * bs, bs);
    const uint64_t local = LocalBlockHash(block, kBlockHashSeed);
    const uint64_t router =
        j == 0 ? local : ChainHash(ToRouterHash(EngineHash(r.hashes[j - 1])).value(), local);
    r.hashes.push_back(router ^ hash_salt_);
  }
}

void Engine::PreemptLast(StepOutput* out) {
  std::unique_ptr<Request> victim = std::move(running_.back());
  running_.pop_back();
  FreeBlocks(*victim);
  victim->num_computed = 0;
  victim->num_cached_blocks = 0;
  victim->caching_disabled = false;
  waiting_tokens_ += victim->num_tokens();
  waiting_.push_front(std::move(victim));
  ++totals_.preemptions;
  ++out->preempted;
}

void Engine::FreeBlocks(Request& r) {
  // Tail first: the deepest blocks reach the free queue first and are evicted first, so shared
  // prefixes outlive the suffixes that hang off them.
  for (auto it = r.blocks.rbegin(); it != r.blocks.rend(); ++it) pool_.Release(*it);
  r.blocks.clear();
}

void Engine::Finish(const std::vector<Scheduled>& scheduled, StepOutput* out) {
  bool any_finished = false;
  for (const Scheduled& s : scheduled) {
    Request& r = *s.request;
    r.num_computed += s.tokens;
    if (r.num_computed < r.num_tokens()) continue;  // a prefill chunk that is not the last
    ++r.num_output;
    if (r.num_output == 1) out->first_token.push_back(r.id);
    out->tokens.push_back(r.id);
    if (r.num_output == r.max_output) {
      out->finished.push_back(r.id);
      FreeBlocks(r);
      r.finished = true;
      any_finished = true;
    }
  }
  if (any_finished) {
    std::erase_if(running_, [](const std::unique_ptr<Request>& r) { return r->finished; });
  }
}

void Engine::AppendRemoved(std::vector<KvEvent>* events, WorkerId worker,
                           const std::vector<uint64_t>& hashes) {
  if (hashes.empty()) return;
  // vLLM sends one BlockRemoved per block; adjacent removals are merged here, which any index
  // applies identically and which saves the simulator an allocation per evicted block.
  KvRemoved* removed = events->empty() ? nullptr : std::get_if<KvRemoved>(&events->back());
  if (removed == nullptr) {
    events->push_back(KvRemoved{.worker = worker});
    removed = &std::get<KvRemoved>(events->back());
  }
  for (uint64_t h : hashes) removed->block_hashes.push_back(EngineHash(h));
}

uint32_t Engine::CachedTokens(uint64_t request_id) const {
  auto it = cached_tokens_.find(request_id);
  return it == cached_tokens_.end() ? 0 : it->second;
}

bool Engine::Abort(uint64_t request_id) {
  cached_tokens_.erase(request_id);
  auto same_id = [request_id](const std::unique_ptr<Request>& r) { return r->id == request_id; };
  if (auto it = std::find_if(waiting_.begin(), waiting_.end(), same_id); it != waiting_.end()) {
    waiting_tokens_ -= (*it)->num_tokens();
    FreeBlocks(**it);  // a preempted request holds none; kept for symmetry with running
    waiting_.erase(it);
    return true;
  }
  if (auto it = std::find_if(running_.begin(), running_.end(), same_id); it != running_.end()) {
    FreeBlocks(**it);
    running_.erase(it);
    return true;
  }
  return std::erase(rejected_, request_id) > 0;
}

EngineStats Engine::Stats() const {
  EngineStats s = totals_;
  s.running = static_cast<uint32_t>(running_.size());
  s.waiting = static_cast<uint32_t>(waiting_.size());
  s.waiting_prefill_tokens = waiting_tokens_;
  for (const auto& r : running_) s.waiting_prefill_tokens += r->PrefillRemaining();
  s.free_blocks = pool_.num_free();
  s.used_blocks = pool_.num_used();
  s.kv_usage = static_cast<double>(s.used_blocks) / config_.num_blocks;
  return s;
}

void Engine::ClearCache() {
  pool_.DropAllHashes();
  for (const auto& r : running_) r->caching_disabled = true;
  pending_events_.push_back(KvCleared{.worker = config_.worker});
}

std::vector<KvEvent> Engine::TakeEvents() {
  std::vector<KvEvent> events = std::move(pending_events_);
  pending_events_.clear();
  return events;
}

std::vector<EngineHash> Engine::CachedBlockHashes() const {
  std::vector<EngineHash> out;
  out.reserve(pool_.num_cached_hashes());
  pool_.ForEachCachedHash([&](uint64_t h) { out.push_back(EngineHash(h)); });
  return out;
}

bool Engine::IsCached(EngineHash hash) const {
  return pool_.Lookup(hash.value()) != BlockPool::kNone;
}

}  // namespace kvr::engine
