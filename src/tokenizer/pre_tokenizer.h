// Pre-tokenizers from tokenizer.json ("pre_tokenizer"): Split (regex or literal, every
// SplitDelimiterBehavior, invert), ByteLevel (with or without its GPT-2 regex), Metaspace,
// Digits, Punctuation, Whitespace, WhitespaceSplit and Sequence. Each stage cuts every piece
// into sub-pieces; empty pieces are dropped, as in Hugging Face's PreTokenizedString.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "tokenizer/regex.h"

namespace kvr::tokenizer {

class JsonNode;

struct Piece {
  std::string_view text;
  // True when the piece begins at offset 0 of the original input (Metaspace "first").
  bool at_start = false;
};

// Owns the strings that stages rewrite (Metaspace, prefix spaces); pieces point into it, so it
// must outlive them. Addresses are stable (deque).
class PieceArena {
 public:
  std::string_view Add(std::string s) { return strings_.emplace_back(std::move(s)); }
  void Clear() { strings_.clear(); }

 private:
  std::deque<std::string> strings_;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces *pieces by their sub-pieces, in order. *scratch is a reusable buffer.
  virtual void Apply(std::vector<Piece>* pieces, std::vector<Piece>* scratch,
                     PieceArena* arena) const = 0;

  // The common shape of byte-level tokenizers (Llama 3, Qwen, GPT-2): Apply on one piece only
  // cuts it into a pattern's matches and the gaps between them, rewriting nothing. Then this
  // returns the pattern's finder, and the tokenizer walks its spans directly instead of
  // building pieces. nullptr for every other shape.
  using SpanFinder = std::function<void(std::string_view, std::vector<Span>*)>;
  virtual const SpanFinder* IsolatedSplit() const { return nullptr; }
  // True when the isolated split (IsolatedSplit) can be cut after any '\n' that spaces or tabs,
  // then a printable non-space ASCII character follow: no piece spans such a cut and each side
  // has the pieces it has in the whole text, so lines can be split (and their ids cached) one by
  // one. Holds for the Llama 3 and Qwen 2 patterns: a whitespace run ending in a newline is one
  // piece (`\s*[\r\n]+`, or `[\r\n]*` after punctuation; both come before `\s+(?!\S)`, the
  // only alternative that looks ahead), and what follows the cut holds no newline before a
  // visible character, so no piece reaches past it; nothing looks behind. Not for GPT-2's
  // pattern, where "a\n\nB" splits as "a", "\n", "\n", "B" but "a\n\n" alone as "a", "\n\n".
  virtual bool CutsAfterNewline() const { return false; }
  // True when Apply changes nothing (ByteLevel without its prefix space and GPT-2 split).
  virtual bool IsIdentity() const { return false; }
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Cuts `text` (a piece beginning at_start) around `matches` (sorted, non-overlapping spans)
// according to `behavior`, appending the non-empty sub-pieces to *out. With `invert`, the
// spans between matches are the delimiters instead.
void SplitAround(Piece piece, const std::vector<Span>& matches, SplitBehavior behavior, bool invert,
                 std::vector<Piece>* out);

// Builds the pre-tokenizer described by `j`. *byte_level is set when it ends with ByteLevel:
// the model then works on raw bytes (the byte-to-char mapping is folded into the vocabulary).
// A ByteLevel anywhere but last is rejected. Malformed fields are an InvalidArgument error
// naming the field.
absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const JsonNode& j,
                                                                bool* byte_level);

}  // namespace kvr::tokenizer
