// UTF-8 and Unicode helpers shared by the tokenizer stages. Character classes follow the Rust
// standard library definitions that Hugging Face tokenizers relies on (char::is_whitespace,
// char::is_numeric, ...), so that splits land on the same boundaries.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace kvr::tokenizer {

// Returns the byte offset of the first invalid UTF-8 sequence, or npos if `s` is valid
// (overlongs, surrogates and code points above U+10FFFF are invalid, as in Rust's str).
size_t FindInvalidUtf8(std::string_view s);

// Length of the UTF-8 sequence that starts with lead byte `b` (1 for continuation bytes, so
// callers that walk valid text never stall).
inline size_t Utf8Len(unsigned char b) {
  if (b < 0x80) return 1;
  if (b >= 0xF0) return 4;
  if (b >= 0xE0) return 3;
  if (b >= 0xC0) return 2;
  return 1;
}

// The offset of the first non-ASCII byte of s at or after i (s.size() if none): eight bytes a
// step, so ASCII text (nearly all prompts) costs under a cycle per byte to skip.
inline size_t SkipAscii(std::string_view s, size_t i) {
  static_assert(std::endian::native == std::endian::little, "the first byte is the low byte");
  const char* p = s.data();
  const size_t n = s.size();
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    w &= 0x8080808080808080ull;
    if (w != 0) return i + static_cast<size_t>(std::countr_zero(w) >> 3);
  }
  while (i < n && static_cast<unsigned char>(p[i]) < 0x80) ++i;
  return i;
}

// Decodes the code point at s[i] of valid UTF-8; stores its length in *len.
char32_t DecodeUtf8(std::string_view s, size_t i, size_t* len);
void AppendUtf8(char32_t c, std::string* out);

bool IsRustWhitespace(char32_t c);  // Unicode White_Space
bool IsRustNumeric(char32_t c);     // general categories Nd, Nl, No
bool IsPunctuation(char32_t c);     // ASCII punctuation or categories P*
bool IsWordChar(char32_t c);        // regex \w: letters, marks, Nd, Pc, joiners

// GPT-2 byte-level alphabet: each byte maps to one printable code point.
char32_t ByteToChar(uint8_t b);
// Inverse of ByteToChar; -1 when `c` is not in the alphabet.
int CharToByte(char32_t c);

// Maps a byte-level-alphabet string back to raw bytes; false if some char is outside it.
bool ByteLevelToBytes(std::string_view s, std::string* out);
// Maps raw bytes to their byte-level-alphabet UTF-8 form.
std::string BytesToByteLevel(std::string_view bytes);

}  // namespace kvr::tokenizer
