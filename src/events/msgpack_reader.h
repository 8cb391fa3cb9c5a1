// A pull reader of msgpack: values are read in order, in place. A scalar comes back decoded,
// a string or binary as a view of its bytes in the payload, a container as its header only
// (its elements are the next values read). Nothing is allocated, so a forged length costs
// nothing, and a caller decodes what it needs in the one pass: an array of 2,000 token ids is
// read straight into the ids, not first built as 2,000 objects (what msgpack-c++'s unpack does,
// which was most of the router's cost of decoding vLLM's events).
//
// Integers follow msgpack-c++'s typing: any non-negative value is kUint, whatever its width on
// the wire; a negative one kInt. float32 is widened to double.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace kvr::events {

struct MsgValue {
  enum Type : uint8_t { kNil, kBool, kUint, kInt, kFloat, kStr, kBin, kExt, kArray, kMap };
  Type type = kNil;
  bool b = false;
  uint64_t u = 0;  // kUint
  int64_t i = 0;   // kInt
  double f = 0;    // kFloat
  std::string_view bytes;  // kStr, kBin, kExt (without its type byte)
  uint32_t count = 0;      // kArray: elements; kMap: key-value pairs
  bool container() const { return type == kArray || type == kMap; }
};

class MsgReader {
 public:
  // Skip() refuses containers nested deeper than `max_depth` below the value it skips.
  explicit MsgReader(std::string_view bytes, uint32_t max_depth = 8)
      : p_(bytes.data()), end_(bytes.data() + bytes.size()), max_depth_(max_depth) {}

  // Reads the next value; a container's header only. False when the bytes end inside it, are
  // not msgpack (0xc1), or a container claims more elements than bytes are left: the payload is
  // malformed and the reader spent.
  bool Next(MsgValue* out);
  // Reads the next value, skipping a container's elements (it comes back with its header).
  bool NextSkippingContent(MsgValue* out) { return Next(out) && SkipContent(*out); }
  // Skips one whole value.
  bool Skip() { return SkipValues(1, 0); }
  // Skips the elements of a container whose header was just read.
  bool SkipContent(const MsgValue& v) {
    return !v.container() || SkipValues(v.type == MsgValue::kMap ? uint64_t{v.count} * 2 : v.count, 1);
  }
  // Reads `count` values that should be unsigned 32-bit ints into `out`. A value that is
  // another type is skipped and `*all_u32` set false; returns false only when malformed.
  bool ReadU32s(uint32_t count, std::vector<uint32_t>* out, bool* all_u32);

  bool empty() const { return p_ == end_; }
  size_t left() const { return static_cast<size_t>(end_ - p_); }

 private:
  bool SkipValues(uint64_t n, uint32_t depth);
  template <typename T>
  bool Load(T* out);
  bool Take(size_t n, std::string_view* out);
  bool Header(MsgValue* out, MsgValue::Type type, uint32_t count);

  const char* p_;
  const char* end_;
  uint32_t max_depth_;
};

}  // namespace kvr::events
