// kvrouter kv-events --endpoint tcp://HOST:PORT [--replay-endpoint tcp://HOST:PORT] [--topic T]
//                    [--count N]
// Subscribes to one engine's KV events as the router does (events::Subscriber: sequence
// tracking, gap replay, late-start catch-up, restart detection) and prints every batch, decoded,
// as one JSON line on stdout, in sequence order:
//   {"seq":N,"ts":T,"dp_rank":R|null,"events":[{"type":"BlockStored","block_hashes":[u64..],
//    "parent":u64|null,"token_ids":[..],"block_size":B,"medium":"GPU","lora_name":".."},
//    {"type":"BlockRemoved","block_hashes":[..],"medium":".."},{"type":"AllBlocksCleared"}]}
// Hashes are the engines' as u64 (bytes hashes: their last 8 bytes, big-endian). Exits 0 after
// --count batches (0: on SIGINT/SIGTERM); the subscriber's counters go to stderr at exit.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/synchronization/notification.h"
#include "cli/commands.h"
#include "events/subscriber.h"

namespace kvr::cli {
namespace {

struct KvEventsFlags {
  std::string endpoint, replay_endpoint, topic;
  uint64_t count = 0;
};

nlohmann::json Hashes(const std::vector<EngineHash>& hashes) {
  nlohmann::json out = nlohmann::json::array();
  for (EngineHash h : hashes) out.push_back(h.value());
  return out;
}

nlohmann::json EventJson(const KvEvent& event) {
  if (const auto* s = std::get_if<KvStored>(&event)) {
    return {{"type", "BlockStored"},
            {"block_hashes", Hashes(s->block_hashes)},
            {"parent", s->parent ? nlohmann::json(s->parent->value()) : nlohmann::json(nullptr)},
            {"token_ids", s->token_ids},
            {"block_size", s->block_size},
            {"medium", events::MediumFromTier(s->tier)},
            {"lora_name", s->lora_name}};
  }
  if (const auto* r = std::get_if<KvRemoved>(&event)) {
    return {{"type", "BlockRemoved"}, {"block_hashes", Hashes(r->block_hashes)},
            {"medium", events::MediumFromTier(r->tier)}};
  }
  return {{"type", "AllBlocksCleared"}};
}

std::string BatchLine(uint64_t seq, const events::DecodedBatch& batch) {
  nlohmann::json events = nlohmann::json::array();
  for (const KvEvent& e : batch.events) events.push_back(EventJson(e));
  nlohmann::json line = {{"seq", seq},
                         {"ts", batch.ts},
                         {"dp_rank", batch.dp_rank ? nlohmann::json(*batch.dp_rank)
                                                   : nlohmann::json(nullptr)},
                         {"events", std::move(events)}};
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Blocks until SIGINT or SIGTERM (blocked in every thread, so taken here) or until `done`.
void WaitForSignalOr(const sigset_t& signals, absl::Notification& done) {
  while (!done.HasBeenNotified()) {
    const timespec tick{0, 50'000'000};  // how often `done` is looked at
    if (sigtimedwait(&signals, nullptr, &tick) > 0) return;
  }
}

int RunKvEvents(const KvEventsFlags& f) {
  std::mutex out_mu;
  uint64_t printed = 0;
  absl::Notification done;
  // Block the signals before the subscriber's thread starts, so only sigtimedwait takes them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  auto sub = events::Subscriber::Start(
      {.endpoint = f.endpoint, .replay_endpoint = f.replay_endpoint, .topic = f.topic},
      [&](uint64_t seq, events::DecodedBatch batch) {
        std::lock_guard lock(out_mu);
        if (done.HasBeenNotified()) return;
        std::cout << BatchLine(seq, batch) << std::endl;
        if (f.count > 0 && ++printed == f.count) done.Notify();
      });
  if (!sub.ok()) {
    std::cerr << "kv-events: " << sub.status().message() << "\n";
    return 1;
  }
  WaitForSignalOr(set, done);
  const events::SubscriberStats s = (*sub)->stats();
  sub->reset();
  std::cerr << "kv-events: batches=" << s.batches << " events=" << s.events
            << " gaps=" << s.gaps << " replays=" << s.replays
            << " replayed_batches=" << s.replayed_batches << " restarts=" << s.restarts
            << " lost_batches=" << s.lost_batches << " decode_errors=" << s.decode_errors << "\n";
  return 0;
}

}  // namespace

void RegisterKvEvents(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<KvEventsFlags>();
  CLI::App* cmd = app.add_subcommand("kv-events", "print an engine's KV events, decoded, as JSONL");
  cmd->add_option("--endpoint", flags->endpoint, "the engine's ZMQ PUB endpoint")->required();
  cmd->add_option("--replay-endpoint", flags->replay_endpoint, "its replay ROUTER endpoint");
  cmd->add_option("--topic", flags->topic, "topic prefix to subscribe to");
  cmd->add_option("--count", flags->count, "exit after this many batches (0: on a signal)");
  cmd->callback([flags, exit_code] { *exit_code = RunKvEvents(*flags); });
}

}  // namespace kvr::cli
