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
    if (e->parent) s << e->parent->value(); else s << "none";
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

}  // namespace kvr::events::testing
