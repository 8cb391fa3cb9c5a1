// A model of one vLLM-like engine (vLLM v1 scheduler + BlockPool), pure and clock-driven: the
// caller owns time and calls Step() whenever the previous step has ended. Each step schedules
// running requests first (a decode is one token; a request still in prefill gets its next chunk),
// then admits waiting requests FCFS while the token budget and sequence slots last; a prefix-cache
// hit skips the cached full blocks; when blocks run out the most recently admitted running request
// is preempted and later recomputed. The step's duration comes from PerfModel, divided by speed.
// The KV events are the ones a vLLM engine publishes (BlockStored / BlockRemoved /
// AllBlocksCleared), in emission order. See README.md for the model and its invariants.
// Not thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/ids.h"
#include "engine/block_pool.h"
#include "engine/perf_model.h"
#include "index/kv_event.h"

namespace kvr::engine {

struct EngineConfig {
  WorkerId worker;
  uint32_t num_blocks = 16384, block_size = 64;
  uint32_t max_num_seqs = 256, max_num_batched_tokens = 8192;
  double speed = 1.0;  // step time is divided by this
  bool enable_prefix_caching = true;
  PerfModel perf;
};

// Named presets, documented in README.md: "default", "fast", "slow", "small-memory", "test".
absl::StatusOr<EngineConfig> EnginePreset(std::string_view name);

// Another block size, the KV capacity in tokens kept (num_blocks rescaled). block_size > 0.
void SetBlockSize(EngineConfig& config, uint32_t block_size);

// InvalidArgument unless every size is positive and speed is a positive finite number. Call it
// on configuration that comes from outside; Engine's constructor assumes a valid config.
absl::Status ValidateEngineConfig(const EngineConfig& config);

struct EngineRequest {
  uint64_t id = 0;  // unique among the requests this engine has seen
  std::vector<TokenId> prompt;
  uint32_t max_output_tokens = 1;  // the request decodes exactly this many tokens (>= 1)
  // Optional: generated token ids (only matter for the hashes of blocks full of output). Missing
  // ones are synthesized deterministically from (id, position).
  std::vector<TokenId> output;
  // Optional: kvr::SequenceHashes(prompt, block_size), if the caller already has them; they are
  // trusted, not checked. Empty: computed here.
  std::vector<BlockHash> prompt_hashes;
};

struct Admission {
  uint64_t id;
  uint32_t cached_tokens;  // prefix-cache hit, as CachedTokens(id) reports it
};

struct StepOutput {
  TimeNs duration = 0;                // the step ends at start + duration
  std::vector<Admission> admitted;    // first admissions in this step (not readmissions)
  std::vector<uint64_t> first_token;  // requests whose first output token this step produced
  std::vector<uint64_t> tokens;       // requests that produced an output token (incl. first)
  std::vector<uint64_t> finished;     // requests that completed in this step
  std::vector<uint64_t> rejected;     // requests that can never fit this engine (see Add)
  std::vector<KvEvent> events;        // in emission order
  uint32_t prefill_tokens = 0, decode_tokens = 0;
  uint32_t preempted = 0;  // requests preempted in this step
};

struct EngineStats {  // what a real engine reports in /metrics
  uint32_t running = 0, waiting = 0;
  uint64_t waiting_prefill_tokens = 0;  // uncomputed prompt tokens of waiting + partially prefilled
  uint32_t free_blocks = 0, used_blocks = 0;
  double kv_usage = 0;  // used_blocks / num_blocks
  uint64_t preemptions = 0, prompt_tokens = 0, cached_prompt_tokens = 0;
};

class Engine {
 public:
  explicit Engine(EngineConfig config);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Enqueues at the back of the waiting queue. A request that could not complete even on an
  // empty engine (an empty prompt, max_output_tokens == 0, or more KV than the whole pool) is
  // reported in the next step's `rejected` instead.
  void Add(EngineRequest request);
  bool HasWork() const;  // anything waiting, running or to reject
  // Runs one scheduler step. REQUIRES: HasWork(). A step that could schedule nothing (only after
  // the sole running request preempted itself) has duration 0; the next one makes progress.
  StepOutput Step();
  // Prefix-cache hit (tokens) of the request's first admission; 0 if unknown or not yet admitted.
  uint32_t CachedTokens(uint64_t request_id) const;
  // Cancels a waiting or running request, as vLLM's abort does: its blocks go back to the free
  // queue tail first (cached ones stay cache hits until reallocated), and it is forgotten. False
  // if the engine does not hold it (unknown, finished or already aborted). Outputs of a step
  // already taken may still name it.
  bool Abort(uint64_t request_id);
  // Drops what the engine remembers of a finished request (its CachedTokens entry), so a
  // long-running engine's memory stays bounded by the requests it holds.
  void Forget(uint64_t request_id) { cached_tokens_.erase(request_id); }
  EngineStats Stats() const;
  // Forgets the whole prefix cache and queues a KvCleared, delivered at the front of the next
  // step's events (or by TakeEvents). Blocks in use stay allocated; their requests cache no more
  // blocks until readmitted, so every later BlockStored has a parent the index knows.
  void ClearCache();
  // Events emitted outside Step (ClearCache) not yet delivered.
  std::vector<KvEvent> TakeEvents();

  const EngineConfig& config() const { return config_; }
  // The engine's opaque hash for a router block hash (a per-engine XOR: a bijection).
  EngineHash ToEngineHash(BlockHash router_hash) const;
  BlockHash ToRouterHash(EngineHash engine_hash) const;
  // Every engine hash currently cached (for differential tests). O(cached).
  std::vector<EngineHash> CachedBlockHashes() const;
  bool IsCached(EngineHash hash) const;
  // Free-queue order, front (evicted next) first; for tests.
  std::vector<uint32_t> FreeQueueForTest() const { return pool_.FreeQueueForTest(); }

 private:
  struct Request;
  struct Scheduled {
    Request* request;
    uint32_t tokens;
  };

  bool ScheduleRunning(std::vector<Scheduled>* scheduled, uint32_t* budget, StepOutput* out);
  void ScheduleWaiting(std::vector<Scheduled>* scheduled, uint32_t* budget, StepOutput* out);
  // Prefix-cache lookup for a waiting request: cached leading blocks, capped so that at least
  // one token is computed. Returns how many of them are free (ref 0).
  uint32_t MatchPrefix(Request& r, std::vector<uint32_t>* hit_blocks);
  // vLLM's allocate_slots: room for `new_tokens` more tokens after `hit_blocks`; false (and no
  // change) if the free queue cannot supply them.
  bool AllocateSlots(Request& r, uint32_t new_tokens, const std::vector<uint32_t>& hit_blocks,
                     uint32_t free_hits, std::vector<KvEvent>* events);
  void CacheFullBlocks(Request& r, uint32_t computed_tokens, std::vector<KvEvent>* events);
  void EnsureHashes(Request& r, uint32_t full_blocks);
  void PreemptLast(StepOutput* out);
  void FreeBlocks(Request& r);
  void Finish(const std::vector<Scheduled>& scheduled, StepOutput* out);
  static void AppendRemoved(std::vector<KvEvent>* events, WorkerId worker,
                            const std::vector<uint64_t>& hashes);

  EngineConfig config_;
  uint64_t hash_salt_;
  BlockPool pool_;
  std::vector<std::unique_ptr<Request>> running_;  // admission order; preemption pops the back
  std::deque<std::unique_ptr<Request>> waiting_;   // FCFS; preempted requests go to the front
  std::vector<uint64_t> rejected_;
  std::vector<KvEvent> pending_events_;
  absl::flat_hash_map<uint64_t, uint32_t> cached_tokens_;  // request id -> first admission's hit
  uint64_t waiting_tokens_ = 0;                            // Σ tokens of waiting requests
  EngineStats totals_;  // preemptions, prompt_tokens, cached_prompt_tokens
  std::vector<uint64_t> evicted_scratch_;
  std::vector<uint32_t> hits_scratch_;
};

}  // namespace kvr::engine
