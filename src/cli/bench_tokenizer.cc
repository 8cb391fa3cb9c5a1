// kvrouter bench tokenizer --tokenizer PATH --file F [--threads T] [--chunk-bytes N] [--json]
// Encodes F cut into chunks (default 8000 bytes, at UTF-8 boundaries) one after another on one
// thread, then on T threads, then as one whole string; prints MB/s (MB = 1e6 bytes of input),
// tokens/s and the tokenizer's resident memory against the JSON file's size. The *_cpu figures
// divide by the thread's CPU time instead of wall time (robust on a busy machine).
// With --load-only (no --file) it loads the tokenizer --repeat times and prints the load time
// only: load_first_s is the first load in the process (startup), load_s / load_cpu_s the best
// pass, load_s_median the median wall time.
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/bench_clock.h"
#include "cli/commands.h"
#include "tokenizer/tokenizer.h"

namespace kvr::cli {
namespace {

struct BenchTokFlags {
  std::string tokenizer;
  std::string file;
  int threads = 2;
  size_t chunk_bytes = 8000;
  int repeat = 3;
  bool json = false;
  bool add_special_tokens = false;
  bool load_only = false;
};

struct LoadTimes {
  // The first load in the process is what startup pays: it also builds the process-wide tables
  // (fast split matchers, Unicode data) and faults in fresh heap pages.
  double first_s = 0, first_cpu_s = 0;
  double best_s = 1e30, best_cpu_s = 1e30, median_s = 0;
  size_t rss_delta = 0;  // the first load's
};

double ThreadCpuNow() { return ThreadCpuUs() * 1e-6; }  // seconds

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

size_t RssBytes() {
  std::ifstream in("/proc/self/statm");
  size_t pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

std::vector<std::string_view> Chunks(std::string_view text, size_t size) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = std::min(text.size(), pos + size);
    while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
    out.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

// Best of `repeat` passes over `chunks` on `threads` threads; returns wall seconds, sets
// *tokens and *cpu_s (the calling thread's CPU seconds in the best pass: on a shared machine
// that is the fairer single-thread figure).
double TimeEncode(const tokenizer::Tokenizer& tok, const std::vector<std::string_view>& chunks,
                  int threads, int repeat, bool special, size_t* tokens, double* cpu_s) {
  double best = 1e30;
  for (int r = 0; r < repeat; ++r) {
    std::atomic<size_t> next{0}, total{0};
    auto worker = [&] {
      // The tokenizer's own speed: lines the corpus repeats are encoded again each time.
      tokenizer::EncodeCache cache(tokenizer::EncodeCache::kDefaultWords, /*max_line_bytes=*/0);
      std::vector<uint32_t> ids;
      size_t count = 0;
      for (size_t i = next++; i < chunks.size(); i = next++) {
        ids.clear();
        if (tok.EncodeInto(chunks[i], special, &cache, &ids).ok()) count += ids.size();
      }
      total += count;
    };
    double t0 = Now(), c0 = ThreadCpuNow();
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
    worker();
    double cpu = ThreadCpuNow() - c0;
    for (auto& th : pool) th.join();
    double wall = Now() - t0;
    if (wall < best) {
      best = wall;
      *cpu_s = cpu;
    }
    *tokens = total;
  }
  return best;
}

// Loads the tokenizer f.repeat times; returns the last one. Memory is measured on the first.
absl::StatusOr<std::unique_ptr<tokenizer::Tokenizer>> TimeLoad(const BenchTokFlags& f,
                                                               LoadTimes* times) {
  std::vector<double> walls;
  std::unique_ptr<tokenizer::Tokenizer> last;
  for (int r = 0; r < f.repeat; ++r) {
    last.reset();
    malloc_trim(0);
    size_t rss0 = RssBytes();
    double t0 = Now(), c0 = ThreadCpuNow();
    auto tok = tokenizer::Tokenizer::FromPath(f.tokenizer);
    double cpu = ThreadCpuNow() - c0, wall = Now() - t0;
    if (!tok.ok()) return tok.status();
    if (r == 0) {
      times->first_s = wall;
      times->first_cpu_s = cpu;
      malloc_trim(0);
      times->rss_delta = RssBytes() - std::min(RssBytes(), rss0);
    }
    walls.push_back(wall);
    times->best_s = std::min(times->best_s, wall);
    times->best_cpu_s = std::min(times->best_cpu_s, cpu);
    last = *std::move(tok);
  }
  std::sort(walls.begin(), walls.end());
  times->median_s = walls[walls.size() / 2];
  return last;
}

nlohmann::json LoadJson(const BenchTokFlags& f, const LoadTimes& times) {
  std::string json_path = f.tokenizer;
  if (std::filesystem::is_directory(json_path)) json_path += "/tokenizer.json";
  size_t json_bytes = std::filesystem::file_size(json_path);
  return {{"tokenizer", f.tokenizer},
          {"load_first_s", times.first_s},
          {"load_first_cpu_s", times.first_cpu_s},
          {"load_s", times.best_s},
          {"load_cpu_s", times.best_cpu_s},
          {"load_s_median", times.median_s},
          {"load_repeat", f.repeat},
          {"json_bytes", json_bytes},
          {"rss_delta_bytes", times.rss_delta},
          {"memory_ratio", static_cast<double>(times.rss_delta) / static_cast<double>(json_bytes)}};
}

nlohmann::json EncodeJson(const BenchTokFlags& f, const tokenizer::Tokenizer& tok,
                          const std::string& text) {
  auto chunks = Chunks(text, f.chunk_bytes);
  size_t tokens = 0, tokens_mt = 0, tokens_whole = 0;
  double c1 = 0, ct = 0, cw = 0;
  double s1 = TimeEncode(tok, chunks, 1, f.repeat, f.add_special_tokens, &tokens, &c1);
  double st = TimeEncode(tok, chunks, f.threads, f.repeat, f.add_special_tokens, &tokens_mt, &ct);
  std::vector<std::string_view> whole = {text};
  double sw = TimeEncode(tok, whole, 1, f.repeat, f.add_special_tokens, &tokens_whole, &cw);
  const double mb = static_cast<double>(text.size()) / 1e6;
  return {{"file", f.file},
          {"bytes", text.size()},
          {"chunks", chunks.size()},
          {"chunk_bytes", f.chunk_bytes},
          {"tokens", tokens},
          {"mb_per_s", mb / s1},
          {"tokens_per_s", static_cast<double>(tokens) / s1},
          {"threads", f.threads},
          {"mb_per_s_threads", mb / st},
          {"mb_per_s_whole", mb / sw},
          {"tokens_whole", tokens_whole},
          {"mb_per_s_cpu", mb / c1},
          {"mb_per_s_whole_cpu", mb / cw}};
}

int RunBench(const BenchTokFlags& f) {
  if (f.file.empty() && !f.load_only) {
    std::fprintf(stderr, "bench tokenizer: --file is required (or --load-only)\n");
    return 1;
  }
  std::string text;
  if (!f.load_only) {
    std::ifstream in(f.file, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "bench tokenizer: cannot open %s\n", f.file.c_str());
      return 1;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  LoadTimes times;
  auto tok = TimeLoad(f, &times);
  if (!tok.ok()) {
    std::fprintf(stderr, "bench tokenizer: %s\n", tok.status().ToString().c_str());
    return 1;
  }
  nlohmann::json out = LoadJson(f, times);
  if (!f.load_only) out.update(EncodeJson(f, **tok, text));
  std::printf("%s\n", f.json ? out.dump().c_str() : out.dump(2).c_str());
  return 0;
}

}  // namespace

void RegisterBenchTokenizer(CLI::App& bench, int* exit_code) {
  auto f = std::make_shared<BenchTokFlags>();
  auto* cmd = bench.add_subcommand("tokenizer", "tokenizer throughput (MB/s, tokens/s)");
  cmd->add_option("--tokenizer", f->tokenizer, "tokenizer.json or its directory")->required();
  cmd->add_option("--file", f->file, "UTF-8 text to encode (required unless --load-only)");
  cmd->add_option("--threads", f->threads, "threads for mb_per_s_threads")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--chunk-bytes", f->chunk_bytes, "chunk size (bytes)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--repeat", f->repeat, "passes (loads and encodes); the best is reported")
      ->check(CLI::Range(1, 100));
  cmd->add_flag("--load-only", f->load_only, "only time loading the tokenizer");
  cmd->add_flag("--add-special-tokens", f->add_special_tokens, "apply the post-processor");
  cmd->add_flag("--json", f->json, "one-line JSON output");
  cmd->callback([f, exit_code] { *exit_code = RunBench(*f); });
}

}  // namespace kvr::cli
