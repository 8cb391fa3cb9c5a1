// The scheduler's per-worker state, split by who may touch it (internal to the scheduler).
//
//  - LoadState: what a worker's tickets release, shared (shared_ptr) between the Scheduler and
//    every Booking on that worker. Counters are atomics, read by Route without a lock; what
//    must change under the admission lock (the rate model, the in-flight blocks, engine
//    metrics) is posted as Mail under a short per-worker lock and applied by the admission side
//    at its next Route. A release therefore never waits for admission, and a ticket that
//    outlives its worker or its Scheduler releases into a closed LoadState: nothing reads it.
//  - Booking: one routed request, owned by its Ticket (and, until its prefill is done, by the
//    worker's prefill FIFO).
//  - Slot: the admission side's view of a worker, guarded by the Scheduler's admission lock.
#pragma once

#include <atomic>
#include <cmath>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/clock.h"
#include "common/ids.h"
#include "common/mutex.h"
#include "index/word_table.h"
#include "scheduler/worker.h"

namespace kvr::scheduler_internal {

// Releases posted since the admission side last looked.
struct Mail {
  std::vector<std::pair<double, double>> ttft_samples;  // (queue tokens, TTFT s), in order
  std::vector<std::pair<double, double>> decode_samples;  // (tokens after the first, s)
  std::vector<std::vector<BlockHash>> finished_blocks;  // prompt blocks of finished bookings
  std::optional<EngineMetrics> metrics;                 // the latest engine report

  void Clear() {
    ttft_samples.clear();
    decode_samples.clear();
    finished_blocks.clear();
    metrics.reset();
  }
};

class LoadState {
 public:
  // Router-side load: changed by Route (booking) and by releases, read by Route.
  std::atomic<uint64_t> booked_prefill_tokens{0};
  std::atomic<uint32_t> running{0};
  std::atomic<uint32_t> prefilling{0};  // routed here, not yet past first token

  void PostTtft(double queue_tokens, double ttft_s) ABSL_LOCKS_EXCLUDED(mu_);
  void PostDecode(double tokens, double seconds) ABSL_LOCKS_EXCLUDED(mu_);
  void PostFinished(std::vector<BlockHash> blocks) ABSL_LOCKS_EXCLUDED(mu_);
  void PostMetrics(const EngineMetrics& metrics) ABSL_LOCKS_EXCLUDED(mu_);
  // Swaps the posted mail into `out` (which must be empty); false, without locking, when none.
  bool TakeMail(Mail* out) ABSL_LOCKS_EXCLUDED(mu_);
  // No mail from now on (the worker was removed, or the Scheduler is gone); drops what is left.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  std::atomic<bool> has_mail_{false};  // a hint, so that Route locks only workers with mail
  Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = true;
  Mail mail_ ABSL_GUARDED_BY(mu_);
};

struct Booking {
  Booking(std::shared_ptr<LoadState> l, uint64_t booking_id, uint64_t uncached_tokens, double queue,
          TimeNs at, std::vector<BlockHash> prompt_blocks)
      : load(std::move(l)),
        id(booking_id),
        uncached(uncached_tokens),
        queue_tokens(queue),
        routed_at(at),
        blocks(std::move(prompt_blocks)) {}

  const std::shared_ptr<LoadState> load;
  const uint64_t id;
  const uint64_t uncached;    // booked prefill tokens
  const double queue_tokens;  // work ahead of and including this request at routing time
  const TimeNs routed_at;
  std::atomic<bool> prefill_done{false};  // set once, by the first of FirstToken and Finish
  std::vector<BlockHash> blocks;          // the ticket's own; posted to the worker on Finish
};

// In-flight tables are small and churned by every booking: kept at most half full so inserts
// shift little.
inline constexpr uint32_t kInFlightLoadPct = 50;

// Per-booking decay of the workers' booked uncached tokens (Slot::inflow): ~1,000-booking memory.
inline constexpr double kInflowDecay = 0.999;

// How often recent requests had each prefix as the deepest one held anywhere in the fleet,
// decayed like Slot::inflow (per booking). Direct-mapped and fixed in size: a hot prefix keeps
// its slot against a colliding one that has not earned it (its decayed count is below one
// request), so memory is constant whatever the load and the number of distinct prefixes.
class PrefixDemand {
 public:
  // The decayed requests booked with `key` as their deepest fleet-held prefix, seen from
  // booking number `now`.
  double Count(uint64_t key, uint64_t now) const {
    const Entry& e = slots_[key % kSlots];
    return e.key == key ? Decayed(e, now) : 0.0;
  }
  // Counts one more booking for `key` (booking number `now`).
  void Add(uint64_t key, uint64_t now) {
    Entry& e = slots_[key % kSlots];
    if (e.key != key) {
      if (e.count > 0 && Decayed(e, now) >= 1) return;  // the incumbent is hotter
      e = Entry{key, 0, now};
    }
    e.count = Decayed(e, now) + 1;
    e.at = now;
  }

 private:
  static constexpr size_t kSlots = 4096;
  struct Entry {
    uint64_t key = 0;
    double count = 0;
    uint64_t at = 0;
  };
  static double Decayed(const Entry& e, uint64_t now) {
    return e.count * std::pow(kInflowDecay, double(now - e.at));
  }
  std::vector<Entry> slots_ = std::vector<Entry>(kSlots);
};

// Which shared prefix a prompt's history descends from. An agent session or a conversation
// grows turn by turn: each request's deepest fleet-held prefix is the previous request's whole
// prompt, a key no other session shares, so its demand would count one session. Each booking
// records, under its prompt's last block, the prefix its own demand was counted for (its
// deepest held prefix, or what that one descended from); a later request whose deepest held
// prefix ends at that block counts for the same root: a shared agent context then counts every
// step of every session built on it, and a new session's first step sees how hot it is.
// Direct-mapped and fixed in size (the latest booking keeps a slot); a stale or colliding entry
// is harmless: a root is used only when it is verified to be a prefix of the prompt.
class PrefixRoots {
 public:
  struct Root {
    uint64_t key = 0;    // the root prefix's last block hash (0: none)
    uint32_t depth = 0;  // its length in blocks
  };
  // The root recorded for a prompt that ended at block hash `end`, if any.
  Root Find(uint64_t end) const {
    const Entry& e = slots_[end % kSlots];
    return e.end == end ? e.root : Root{};
  }
  void Set(uint64_t end, Root root) { slots_[end % kSlots] = Entry{end, root}; }

 private:
  static constexpr size_t kSlots = 4096;
  struct Entry {
    uint64_t end = 0;
    Root root;
  };
  std::vector<Entry> slots_ = std::vector<Entry>(kSlots);
};

struct Slot {
  Slot(const WorkerSpec& s, std::shared_ptr<LoadState> l)
      : spec(s), rate(s.prefill_rate_prior), load(std::move(l)) {}
  WorkerSpec spec;
  PrefillRateModel rate;
  DecodeStepModel decode;
  double inflow = 0;  // uncached tokens booked here, decayed by every booking in the fleet
  // Requests whose prompt's deepest prefix held in the fleet was held here (each counted as
  // 1/holders), and the tokens of that prefix (likewise); decayed as `inflow`.
  double hits = 0, hit_tokens = 0;
  EngineMetrics metrics;
  std::shared_ptr<LoadState> load;
  // In-flight block -> bookings on this worker that hold it.
  WordTable active_counts{1, kInFlightLoadPct};
  // Bookings in routing order; those past their prefill are popped lazily from the front.
  std::deque<std::shared_ptr<const Booking>> prefill_fifo;
};

}  // namespace kvr::scheduler_internal
