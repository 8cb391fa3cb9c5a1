#include "gateway/metrics.h"

#include <prometheus/text_serializer.h>

#include "absl/strings/str_cat.h"
#include "gateway/pool.h"

namespace kvr::gateway {
namespace {

// vLLM's TTFT and end-to-end buckets, so both sides of the router read alike.
const std::vector<double> kTtftBuckets = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
                                          0.25,  0.5,   0.75, 1.0,  2.5,  5.0,  7.5,  10.0,
                                          20.0,  40.0,  80.0, 160,  640,  2560};
const std::vector<double> kE2eBuckets = {0.3,  0.5,  0.8,  1.0,  1.5, 2.0, 2.5,  5.0,  10.0, 15.0,
                                         20.0, 30.0, 40.0, 50.0, 60,  120, 240,  480,  960,  1920};
// The router's own work: microseconds to tens of milliseconds.
const std::vector<double> kFastBuckets = {1e-5,   2.5e-5, 5e-5, 1e-4,   2.5e-4, 5e-4, 1e-3,
                                          2.5e-3, 5e-3,   1e-2, 2.5e-2, 0.1,    0.5};
const std::vector<double> kQueueBuckets = {0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// The per-worker families, built at scrape time from the pools' state.
struct WorkerFamilies {
  ScrapedFamily booked{
      "kvrouter_worker_booked_prefill_tokens",
      "Uncached prompt tokens routed to the worker and not yet past their first token",
      MetricType::Gauge};
  ScrapedFamily running{"kvrouter_worker_running_requests",
                        "Requests routed to the worker and not yet finished", MetricType::Gauge};
  ScrapedFamily healthy{"kvrouter_worker_healthy", "1 when the worker passes its health checks",
                        MetricType::Gauge};
  ScrapedFamily stale{
      "kvrouter_worker_stale",
      "1 when the worker runs requests but has sent no KV events for events.stale_after_ms",
      MetricType::Gauge};
  ScrapedFamily mismatch{"kvrouter_worker_tokenizer_mismatch",
                         "1 when the worker's token ids differ from the router's on a probe",
                         MetricType::Gauge};
  ScrapedFamily agrees{
      "kvrouter_worker_tokenizer_agrees",
      "1 when the worker's token ids equal the router's on every probe (forward_tokens "
      "sends token ids only to such workers)",
      MetricType::Gauge};
  ScrapedFamily cached{"kvrouter_worker_cached_blocks",
                       "Device KV blocks the index holds for the worker", MetricType::Gauge};
  ScrapedFamily applied{"kvrouter_events_applied_total", "KV events applied to the index",
                        MetricType::Counter};
  ScrapedFamily skipped{"kvrouter_events_skipped_total", "KV events not applied, by reason",
                        MetricType::Counter};
  ScrapedFamily gaps{"kvrouter_event_gaps_total", "Sequence gaps in a worker's event stream",
                     MetricType::Counter};
  ScrapedFamily replays{"kvrouter_event_replays_total", "Replay requests sent to a worker",
                        MetricType::Counter};
  ScrapedFamily replayed{"kvrouter_event_replayed_batches_total",
                         "Event batches recovered by replay", MetricType::Counter};
  ScrapedFamily lost{"kvrouter_event_lost_batches_total",
                     "Event batches neither received nor replayed (the worker was cleared)",
                     MetricType::Counter};
  ScrapedFamily reconnects{"kvrouter_event_reconnects_total",
                           "Times the connection to a worker's event publisher dropped",
                           MetricType::Counter};
  ScrapedFamily restarts{
      "kvrouter_event_restarts_total",
      "Publisher restarts seen (sequence went backwards): the worker was rebuilt",
      MetricType::Counter};
  ScrapedFamily corrections{
      "kvrouter_slot_model_corrections_total",
      "Answers of a llama.cpp worker that reported fewer cached tokens than its "
      "slot model predicted (by more than a block); each corrected the model",
      MetricType::Counter};

  void Add(const Pool& pool, const Worker& w) {
    const std::vector<ClientMetric::Label> l = {{"model", pool.name()}, {"worker", w.config.name}};
    auto with = [&](const char* reason) {
      auto x = l;
      x.push_back({"reason", reason});
      return x;
    };
    const std::optional<WorkerLoad> load = pool.scheduler().Load(w.id);
    booked.Add(load ? double(load->booked_prefill_tokens) : 0, l);
    running.Add(load ? double(load->running) : 0, l);
    healthy.Add(w.healthy ? 1 : 0, l);
    stale.Add(w.stale ? 1 : 0, l);
    mismatch.Add(w.tokenizer == Worker::Tokenizer::kMismatch ? 1 : 0, l);
    agrees.Add(w.tokenizer == Worker::Tokenizer::kAgrees ? 1 : 0, l);
    const WorkerIndexStats is = pool.index().Stats(w.id);
    cached.Add(double(is.blocks[0]), l);
    applied.Add(double(w.events_applied), l);
    skipped.Add(double(is.rejects.parent_unknown), with("parent_unknown"));
    skipped.Add(double(is.rejects.remove_unknown), with("remove_unknown"));
    skipped.Add(double(is.rejects.wrong_block_size), with("wrong_block_size"));
    skipped.Add(double(is.rejects.malformed), with("malformed"));
    skipped.Add(double(w.events_dropped_removed), with("worker_removed"));
    events::SubscriberStats ss;
    if (w.subscriber) ss = w.subscriber->stats();
    skipped.Add(double(ss.skipped_events), with("unsupported"));
    skipped.Add(double(ss.decode_errors), with("decode_error"));
    gaps.Add(double(ss.gaps), l);
    replays.Add(double(ss.replays), l);
    replayed.Add(double(ss.replayed_batches), l);
    lost.Add(double(ss.lost_batches), l);
    restarts.Add(double(ss.restarts), l);
    reconnects.Add(double(ss.reconnects), l);
    if (w.slots.active()) corrections.Add(double(w.slots.corrections()), l);
  }

  void MoveInto(std::vector<MetricFamily>* out) {
    for (ScrapedFamily* f :
         {&booked, &running, &healthy, &stale, &mismatch, &agrees, &cached, &applied, &skipped,
          &gaps, &replays, &replayed, &lost, &restarts, &reconnects, &corrections}) {
      out->push_back(std::move(f->f));
    }
  }
};

}  // namespace

GatewayMetrics::GatewayMetrics() = default;

GatewayMetrics::ModelHandles& GatewayMetrics::For(std::string_view model) {
  auto it = models_.find(model);
  if (it != models_.end()) return it->second;
  const MetricsRegistry::Labels m = {{"model", std::string(model)}};
  auto with = [&](const char* key, const char* value) {
    MetricsRegistry::Labels l = m;
    l[key] = value;
    return l;
  };
  MetricsRegistry& r = registry_;
  ModelHandles h{
      .ttft = &r.Histogram("kvrouter_time_to_first_token_seconds",
                           "Time from arrival to the first streamed byte of output", kTtftBuckets,
                           m),
      .e2e = &r.Histogram("kvrouter_e2e_request_latency_seconds",
                          "Time from arrival to the end of the response", kE2eBuckets, m),
      .prepare = &r.Histogram("kvrouter_prepare_seconds",
                              "Parsing, chat rendering, tokenization and block hashing",
                              kFastBuckets, m),
      .decision = &r.Histogram("kvrouter_decision_seconds",
                               "The routing decision: index query, policy, booking", kFastBuckets, m),
      .queue_wait = &r.Histogram("kvrouter_queue_wait_seconds",
                                 "Time spent waiting for an unsaturated worker", kQueueBuckets, m),
      .retries = &r.Counter("kvrouter_retries_total",
                            "Requests sent again to another worker after a failure", m),
      .token_prompts = &r.Counter("kvrouter_token_prompts_total",
                                  "Text prompts forwarded as the router's token ids "
                                  "(forward_tokens)", m),
      .queued = &r.Gauge("kvrouter_queued_requests",
                         "Requests waiting for a worker below the saturation limits", m),
      .prompt_router = &r.Counter("kvrouter_prompt_tokens_total",
                                  "Prompt tokens, as the router counted and as engines reported",
                                  with("source", "router")),
      .prompt_engine = &r.Counter("kvrouter_prompt_tokens_total",
                                  "Prompt tokens, as the router counted and as engines reported",
                                  with("source", "engine")),
      .cached_router = &r.Counter("kvrouter_cached_tokens_total",
                                  "Prompt tokens served from cache, as the router predicted and "
                                  "as engines reported (usage.prompt_tokens_details)",
                                  with("source", "router")),
      .cached_engine = &r.Counter("kvrouter_cached_tokens_total",
                                  "Prompt tokens served from cache, as the router predicted and "
                                  "as engines reported (usage.prompt_tokens_details)",
                                  with("source", "engine")),
      .requests = {}};
  return models_.emplace(std::string(model), std::move(h)).first->second;
}

prometheus::Counter& GatewayMetrics::Requests(ModelHandles& h, std::string_view model,
                                              std::string_view worker, int status) {
  const std::string key = absl::StrCat(std::string(worker), "\x1f", status);
  auto it = h.requests.find(key);
  if (it != h.requests.end()) return *it->second;
  prometheus::Counter& c = registry_.Counter(
      "kvrouter_requests_total", "Generation requests answered, by model, worker and status",
      {{"model", std::string(model)}, {"worker", std::string(worker)},
       {"status", std::to_string(status)}});
  h.requests.emplace(key, &c);
  return c;
}

void GatewayMetrics::Request(const RequestRecord& r) {
  ModelHandles& h = For(r.model);
  Requests(h, r.model, r.worker, r.status).Increment();
  if (r.ttft_s >= 0) h.ttft->Observe(r.ttft_s);
  h.e2e->Observe(r.e2e_s);
  // Token counts only for requests an engine answered, so both sources cover the same requests.
  if (r.engine_prompt_tokens >= 0) {
    h.prompt_router->Increment(r.router_prompt_tokens);
    h.cached_router->Increment(r.router_cached_tokens);
    h.prompt_engine->Increment(static_cast<double>(r.engine_prompt_tokens));
    if (r.engine_cached_tokens >= 0) {
      h.cached_engine->Increment(static_cast<double>(r.engine_cached_tokens));
    }
  }
}

void GatewayMetrics::Prepare(std::string_view model, double s) { For(model).prepare->Observe(s); }
void GatewayMetrics::Decision(std::string_view model, double s) { For(model).decision->Observe(s); }
void GatewayMetrics::Retry(std::string_view model) { For(model).retries->Increment(); }
void GatewayMetrics::TokenPrompt(std::string_view model) {
  For(model).token_prompts->Increment();
}
void GatewayMetrics::Queued(std::string_view model, int delta) {
  For(model).queued->Increment(delta);
}

void GatewayMetrics::QueueWait(std::string_view model, double s) {
  For(model).queue_wait->Observe(s);
}

std::string GatewayMetrics::Serialize(const std::vector<const Pool*>& pools) const {
  std::vector<MetricFamily> families = registry_.registry()->Collect();
  WorkerFamilies workers;
  for (const Pool* pool : pools) {
    for (const auto& w : *pool->workers()) workers.Add(*pool, *w);
  }
  workers.MoveInto(&families);
  for (MetricFamily& f : ProcessMetricFamilies()) families.push_back(std::move(f));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace kvr::gateway
