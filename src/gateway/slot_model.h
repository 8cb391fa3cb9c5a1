// SlotModel: what a llama.cpp server holds in its KV cache, inferred from what the router sent it.
//
// llama-server publishes no KV events. With `-np N` it runs N slots; each keeps the KV of its
// last prompt after the request ends, and a new request reuses the longest common prefix of the
// slot it is given. llama-server picks that slot itself (tools/server/server-context.cpp,
// get_available_slot): among the idle slots, the one whose tokens share the longest prefix with
// the new prompt, if that prefix is more than `similarity` (10 %) of the prompt; else the least
// recently used idle slot (the last one among equals). A busy slot is never chosen: with every
// slot busy the request waits, and takes the first slot that frees.
//
// With `--cache-ram` > 0 the server also keeps a host-memory prompt cache
// (tools/server/server-task.cpp, server_prompt_cache): when a slot is taken by LRU, or would keep
// less than half of what it holds, its prompt is saved, and the saved prompt sharing the most
// with the new one (a prefix covering at least 25 % of the saved prompt, more than the slot
// itself shares) is loaded into the slot instead; idle slots are saved at each new request
// (`--cache-idle-slots`). Saved prompts leave oldest first past the size limit (here in tokens).
//
// The model replays those rules on the router's block hashes and emits, for its worker, the KV
// events that keep the index equal to the model: the device tier holds exactly the union of the
// slots' prompts, the host tier the union of the saved prompts (blocks held by several slots or
// saved prompts are counted, and leave the index with the last one).
//
// What it cannot see, and approximates: prefixes are compared in whole blocks (a slot may share
// up to block_size - 1 more tokens); generated tokens are not hashable and are ignored; the
// prompt cache is bounded in tokens, not bytes. Observe() takes the engine's report
// (cached_tokens) of each request and corrects the model when it predicted more than the server
// reused.
//
// Pure: no clock (slots are ordered by a counter), no threads. Not thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/ids.h"
#include "index/kv_event.h"

namespace kvr::gateway {

struct SlotModelConfig {
  WorkerId worker;
  uint32_t slots = 1;             // llama-server's -np (/props total_slots)
  uint32_t block_size = 16;
  double similarity = 0.1;        // --slot-prompt-similarity
  uint64_t prompt_cache_tokens = 0;  // 0: no host prompt cache (--cache-ram 0)
};

// Where a request went and what it was predicted to reuse.
struct SlotPlacement {
  uint32_t slot = 0;
  uint32_t cached_blocks = 0;  // leading blocks of the prompt the slot held (after a restore)
  bool by_similarity = false;  // chosen by the longest common prefix (else LRU)
  bool restored = false;       // a saved prompt was loaded into the slot first
};

struct SlotState {
  uint32_t blocks = 0;  // full blocks of the prompt the slot holds
  uint32_t tokens = 0;  // that prompt's tokens
  bool busy = false;
};

class SlotModel {
 public:
  explicit SlotModel(SlotModelConfig config);

  // A request with `blocks` (chained hashes of its prompt's full blocks) and `prompt_tokens`
  // arrives at the server. Returns its handle; it is placed now if a slot is idle, else when one
  // frees (Finish). Events for the index are appended to `events`.
  uint64_t Arrive(std::span<const BlockHash> blocks, uint32_t prompt_tokens,
                  std::vector<KvEvent>* events);
  // nullopt while the request waits for a slot (or is unknown).
  std::optional<SlotPlacement> Placement(uint64_t request) const;
  // The request ended (answered, failed or cancelled): its slot goes idle, keeping the prompt,
  // and the oldest waiting request takes it.
  void Finish(uint64_t request, std::vector<KvEvent>* events);
  // The engine reported reusing `cached_tokens` of the request's prompt. A report of more than
  // one block below the prediction means the model was wrong (the server restarted, or evicted
  // behind the router's back): every other idle slot and saved prompt is cut to what was
  // reported (all of them when nothing was). Returns true when it corrected.
  bool Observe(uint64_t request, int64_t cached_tokens, std::vector<KvEvent>* events);
  // Forgets every slot's and saved prompt's content (the server restarted). Requests stay.
  void Clear(std::vector<KvEvent>* events);

  std::vector<SlotState> Slots() const;
  uint64_t saved_prompts() const { return cache_.size(); }
  uint64_t saved_tokens() const { return cache_tokens_; }
  const SlotModelConfig& config() const { return config_; }

 private:
  struct Content {
    std::vector<BlockHash> blocks;
    uint32_t tokens = 0;
  };
  struct Slot {
    Content content;
    uint64_t last_used = 0;  // order of release; 0: never used
    uint64_t request = 0;    // 0: idle
  };
  struct Request {
    Content prompt;
    std::optional<SlotPlacement> placed;
  };

  // A slot for a new request: which (nullopt: none idle), whether chosen for its common
  // prefix, and whether its content is saved to the prompt cache first.
  struct Pick {
    std::optional<uint32_t> slot;
    bool by_similarity = false;
    bool update_cache = false;
  };

  void Place(uint64_t id, Request& r, std::vector<KvEvent>* events);
  Pick PickSlot(const Content& prompt) const;
  // server_prompt_cache::alloc: saves `c` unless a saved prompt contains it; drops saved
  // prompts it contains, then the oldest past the limit.
  void Save(const Content& c, std::vector<KvEvent>* events);
  // server_prompt_cache::load: the saved prompt to load for `prompt` into a slot holding
  // `current`, taken out of the cache; nullopt: none is better.
  std::optional<Content> Load(const Content& current, const Content& prompt,
                              std::vector<KvEvent>* events);
  void EraseSaved(size_t i, std::vector<KvEvent>* events);
  void SetSlot(Slot& s, Content c, std::vector<KvEvent>* events);
  // Reference counting per tier; the events for blocks that enter or leave the worker's tier.
  void Acquire(Tier tier, std::span<const BlockHash> blocks, std::vector<KvEvent>* events);
  void Release(Tier tier, std::span<const BlockHash> blocks, std::vector<KvEvent>* events);

  const SlotModelConfig config_;
  std::vector<Slot> slots_;
  std::deque<Content> cache_;  // oldest first
  uint64_t cache_tokens_ = 0;
  absl::flat_hash_map<uint64_t, Request> requests_;
  std::deque<uint64_t> waiting_;
  uint64_t next_request_ = 1;
  uint64_t tick_ = 0;
  absl::flat_hash_map<uint64_t, uint32_t> refs_[2];  // device, host: references per block
};

// Leading blocks `a` and `b` share.
uint32_t CommonBlocks(std::span<const BlockHash> a, std::span<const BlockHash> b);

}  // namespace kvr::gateway
