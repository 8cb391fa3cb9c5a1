#include "sim/trace.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/random.h"
#include "nlohmann/json.hpp"

namespace kvr::sim {
namespace {

using nlohmann::json;

// Far above any real context window; stops a hostile line from asking for gigabytes.
constexpr uint64_t kMaxPromptTokens = uint64_t{1} << 24;

struct TraceRecord {
  double timestamp_ms = 0;
  uint64_t input_length = 0;
  uint64_t output_length = 0;
  std::vector<uint64_t> hash_ids;
};

absl::Status LineError(size_t line_no, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("trace line ", line_no, ": ", what));
}

// Reads a non-negative integer field; floats, negatives and other types are errors.
absl::StatusOr<uint64_t> UnsignedField(const json& obj, const char* key, size_t line_no) {
  auto it = obj.find(key);
  if (it == obj.end()) return LineError(line_no, absl::StrCat("missing \"", key, "\""));
  if (!it->is_number_unsigned()) {
    return LineError(line_no, absl::StrCat("\"", key, "\" must be a non-negative integer"));
  }
  return it->get<uint64_t>();
}

absl::StatusOr<double> TimestampField(const json& obj, size_t line_no) {
  auto it = obj.find("timestamp");
  if (it == obj.end()) return LineError(line_no, "missing \"timestamp\"");
  if (!it->is_number()) return LineError(line_no, "\"timestamp\" must be a number");
  const double ts = it->get<double>();
  if (!std::isfinite(ts) || ts < 0) return LineError(line_no, "\"timestamp\" must be >= 0");
  return ts;
}

absl::Status HashIdsField(const json& obj, size_t line_no, std::vector<uint64_t>* out) {
  auto it = obj.find("hash_ids");
  if (it == obj.end()) return LineError(line_no, "missing \"hash_ids\"");
  if (!it->is_array()) return LineError(line_no, "\"hash_ids\" must be an array");
  out->reserve(it->size());
  for (const json& h : *it) {
    if (!h.is_number_unsigned()) {
      return LineError(line_no, "\"hash_ids\" entries must be non-negative integers");
    }
    out->push_back(h.get<uint64_t>());
  }
  return absl::OkStatus();
}

absl::StatusOr<TraceRecord> ParseLine(std::string_view line, size_t line_no, uint32_t block) {
  const json obj = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (obj.is_discarded()) return LineError(line_no, "invalid JSON");
  if (!obj.is_object()) return LineError(line_no, "expected a JSON object");
  TraceRecord rec;
  KVR_ASSIGN_OR_RETURN(rec.timestamp_ms, TimestampField(obj, line_no));
  KVR_ASSIGN_OR_RETURN(rec.input_length, UnsignedField(obj, "input_length", line_no));
  KVR_ASSIGN_OR_RETURN(rec.output_length, UnsignedField(obj, "output_length", line_no));
  KVR_RETURN_IF_ERROR(HashIdsField(obj, line_no, &rec.hash_ids));
  if (rec.input_length == 0) return LineError(line_no, "\"input_length\" must be >= 1");
  if (rec.input_length > kMaxPromptTokens) return LineError(line_no, "\"input_length\" too large");
  if (rec.output_length > UINT32_MAX) return LineError(line_no, "\"output_length\" too large");
  const uint64_t blocks_needed = (rec.input_length + block - 1) / block;
  if (rec.hash_ids.size() != blocks_needed) {
    return LineError(line_no, absl::StrCat("\"hash_ids\" has ", rec.hash_ids.size(),
                                           " entries but input_length ", rec.input_length,
                                           " needs ", blocks_needed, " blocks of ", block));
  }
  return rec;
}

absl::StatusOr<std::vector<TraceRecord>> ParseRecords(std::string_view text,
                                                      const TraceOptions& options) {
  std::vector<TraceRecord> records;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (options.max_requests != 0 && records.size() >= options.max_requests) break;
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    KVR_ASSIGN_OR_RETURN(TraceRecord rec, ParseLine(line, line_no, options.trace_block_tokens));
    records.push_back(std::move(rec));
  }
  return records;
}

// Rng seeds through splitmix64, so nearby (hash_id, seed) pairs give unrelated streams.
uint64_t BlockSeed(uint64_t hash_id, uint64_t seed) {
  return hash_id ^ (seed * 0x9e3779b97f4a7c15ULL);
}

TokenId RandomToken(Rng& rng) { return static_cast<TokenId>(rng.Uniform(kSyntheticVocab)); }

// Expands records into token prompts. Each hash id's tokens are generated once, straight into
// the first prompt that needs them; later occurrences memcpy from that prompt (its buffer is
// reserved to its final size up front, so the pointer stays valid when the request is moved).
// A block first seen partial is regenerated when a later prompt needs more of it.
class PromptBuilder {
 public:
  PromptBuilder(uint32_t block, uint64_t seed) : block_(block), seed_(seed) {}

  std::vector<TokenId> Build(const TraceRecord& rec) {
    std::vector<TokenId> prompt;
    prompt.reserve(rec.input_length);
    for (size_t i = 0; i < rec.hash_ids.size(); ++i) {
      const uint64_t remaining = rec.input_length - prompt.size();
      const uint32_t len = static_cast<uint32_t>(std::min<uint64_t>(block_, remaining));
      AppendBlock(rec.hash_ids[i], len, &prompt);
    }
    return prompt;
  }

 private:
  struct Source {
    const TokenId* tokens;
    uint32_t len;
  };

  void AppendBlock(uint64_t hash_id, uint32_t len, std::vector<TokenId>* prompt) {
    auto [it, inserted] = sources_.try_emplace(hash_id, Source{nullptr, 0});
    if (!inserted && it->second.len >= len) {
      prompt->insert(prompt->end(), it->second.tokens, it->second.tokens + len);
      return;
    }
    // push_back into reserved capacity: no zero-fill pass over fresh memory before generating.
    const size_t start = prompt->size();
    Rng rng(BlockSeed(hash_id, seed_));
    for (uint32_t i = 0; i < len; ++i) prompt->push_back(RandomToken(rng));
    it->second = Source{prompt->data() + start, len};
  }

  uint32_t block_;
  uint64_t seed_;
  absl::flat_hash_map<uint64_t, Source> sources_;
};

}  // namespace

void SynthesizeBlockTokens(uint64_t hash_id, uint64_t seed, std::span<TokenId> out) {
  Rng rng(BlockSeed(hash_id, seed));
  for (TokenId& t : out) t = RandomToken(rng);
}

absl::StatusOr<Workload> ParseMooncakeTrace(std::string_view text, const TraceOptions& options,
                                            std::string name) {
  if (!(options.rate_scale > 0) || !std::isfinite(options.rate_scale)) {
    return absl::InvalidArgumentError("rate_scale must be a positive number");
  }
  if (options.trace_block_tokens == 0) {
    return absl::InvalidArgumentError("trace_block_tokens must be >= 1");
  }
  KVR_ASSIGN_OR_RETURN(std::vector<TraceRecord> records, ParseRecords(text, options));
  Workload workload;
  workload.name = std::move(name);
  workload.requests.reserve(records.size());
  PromptBuilder builder(options.trace_block_tokens, options.seed);
  for (const TraceRecord& rec : records) {
    SimRequest r;
    const double arrival_ns = rec.timestamp_ms / options.rate_scale * kNsPerMs;
    r.arrival = arrival_ns >= 9.2e18 ? INT64_MAX : static_cast<TimeNs>(std::llround(arrival_ns));
    r.prompt = builder.Build(rec);
    r.output_tokens = static_cast<uint32_t>(std::max<uint64_t>(rec.output_length, 1));
    workload.requests.push_back(std::move(r));
  }
  SortAndNumber(workload);
  return workload;
}

absl::StatusOr<Workload> LoadMooncakeTrace(const std::string& path, const TraceOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open trace ", path));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading trace ", path));
  std::string name = std::filesystem::path(path).stem().string();
  constexpr std::string_view kSuffix = "_trace";
  if (name.size() > kSuffix.size() && name.ends_with(kSuffix)) {
    name.resize(name.size() - kSuffix.size());
  }
  return ParseMooncakeTrace(buf.str(), options, std::move(name));
}

}  // namespace kvr::sim
