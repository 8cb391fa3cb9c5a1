// Helpers shared by the events tests: file reading and a readable, complete rendering of
// KvEvents so that expectations compare (and print) every field.
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "events/codec.h"
#include "index/kv_event.h"

namespace kvr::events::testing {

inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

inline std::string Describe(const KvEvent& event) {
  std::ostringstream s;
  if (const auto* e = std::get_if<KvStored>(&event)) {
    s << "Stored(w" << e->worker.value() << " tier" << int(e->tier) << " parent=";
    s << (e->parent ? std::to_string(e->parent->value()) : "none");
    s << " bs=" << e->block_size << " lora='" << e->lora_name << "' salt='" << e->cache_salt
      << "' hashes=[";
    for (EngineHash h : e->block_hashes) s << h.value() << ",";
    s << "] tokens=[";
    for (TokenId t : e->token_ids) s << t << ",";
    s << "])";
  } else if (const auto* r = std::get_if<KvRemoved>(&event)) {
    s << "Removed(w" << r->worker.value() << " tier" << int(r->tier) << " hashes=[";
    for (EngineHash h : r->block_hashes) s << h.value() << ",";
    s << "])";
  } else {
    s << "Cleared(w" << std::get<KvCleared>(event).worker.value() << ")";
  }
  return s.str();
}

inline std::vector<std::string> Describe(const std::vector<KvEvent>& events) {
  std::vector<std::string> out;
  for (const KvEvent& e : events) out.push_back(Describe(e));
  return out;
}

// The scenario of every golden set (tests/data/vllm_events/README.md), one event list per
// message. The hashes are vLLM's sha256_cbor chain hashes (PYTHONHASHSEED=0) folded to u64.
inline std::vector<std::vector<KvEvent>> GoldenScenario(WorkerId worker, bool has_lora_name) {
  auto range = [](TokenId first, TokenId count) {
    std::vector<TokenId> out;
    for (TokenId t = first; t < first + count; ++t) out.push_back(t);
    return out;
  };
  const EngineHash a0(17507053300047258101u), a1(14424512966625972522u), a2(6803416000392209307u),
      b2(11964303901928147739u), lora(2326228266443127525u);
  return {
      {KvStored{.worker = worker,
                .block_hashes = {a0, a1, a2},
                .token_ids = range(1000, 48),
                .block_size = 16}},
      {KvStored{.worker = worker,
                .parent = a1,
                .block_hashes = {b2},
                .token_ids = range(5000, 16),
                .block_size = 16}},
      {KvStored{.worker = worker,
                .block_hashes = {lora},
                .token_ids = range(7, 16),
                .block_size = 16,
                .lora_name = has_lora_name ? "my-lora" : ""}},
      {KvRemoved{.worker = worker, .block_hashes = {a2}},
       KvRemoved{.worker = worker, .block_hashes = {b2}}},
      {KvCleared{.worker = worker}},
  };
}

}  // namespace kvr::events::testing
