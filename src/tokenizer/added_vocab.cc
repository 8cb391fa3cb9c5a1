#include "tokenizer/added_vocab.h"

#include <algorithm>
#include <cstring>

#include "tokenizer/normalizer.h"
#include "tokenizer/unicode.h"

namespace kvr::tokenizer {
namespace {

// Rust regex \s*$ : start of the run of whitespace that ends `s`.
size_t WhitespaceRunStartAtEnd(std::string_view s) {
  size_t e = s.size();
  while (e > 0) {
    size_t p = e - 1;
    while (p > 0 && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
    size_t len;
    if (!IsRustWhitespace(DecodeUtf8(s, p, &len))) break;
    e = p;
  }
  return e;
}

// Rust regex ^\s* : length of the whitespace run that begins `s`.
size_t WhitespaceRunLenAtStart(std::string_view s) {
  size_t i = 0, len;
  while (i < s.size() && IsRustWhitespace(DecodeUtf8(s, i, &len))) i += len;
  return i;
}

bool EndsWithWordChar(std::string_view s) {
  if (s.empty()) return false;
  size_t p = s.size() - 1;
  while (p > 0 && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
  size_t len;
  return IsWordChar(DecodeUtf8(s, p, &len));
}

bool StartsWithWordChar(std::string_view s) {
  size_t len;
  return !s.empty() && IsWordChar(DecodeUtf8(s, 0, &len));
}

}  // namespace

void AddedVocab::Insert(Trie* t, std::string_view pattern, int32_t token_index) {
  if (pattern.empty()) return;
  if (t->token_at.empty()) t->token_at.push_back(-1);
  uint32_t node = 0;
  for (unsigned char c : pattern) {
    auto [it, inserted] =
        t->edges.try_emplace((uint64_t{node} << 8) | c, static_cast<uint32_t>(t->token_at.size()));
    if (inserted) t->token_at.push_back(-1);
    node = it->second;
  }
  if (t->token_at[node] < 0) t->token_at[node] = token_index;  // first registration wins
  const unsigned char first = static_cast<unsigned char>(pattern[0]);
  t->first_byte[first] = true;
  if (t->single_first_byte == -1) {
    t->single_first_byte = first;
  } else if (t->single_first_byte != first) {
    t->single_first_byte = -2;
  }
  t->roots_used = true;
}

void AddedVocab::Build(std::vector<AddedToken> tokens, const Normalizer* normalizer) {
  tokens_ = std::move(tokens);
  // Hugging Face registers special tokens first, then the others, each in file order.
  std::vector<size_t> order(tokens_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_partition(order.begin(), order.end(), [&](size_t i) { return tokens_[i].special; });
  for (size_t i : order) {
    const AddedToken& t = tokens_[i];
    by_id_.try_emplace(t.id, i);
    by_content_[t.content] = t.id;
    if (t.normalized) {
      std::string content = t.content;
      if (normalizer != nullptr) normalizer->Apply(&content);
      Insert(&sets_[1], content, static_cast<int32_t>(i));
    } else {
      Insert(&sets_[0], t.content, static_cast<int32_t>(i));
    }
  }
}

size_t AddedVocab::LongestAt(const Trie& t, std::string_view text, size_t i, int32_t* token) const {
  size_t best = std::string_view::npos;
  uint32_t node = 0;
  for (size_t k = i; k < text.size(); ++k) {
    auto it = t.edges.find((uint64_t{node} << 8) | static_cast<unsigned char>(text[k]));
    if (it == t.edges.end()) break;
    node = it->second;
    if (t.token_at[node] >= 0) {
      best = k + 1;
      *token = t.token_at[node];
    }
  }
  return best;
}

void AddedVocab::Split(std::string_view text, bool normalized_set,
                       std::vector<Segment>* out) const {
  const Trie& t = sets_[normalized_set ? 1 : 0];
  size_t start_offset = 0;
  size_t i = 0;
  while (t.roots_used && i < text.size()) {
    if (t.single_first_byte >= 0) {
      const void* next = std::memchr(text.data() + i, t.single_first_byte, text.size() - i);
      if (next == nullptr) break;
      i = static_cast<size_t>(static_cast<const char*>(next) - text.data());
    } else if (!t.first_byte[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    int32_t index = -1;
    size_t end = LongestAt(t, text, i, &index);
    if (end == std::string_view::npos) {
      ++i;
      continue;
    }
    size_t mat_start = i;
    i = end;  // the automaton resumes after the match whatever happens below
    const AddedToken& tok = tokens_[static_cast<size_t>(index)];
    size_t start = mat_start, stop = end;
    if (tok.single_word) {
      bool start_space = start == 0 || !EndsWithWordChar(text.substr(0, start));
      bool stop_space = stop == text.size() || !StartsWithWordChar(text.substr(stop));
      if (!start_space || !stop_space) continue;
    }
    if (tok.lstrip) start = std::max(WhitespaceRunStartAtEnd(text.substr(0, start)), start_offset);
    if (tok.rstrip) stop += WhitespaceRunLenAtStart(text.substr(stop));
    if (start_offset < start) out->push_back({start_offset, start, -1});
    out->push_back({start, stop, static_cast<int64_t>(tok.id)});
    start_offset = stop;
  }
  if (start_offset < text.size()) out->push_back({start_offset, text.size(), -1});
}

const AddedToken* AddedVocab::FindById(uint32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<uint32_t> AddedVocab::FindByContent(std::string_view content) const {
  auto it = by_content_.find(content);
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

}  // namespace kvr::tokenizer
