#include "events/subscriber.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <iterator>
#include <limits>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/mutex.h"
#include "events/zmq_util.h"
#include "zmq.hpp"
#include "zmq_addon.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace kvr::events {

using internal::ParseSeqFrame;
using internal::SeqFrame;
using internal::View;

namespace {

constexpr const char* kWakeAddress = "inproc://kvr-events-subscriber-wake";
constexpr const char* kMonitorAddress = "inproc://kvr-events-subscriber-monitor";
// A batch bigger than this is not a KV-event batch; ZMQ drops the connection that sends it.
constexpr int64_t kMaxMessageBytes = int64_t{64} << 20;

// Replay's live_seq when no live batch is in view: every batch replayed may still come live.
constexpr uint64_t kNoLiveBatch = std::numeric_limits<uint64_t>::max();

// XXH3: a batch is kilobytes (every token id of its blocks), hashed once per delivery.
size_t PayloadHash(std::string_view payload) { return XXH3_64bits(payload.data(), payload.size()); }

}  // namespace

class Subscriber::Impl {
 public:
  Impl(SubscriberOptions options, Sink sink)
      : options_(std::move(options)),
        sink_(std::move(sink)),
        sub_(context_, zmq::socket_type::sub),
        monitor_(context_, zmq::socket_type::pair),
        wake_in_(context_, zmq::socket_type::pair),
        wake_out_(context_, zmq::socket_type::pair) {}

  ~Impl() {
    if (!thread_.joinable()) return;
    {
      MutexLock lock(mu_);
      wake_out_.send(zmq::message_t(), zmq::send_flags::none);
    }
    thread_.join();
  }

  absl::Status Open();

  SubscriberStats stats() const {
    MutexLock lock(mu_);
    return stats_;
  }

  std::optional<uint64_t> last_seq() const {
    MutexLock lock(mu_);
    return last_seq_;
  }

 private:
  void Run();
  void OnLive(const std::vector<zmq::message_t>& frames);
  void OnMonitorEvent();
  void Probe();
  bool ContinuityHolds(uint64_t live_seq);
  void CatchUp(uint64_t seq, std::string_view payload);
  void Replay(uint64_t start, uint64_t live_seq);
  void OnReplayed(uint64_t seq, std::string_view payload, uint64_t live_seq);
  bool IsReplayedDuplicate(uint64_t seq, std::string_view payload);
  void ResetDealer();
  void Deliver(uint64_t seq, std::string_view payload);
  void DeliverClear(uint64_t seq);
  template <typename F>
  void Count(F f) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(mu_);
    f(stats_);
  }

  const SubscriberOptions options_;
  const Sink sink_;
  zmq::context_t context_;  // first socket-related member: destroyed after every socket

  // Used only by the thread once it runs.
  zmq::socket_t sub_;
  zmq::socket_t monitor_;  // the SUB's connection events: a disconnect may hide a restart
  std::optional<zmq::socket_t> dealer_;  // replay client; replaced after an abandoned replay
  zmq::socket_t wake_in_;
  std::optional<uint64_t> next_;  // the next sequence number to deliver; none before the first
  // Batches a replay delivered ahead of the live stream, which may still arrive live: (seq,
  // payload hash), ascending. Telling them from a restarted engine's batches needs the hash.
  std::deque<std::pair<uint64_t, size_t>> replayed_ahead_;
  bool delivered_since_clear_ = false;  // whether the sink may hold state a clear would drop
  size_t last_hash_ = 0;     // PayloadHash of the batch delivered last (seq *next_ - 1)
  // The SUB lost its connection: the publisher may have restarted, and its numbering may
  // already have passed ours, so the next batch's number alone cannot tell.
  bool unverified_ = false;
  // A continuity check replays from *next_ - 1: does the publisher's batch there match ours?
  enum class Check { kNone, kPending, kPassed, kFailed } check_ = Check::kNone;
  bool stopping_ = false;
  // How long the live stream must stay quiet for Probe() to be due; 0: no probe is. The
  // connection and each live batch set it to quiet_probe, each probe doubles it.
  std::chrono::milliseconds probe_wait_{0};

  mutable Mutex mu_;
  zmq::socket_t wake_out_ ABSL_GUARDED_BY(mu_);  // the destructor's end of the wake-up pipe
  SubscriberStats stats_ ABSL_GUARDED_BY(mu_);
  std::optional<uint64_t> last_seq_ ABSL_GUARDED_BY(mu_);

  std::thread thread_;
};

absl::Status Subscriber::Impl::Open() {
  try {
    MutexLock lock(mu_);
    for (zmq::socket_t* s : {&sub_, &wake_in_, &wake_out_}) s->set(zmq::sockopt::linger, 0);
    sub_.set(zmq::sockopt::maxmsgsize, kMaxMessageBytes);
    sub_.set(zmq::sockopt::subscribe, options_.topic);
    wake_in_.bind(kWakeAddress);
    wake_out_.connect(kWakeAddress);
    if (zmq_socket_monitor(sub_.handle(), kMonitorAddress,
                           ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED) != 0) {
      throw zmq::error_t();
    }
    monitor_.set(zmq::sockopt::linger, 0);
    monitor_.connect(kMonitorAddress);
    sub_.connect(options_.endpoint);
    if (!options_.replay_endpoint.empty()) ResetDealer();
  } catch (const zmq::error_t& e) {
    return internal::ZmqError(absl::StrCat("subscribe ", options_.endpoint), e);
  }
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void Subscriber::Impl::ResetDealer() {
  dealer_.emplace(context_, zmq::socket_type::dealer);
  dealer_->set(zmq::sockopt::linger, 0);
  dealer_->set(zmq::sockopt::maxmsgsize, kMaxMessageBytes);
  dealer_->connect(options_.replay_endpoint);
}

void Subscriber::Impl::Run() {
  zmq::pollitem_t items[] = {{sub_.handle(), 0, ZMQ_POLLIN, 0},
                             {wake_in_.handle(), 0, ZMQ_POLLIN, 0},
                             {monitor_.handle(), 0, ZMQ_POLLIN, 0}};
  std::vector<zmq::message_t> frames;
  try {
    while (!stopping_) {
      const bool probing = probe_wait_.count() > 0 && dealer_;
      const int ready = zmq::poll(items, 3, probing ? probe_wait_ : std::chrono::milliseconds(-1));
      if (ready == 0) {
        Probe();
        continue;
      }
      if (items[1].revents & ZMQ_POLLIN) return;
      // Connection events first: a disconnect precedes whatever a reconnection brings.
      if (items[2].revents & ZMQ_POLLIN) OnMonitorEvent();
      while (!stopping_ &&
             zmq::recv_multipart(sub_, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
        OnLive(frames);
        frames.clear();
      }
    }
  } catch (const zmq::error_t& e) {
    KVR_LOG("events", error, "subscriber {} stopped: {}", options_.endpoint, e.what());
  }
}

void Subscriber::Impl::OnLive(const std::vector<zmq::message_t>& frames) {
  std::optional<uint64_t> seq;
  if (frames.size() == 3) seq = ParseSeqFrame(View(frames[1]));
  if (!seq.has_value()) {
    Count([](SubscriberStats& s) { ++s.decode_errors; });
    KVR_LOG("events", warn, "{}: not a [topic, seq, payload] message", options_.endpoint);
    return;
  }
  const std::string_view payload = View(frames[2]);
  probe_wait_ = options_.quiet_probe;
  if (unverified_ && next_.has_value() && *next_ > 0 && *seq >= *next_) {
    unverified_ = false;
    if (!ContinuityHolds(*seq)) {
      KVR_LOG("events", warn, "{}: seq {} after a reconnection does not continue seq {}: engine "
              "restarted", options_.endpoint, *seq, *next_ - 1);
      Count([](SubscriberStats& s) { ++s.restarts; });
      DeliverClear(*seq);
      next_.reset();
      replayed_ahead_.clear();
    }
  }
  unverified_ = false;
  if (next_.has_value() && *seq < *next_) {
    if (IsReplayedDuplicate(*seq, payload)) return;
    KVR_LOG("events", warn, "{}: seq {} after {}: engine restarted", options_.endpoint, *seq,
            *next_ - 1);
    Count([](SubscriberStats& s) { ++s.restarts; });
    DeliverClear(*seq);
    next_.reset();
  }
  replayed_ahead_.clear();  // the live stream is past everything replayed
  if (!next_.has_value()) {
    next_ = *seq;
    // A late start (or a restart noticed late): everything from 0 is still in the replay buffer.
    if (*seq > 0 && dealer_) next_ = 0;
  } else if (*seq > *next_) {
    Count([](SubscriberStats& s) { ++s.gaps; });
  }
  if (*seq > *next_) {
    CatchUp(*seq, payload);
    return;
  }
  Deliver(*seq, payload);
  next_ = *seq + 1;
}

// Batches next_ .. seq-1 did not arrive live: replay them, then deliver `seq` unless the replay
// already did.
void Subscriber::Impl::CatchUp(uint64_t seq, std::string_view payload) {
  if (dealer_) Replay(*next_, seq);
  if (stopping_ || *next_ > seq) return;
  if (*next_ < seq) {
    const uint64_t lost = seq - *next_;
    KVR_LOG("events", warn, "{}: {} batches before seq {} lost", options_.endpoint, lost, seq);
    Count([lost](SubscriberStats& s) { s.lost_batches += lost; });
    DeliverClear(seq);
  }
  Deliver(seq, payload);
  next_ = seq + 1;
}

void Subscriber::Impl::OnMonitorEvent() {
  std::vector<zmq::message_t> frames;
  while (zmq::recv_multipart(monitor_, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
    uint16_t event = 0;  // frame 0: the event (16 bits, native order), then a 32-bit value
    if (!frames.empty() && frames[0].size() >= sizeof(event)) {
      std::memcpy(&event, frames[0].data(), sizeof(event));
    }
    frames.clear();
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      probe_wait_ = options_.quiet_probe;
      continue;
    }
    Count([](SubscriberStats& s) { ++s.reconnects; });
    unverified_ = true;
  }
}

// The live stream has been quiet for quiet_probe: asks for what follows the last batch
// delivered (everything from 0 when none was). A publisher drops what it publishes before our
// subscription reaches it, and a lost batch is otherwise noticed only when a later one arrives:
// an engine that goes quiet right after either would keep the router behind until its next
// batch. Again after twice the wait while the spell lasts (up to quiet_probe_max): a batch
// published after an empty probe and lost would otherwise wait for the next live one. Batches
// that also arrive live are told apart as replayed ahead.
void Subscriber::Impl::Probe() {
  probe_wait_ = std::max(options_.quiet_probe, std::min(2 * probe_wait_, options_.quiet_probe_max));
  if (unverified_) {  // the next live batch checks continuity first
    probe_wait_ = std::chrono::milliseconds(0);
    return;
  }
  const bool started = next_.has_value();
  if (!started) next_ = 0;
  Replay(*next_, kNoLiveBatch);
  if (!started && *next_ == 0) next_.reset();  // nothing yet: the first live batch starts it
}

// After a reconnection: asks for the batches from *next_ - 1 on. If the publisher's batch there
// is the one delivered last, it is the same engine (the replay then delivers what was missed);
// otherwise, or with no replay socket to ask, it cannot be trusted to be.
bool Subscriber::Impl::ContinuityHolds(uint64_t live_seq) {
  if (!dealer_) return false;
  check_ = Check::kPending;
  Replay(*next_ - 1, live_seq - 1);  // the live batch itself counts as replayed ahead
  const bool held = check_ == Check::kPassed;
  check_ = Check::kNone;
  return held;
}

// Asks for everything from `start` and delivers it as it comes, until the end marker. The replay
// runs on this thread, so live batches wait in the SUB queue meanwhile.
void Subscriber::Impl::Replay(uint64_t start, uint64_t live_seq) {
  Count([](SubscriberStats& s) { ++s.replays; });
  dealer_->send(zmq::message_t(), zmq::send_flags::sndmore);
  dealer_->send(zmq::buffer(SeqFrame(start)), zmq::send_flags::none);
  zmq::pollitem_t items[] = {{dealer_->handle(), 0, ZMQ_POLLIN, 0},
                             {wake_in_.handle(), 0, ZMQ_POLLIN, 0}};
  std::vector<zmq::message_t> frames;
  while (true) {
    if (zmq::poll(items, 2, options_.replay_timeout) == 0) {
      KVR_LOG("events", warn, "{}: replay from {} timed out", options_.replay_endpoint, *next_);
      ResetDealer();  // a late answer must not be taken for the next replay's
      return;
    }
    if (items[1].revents & ZMQ_POLLIN) {
      stopping_ = true;
      return;
    }
    frames.clear();
    if (!zmq::recv_multipart(*dealer_, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
      continue;
    }
    std::optional<uint64_t> seq;
    if (frames.size() == 3) seq = ParseSeqFrame(View(frames[1]));
    if (!seq.has_value()) {
      Count([](SubscriberStats& s) { ++s.decode_errors; });
      continue;
    }
    if (*seq == internal::kEndOfReplay) return;
    OnReplayed(*seq, View(frames[2]), live_seq);
  }
}

void Subscriber::Impl::OnReplayed(uint64_t seq, std::string_view payload, uint64_t live_seq) {
  if (check_ == Check::kPending) {
    const bool same = seq == *next_ - 1 && PayloadHash(payload) == last_hash_;
    check_ = same ? Check::kPassed : Check::kFailed;
    if (same) return;
  }
  if (check_ == Check::kFailed) return;  // another engine's batches: drained, not delivered
  if (seq < *next_) return;              // delivered already
  if (seq > *next_) {        // the publisher's buffer no longer holds next_ .. seq-1
    const uint64_t lost = seq - *next_;
    Count([lost](SubscriberStats& s) { s.lost_batches += lost; });
    DeliverClear(seq);
  }
  Count([](SubscriberStats& s) { ++s.replayed_batches; });
  Deliver(seq, payload);
  next_ = seq + 1;
  if (live_seq == kNoLiveBatch || seq > live_seq) {
    replayed_ahead_.emplace_back(seq, PayloadHash(payload));
  }
}

bool Subscriber::Impl::IsReplayedDuplicate(uint64_t seq, std::string_view payload) {
  while (!replayed_ahead_.empty() && replayed_ahead_.front().first < seq) {
    replayed_ahead_.pop_front();  // dropped on the live path too
  }
  if (replayed_ahead_.empty() || replayed_ahead_.front().first != seq ||
      replayed_ahead_.front().second != PayloadHash(payload)) {
    return false;
  }
  replayed_ahead_.pop_front();
  return true;
}

void Subscriber::Impl::Deliver(uint64_t seq, std::string_view payload) {
  absl::StatusOr<DecodedBatch> batch = DecodeBatch(payload, options_.worker);
  if (!batch.ok()) {
    KVR_LOG("events", warn, "{}: seq {}: {}", options_.endpoint, seq, batch.status().ToString());
    Count([](SubscriberStats& s) { ++s.decode_errors; });
    return;
  }
  {
    MutexLock lock(mu_);
    ++stats_.batches;
    stats_.events += batch->events.size();
    stats_.skipped_events += batch->skipped;
    last_seq_ = seq;
  }
  delivered_since_clear_ = true;
  last_hash_ = PayloadHash(payload);
  sink_(seq, *std::move(batch));
}

// Nothing to clear before the first batch or right after a clear (a restart noticed through a
// replay that no longer reaches 0 would otherwise clear twice).
void Subscriber::Impl::DeliverClear(uint64_t seq) {
  if (!delivered_since_clear_) return;
  delivered_since_clear_ = false;
  DecodedBatch clear;
  clear.events.push_back(KvCleared{.worker = options_.worker});
  sink_(seq, std::move(clear));
}

Subscriber::Subscriber(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Subscriber::~Subscriber() = default;

absl::StatusOr<std::unique_ptr<Subscriber>> Subscriber::Start(SubscriberOptions options,
                                                              Sink sink) {
  auto impl = std::make_unique<Impl>(std::move(options), std::move(sink));
  if (absl::Status s = impl->Open(); !s.ok()) return s;
  return std::unique_ptr<Subscriber>(new Subscriber(std::move(impl)));
}

SubscriberStats Subscriber::stats() const { return impl_->stats(); }
std::optional<uint64_t> Subscriber::last_seq() const { return impl_->last_seq(); }

}  // namespace kvr::events
