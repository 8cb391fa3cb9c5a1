#include "events/publisher.h"

#include <cerrno>
#include <chrono>
#include <deque>
#include <iterator>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "common/log.h"
#include "common/mutex.h"
#include "events/zmq_util.h"
#include "zmq.hpp"
#include "zmq_addon.hpp"

namespace kvr::events {

using internal::ParseSeqFrame;
using internal::SeqFrame;
using internal::View;

namespace {

constexpr const char* kWakeAddress = "inproc://kvr-events-publisher-wake";

// A batch between Publish and the thread.
struct Pending {
  uint64_t seq;
  std::string payload;
  bool drop;
};

}  // namespace

class Publisher::Impl {
 public:
  explicit Impl(PublisherOptions options)
      : options_(std::move(options)),
        pub_(context_, zmq::socket_type::pub),
        wake_in_(context_, zmq::socket_type::pair),
        wake_out_(context_, zmq::socket_type::pair) {}

  ~Impl() {
    if (!thread_.joinable()) return;
    {
      MutexLock lock(mu_);
      stopping_ = true;
      Wake();
    }
    thread_.join();
  }

  absl::Status Open();

  uint64_t Publish(std::string payload, bool drop) {
    MutexLock lock(mu_);
    const uint64_t seq = next_seq_++;
    pending_.push_back({seq, std::move(payload), drop});
    // The thread empties the queue after every wake-up: one wake-up per non-empty queue.
    if (pending_.size() == 1) Wake();
    return seq;
  }

  uint64_t next_seq() const {
    MutexLock lock(mu_);
    return next_seq_;
  }

  const std::string& endpoint() const { return endpoint_; }
  const std::string& replay_endpoint() const { return replay_endpoint_; }

 private:
  // A full pipe already holds a wake-up, so this never needs to block.
  void Wake() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    (void)wake_out_.send(zmq::message_t(), zmq::send_flags::dontwait);
  }
  void Run();
  bool TakePending();
  void Send(const Pending& batch);
  void ServeReplays();
  void Replay(const zmq::message_t& client, uint64_t start);

  const PublisherOptions options_;
  zmq::context_t context_;  // before the sockets: destroyed after them
  std::string endpoint_;
  std::string replay_endpoint_;

  // Used only by the thread once it runs.
  zmq::socket_t pub_;
  std::optional<zmq::socket_t> router_;
  zmq::socket_t wake_in_;
  std::deque<std::pair<uint64_t, std::string>> ring_;  // ascending, consecutive seqs

  // Batches cross to the thread through this queue, not through ZMQ: the mutex orders them and
  // makes the hand-over visible to ThreadSanitizer. The inproc pipe only carries wake-ups.
  mutable Mutex mu_;
  zmq::socket_t wake_out_ ABSL_GUARDED_BY(mu_);
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::thread thread_;
};

absl::Status Publisher::Impl::Open() {
  try {
    MutexLock lock(mu_);
    for (zmq::socket_t* s : {&pub_, &wake_in_, &wake_out_}) s->set(zmq::sockopt::linger, 0);
    pub_.set(zmq::sockopt::sndhwm, options_.hwm);
    wake_in_.bind(kWakeAddress);
    wake_out_.connect(kWakeAddress);
    if (options_.replay) {
      router_.emplace(context_, zmq::socket_type::router);
      router_->set(zmq::sockopt::linger, 0);
      // Room for two whole replays (batches and end marker): the ROUTER learns that the I/O
      // thread has taken messages off a client's queue only in batches of half its high-water
      // mark, so one replay's room can still look taken when the next request arrives.
      router_->set(zmq::sockopt::sndhwm, static_cast<int>(2 * (options_.buffer_steps + 1)));
      // A full queue fails the send (EAGAIN) instead of dropping the message unnoticed.
      router_->set(zmq::sockopt::router_mandatory, true);
    }
  } catch (const zmq::error_t& e) {
    return internal::ZmqError("publisher sockets", e);
  }
  absl::StatusOr<std::string> endpoint = internal::BindTcp(pub_, options_.host, options_.port);
  if (!endpoint.ok()) return endpoint.status();
  endpoint_ = *std::move(endpoint);
  if (router_) {
    absl::StatusOr<std::string> replay =
        internal::BindTcp(*router_, options_.host, options_.replay_port);
    if (!replay.ok()) return replay.status();
    replay_endpoint_ = *std::move(replay);
  }
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void Publisher::Impl::Run() {
  zmq::pollitem_t items[] = {{wake_in_.handle(), 0, ZMQ_POLLIN, 0},
                             {router_ ? router_->handle() : nullptr, 0, ZMQ_POLLIN, 0}};
  const size_t n_items = router_ ? 2 : 1;
  try {
    while (true) {
      zmq::poll(items, n_items, std::chrono::milliseconds(-1));
      // Batches first: a request sees every batch published before it arrived.
      if (!TakePending()) return;
      if (router_) ServeReplays();
    }
  } catch (const zmq::error_t& e) {
    KVR_LOG("events", error, "publisher {} stopped: {}", endpoint_, e.what());
  }
}

// Sends (and keeps) every queued batch; false once the publisher is stopping.
bool Publisher::Impl::TakePending() {
  zmq::message_t wake;
  while (wake_in_.recv(wake, zmq::recv_flags::dontwait)) continue;  // one batch pass serves all
  std::deque<Pending> batches;
  {
    MutexLock lock(mu_);
    if (stopping_) return false;
    batches.swap(pending_);
  }
  for (Pending& batch : batches) {
    Send(batch);
    if (options_.buffer_steps == 0) continue;
    if (ring_.size() == options_.buffer_steps) ring_.pop_front();
    ring_.emplace_back(batch.seq, std::move(batch.payload));
  }
  return true;
}

void Publisher::Impl::Send(const Pending& batch) {
  if (batch.drop) return;
  // PUB never blocks: at the high-water mark it drops, which subscribers see as a gap.
  pub_.send(zmq::buffer(options_.topic), zmq::send_flags::sndmore);
  pub_.send(zmq::buffer(SeqFrame(batch.seq)), zmq::send_flags::sndmore);
  pub_.send(zmq::buffer(batch.payload), zmq::send_flags::none);
}

// A request is [client identity, "", start seq (8 bytes big-endian)]; anything else is ignored,
// as vLLM does.
void Publisher::Impl::ServeReplays() {
  std::vector<zmq::message_t> frames;
  while (zmq::recv_multipart(*router_, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
    std::optional<uint64_t> start;
    if (frames.size() == 3) start = ParseSeqFrame(View(frames[2]));
    if (start.has_value()) {
      Replay(frames[0], *start);
    } else {
      KVR_LOG("events", warn, "publisher {}: invalid replay request ({} frames)", endpoint_,
              frames.size());
    }
    frames.clear();
  }
}

// A client that does not read its replies loses the rest of its replay (no end marker comes,
// so it times out) rather than stalling the publisher.
void Publisher::Impl::Replay(const zmq::message_t& client, uint64_t start) {
  // False if the client's queue is full or it has gone; the message is then not sent at all.
  auto send = [&](std::string_view seq_frame, std::string_view payload) {
    constexpr auto kMore = zmq::send_flags::sndmore | zmq::send_flags::dontwait;
    try {
      if (!router_->send(zmq::buffer(client.data(), client.size()), kMore)) return false;
    } catch (const zmq::error_t& e) {
      if (e.num() != EHOSTUNREACH) throw;
      return false;
    }
    router_->send(zmq::message_t(), zmq::send_flags::sndmore);
    router_->send(zmq::buffer(seq_frame), zmq::send_flags::sndmore);
    router_->send(zmq::buffer(payload), zmq::send_flags::none);
    return true;
  };
  for (const auto& [seq, payload] : ring_) {
    if (seq < start) continue;
    if (!send(SeqFrame(seq), payload)) {
      KVR_LOG("events", warn, "publisher {}: replay from seq {} abandoned at {}: client gone or "
              "not reading", endpoint_, start, seq);
      return;
    }
  }
  if (!send(SeqFrame(internal::kEndOfReplay), "")) {
    KVR_LOG("events", warn, "publisher {}: replay from seq {}: end marker not sent: client gone "
            "or not reading", endpoint_, start);
  }
}

Publisher::Publisher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Publisher::~Publisher() = default;

absl::StatusOr<std::unique_ptr<Publisher>> Publisher::Start(PublisherOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  if (absl::Status s = impl->Open(); !s.ok()) return s;
  return std::unique_ptr<Publisher>(new Publisher(std::move(impl)));
}

const std::string& Publisher::endpoint() const { return impl_->endpoint(); }
const std::string& Publisher::replay_endpoint() const { return impl_->replay_endpoint(); }

uint64_t Publisher::Publish(std::string payload, bool drop) {
  return impl_->Publish(std::move(payload), drop);
}

uint64_t Publisher::next_seq() const { return impl_->next_seq(); }

}  // namespace kvr::events
