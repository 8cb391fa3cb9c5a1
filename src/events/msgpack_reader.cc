#include "events/msgpack_reader.h"

#include <bit>
#include <cstring>


namespace kvr::events {

template <typename T>
bool MsgReader::Load(T* out) {
  if (left() < sizeof(T)) return false;
  std::memcpy(out, p_, sizeof(T));
  // msgpack is big-endian.
  if constexpr (sizeof(T) == 2) *out = __builtin_bswap16(*out);
  if constexpr (sizeof(T) == 4) *out = __builtin_bswap32(*out);
  if constexpr (sizeof(T) == 8) *out = __builtin_bswap64(*out);
  p_ += sizeof(T);
  return true;
}

bool MsgReader::Take(size_t n, std::string_view* out) {
  if (left() < n) return false;
  *out = std::string_view(p_, n);
  p_ += n;
  return true;
}

bool MsgReader::Header(MsgValue* out, MsgValue::Type type, uint32_t count) {
  out->type = type;
  out->count = count;
  // Every value takes at least one byte: a count beyond what is left is a lie.
  const uint64_t values = type == MsgValue::kMap ? uint64_t{count} * 2 : count;
  return values <= left();
}

bool MsgReader::SkipValues(uint64_t n, uint32_t depth) {
  if (depth > max_depth_) return false;
  MsgValue v;
  for (uint64_t k = 0; k < n; ++k) {
    if (p_ == end_) return false;
    const unsigned char c = static_cast<unsigned char>(*p_);
    if (c <= 0x7f || c >= 0xe0) {  // fixints: the bulk of a token-id array
      ++p_;
      continue;
    }
    if (!Next(&v)) return false;
    if (v.container() &&
        !SkipValues(v.type == MsgValue::kMap ? uint64_t{v.count} * 2 : v.count, depth + 1)) {
      return false;
    }
  }
  return true;
}

bool MsgReader::ReadU32s(uint32_t count, std::vector<uint32_t>* out, bool* all_u32) {
  out->resize(count);
  const auto* p = reinterpret_cast<const unsigned char*>(p_);
  const auto* end = reinterpret_cast<const unsigned char*>(end_);
  for (uint32_t i = 0; i < count; ++i) {
    if (p == end) return false;
    const uint32_t c = *p;
    const size_t after = static_cast<size_t>(end - p) - 1;
    if (c <= 0x7f) {
      (*out)[i] = c;
      p += 1;
    } else if (c == 0xcc && after >= 1) {
      (*out)[i] = p[1];
      p += 2;
    } else if (c == 0xcd && after >= 2) {
      (*out)[i] = (uint32_t{p[1]} << 8) | p[2];
      p += 3;
    } else if (c == 0xce && after >= 4) {
      (*out)[i] = (uint32_t{p[1]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 8) | p[4];
      p += 5;
    } else {  // the general path: other int encodings, or not an int at all
      p_ = reinterpret_cast<const char*>(p);
      MsgValue v;
      if (!NextSkippingContent(&v)) return false;
      if (v.type == MsgValue::kUint && v.u <= UINT32_MAX) {
        (*out)[i] = static_cast<uint32_t>(v.u);
      } else {
        *all_u32 = false;
      }
      p = reinterpret_cast<const unsigned char*>(p_);
    }
  }
  p_ = reinterpret_cast<const char*>(p);
  return true;
}

bool MsgReader::Next(MsgValue* out) {
  if (p_ == end_) return false;
  const unsigned char c = static_cast<unsigned char>(*p_++);
  out->bytes = {};
  out->count = 0;
  uint32_t len = 0;
  auto bytes = [&](MsgValue::Type type, uint32_t n) {
    out->type = type;
    return Take(n, &out->bytes);
  };
  auto uint = [&](uint64_t u) {
    out->type = MsgValue::kUint;
    out->u = u;
    return true;
  };
  auto sint = [&](int64_t i) {
    if (i >= 0) return uint(static_cast<uint64_t>(i));
    out->type = MsgValue::kInt;
    out->i = i;
    return true;
  };
  auto real = [&](double f) {
    out->type = MsgValue::kFloat;
    out->f = f;
    return true;
  };
  if (c <= 0x7f) return uint(c);
  if (c >= 0xe0) return sint(static_cast<int8_t>(c));
  if (c <= 0x8f) return Header(out, MsgValue::kMap, c & 0x0f);
  if (c <= 0x9f) return Header(out, MsgValue::kArray, c & 0x0f);
  if (c <= 0xbf) return bytes(MsgValue::kStr, c & 0x1f);
  switch (c) {
    case 0xc0:
      out->type = MsgValue::kNil;
      return true;
    case 0xc2:
    case 0xc3:
      out->type = MsgValue::kBool;
      out->b = c == 0xc3;
      return true;
    case 0xc4: { uint8_t n; return Load(&n) && bytes(MsgValue::kBin, n); }
    case 0xc5: { uint16_t n; return Load(&n) && bytes(MsgValue::kBin, n); }
    case 0xc6: { return Load(&len) && bytes(MsgValue::kBin, len); }
    case 0xd9: { uint8_t n; return Load(&n) && bytes(MsgValue::kStr, n); }
    case 0xda: { uint16_t n; return Load(&n) && bytes(MsgValue::kStr, n); }
    case 0xdb: { return Load(&len) && bytes(MsgValue::kStr, len); }
    // ext 8/16/32: length, type byte, data; fixext 1/2/4/8/16: type byte, data.
    case 0xc7: { uint8_t n, t; return Load(&n) && Load(&t) && bytes(MsgValue::kExt, n); }
    case 0xc8: { uint16_t n; uint8_t t; return Load(&n) && Load(&t) && bytes(MsgValue::kExt, n); }
    case 0xc9: { uint8_t t; return Load(&len) && Load(&t) && bytes(MsgValue::kExt, len); }
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: {
      uint8_t ext_type;
      return Load(&ext_type) && bytes(MsgValue::kExt, 1u << (c - 0xd4));
    }
    case 0xca: { uint32_t bits; return Load(&bits) && real(std::bit_cast<float>(bits)); }
    case 0xcb: { uint64_t bits; return Load(&bits) && real(std::bit_cast<double>(bits)); }
    case 0xcc: { uint8_t v; return Load(&v) && uint(v); }
    case 0xcd: { uint16_t v; return Load(&v) && uint(v); }
    case 0xce: { uint32_t v; return Load(&v) && uint(v); }
    case 0xcf: { uint64_t v; return Load(&v) && uint(v); }
    case 0xd0: { uint8_t v; return Load(&v) && sint(static_cast<int8_t>(v)); }
    case 0xd1: { uint16_t v; return Load(&v) && sint(static_cast<int16_t>(v)); }
    case 0xd2: { uint32_t v; return Load(&v) && sint(static_cast<int32_t>(v)); }
    case 0xd3: { uint64_t v; return Load(&v) && sint(static_cast<int64_t>(v)); }
    case 0xdc: { uint16_t n; return Load(&n) && Header(out, MsgValue::kArray, n); }
    case 0xdd: { return Load(&len) && Header(out, MsgValue::kArray, len); }
    case 0xde: { uint16_t n; return Load(&n) && Header(out, MsgValue::kMap, n); }
    case 0xdf: { return Load(&len) && Header(out, MsgValue::kMap, len); }
    default:  // 0xc1, never used
      return false;
  }
}

}  // namespace kvr::events
