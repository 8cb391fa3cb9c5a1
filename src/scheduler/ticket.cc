// Ticket and the per-worker LoadState it releases into: the release path, which never takes the
// scheduler's admission lock.
#include <utility>

#include "scheduler/load_state.h"
#include "scheduler/scheduler.h"

namespace kvr {
namespace scheduler_internal {

void LoadState::PostTtft(double queue_tokens, double ttft_s) {
  MutexLock lock(mu_);
  if (!open_) return;
  mail_.ttft_samples.emplace_back(queue_tokens, ttft_s);
  has_mail_.store(true, std::memory_order_release);
}

void LoadState::PostDecode(double tokens, double seconds) {
  MutexLock lock(mu_);
  if (!open_) return;
  mail_.decode_samples.emplace_back(tokens, seconds);
  has_mail_.store(true, std::memory_order_release);
}

void LoadState::PostFinished(std::vector<BlockHash> blocks) {
  MutexLock lock(mu_);
  if (!open_) return;
  mail_.finished_blocks.push_back(std::move(blocks));
  has_mail_.store(true, std::memory_order_release);
}

void LoadState::PostMetrics(const EngineMetrics& metrics) {
  MutexLock lock(mu_);
  if (!open_) return;
  mail_.metrics = metrics;
  has_mail_.store(true, std::memory_order_release);
}

bool LoadState::TakeMail(Mail* out) {
  if (!has_mail_.load(std::memory_order_acquire)) return false;
  MutexLock lock(mu_);
  std::swap(*out, mail_);
  has_mail_.store(false, std::memory_order_relaxed);
  return true;
}

void LoadState::Close() {
  MutexLock lock(mu_);
  open_ = false;
  mail_ = Mail{};
  has_mail_.store(false, std::memory_order_relaxed);
}

}  // namespace scheduler_internal

Ticket::Ticket(std::shared_ptr<scheduler_internal::Booking> booking)
    : booking_(std::move(booking)) {}

Ticket& Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    Finish();
    booking_ = std::move(other.booking_);
  }
  return *this;
}

Ticket::~Ticket() { Finish(); }

uint64_t Ticket::id() const { return booking_ == nullptr ? 0 : booking_->id; }

namespace {

// Takes the booking's prefill off its worker's load, once: the first of FirstToken and Finish
// does it. False when it was already done.
bool EndPrefill(scheduler_internal::Booking& b) {
  if (b.prefill_done.exchange(true)) return false;
  b.load->booked_prefill_tokens.fetch_sub(b.uncached, std::memory_order_relaxed);
  b.load->prefilling.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

}  // namespace

void Ticket::FirstToken(TimeNs observed_ttft) {
  if (booking_ == nullptr || !EndPrefill(*booking_)) return;
  if (observed_ttft != kUnknownTtft) {
    booking_->load->PostTtft(booking_->queue_tokens, double(observed_ttft) * 1e-9);
  }
}

void Ticket::Decoded(TimeNs elapsed, uint64_t tokens) {
  if (booking_ == nullptr || tokens == 0 || elapsed < 0) return;
  booking_->load->PostDecode(double(tokens), double(elapsed) * 1e-9);
}

void Ticket::Finish() {
  if (booking_ == nullptr) return;
  const std::shared_ptr<scheduler_internal::Booking> b = std::move(booking_);
  booking_ = nullptr;
  EndPrefill(*b);
  b->load->running.fetch_sub(1, std::memory_order_relaxed);
  b->load->PostFinished(std::move(b->blocks));
}

}  // namespace kvr
