// Strong identifier types. Dynamo has four u64 identifiers that are easy to mix up (worker, local
// block hash, engine block hash, sequence hash); here each is a distinct type that converts to
// its raw value only explicitly.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>

namespace kvr {

template <typename Tag, typename Rep>
class StrongId {
 public:
  using RepType = Rep;
  constexpr StrongId() = default;
  constexpr explicit StrongId(Rep v) : v_(v) {}
  constexpr Rep value() const { return v_; }
  friend constexpr auto operator<=>(const StrongId&, const StrongId&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const StrongId& id) {
    return H::combine(std::move(h), id.v_);
  }

 private:
  Rep v_{};
};

struct WorkerIdTag {};
struct BlockHashTag {};
struct EngineHashTag {};

// An engine endpoint plus data-parallel rank; assigned by the router's worker registry.
using WorkerId = StrongId<WorkerIdTag, uint32_t>;
// The router's own chained block hash (XXH3-64 over token ids, prefix-dependent): the index key.
using BlockHash = StrongId<BlockHashTag, uint64_t>;
// An engine's opaque block hash (vLLM sha256/CBOR, SGLang, TRT-LLM); used only to resolve removals.
using EngineHash = StrongId<EngineHashTag, uint64_t>;
// Token ids are plain u32: they are data (hashed, counted), not identities.
using TokenId = uint32_t;

}  // namespace kvr

template <typename Tag, typename Rep>
struct std::hash<kvr::StrongId<Tag, Rep>> {
  size_t operator()(const kvr::StrongId<Tag, Rep>& id) const noexcept {
    return std::hash<Rep>()(id.value());
  }
};
