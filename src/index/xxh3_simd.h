// XXH3-64 over long inputs with the widest vector unit this CPU has. The library's own
// runtime dispatch is not in Debian's header-only use, and the portable build targets baseline
// x86-64 (SSE2); a block of 64 tokens (256 bytes) is past XXH3's short-input paths, so its
// stripes run on the vector unit. Each variant lives in its own translation unit compiled for
// that ISA, holding only xxhash.h's static functions (no std templates that the linker could
// share with baseline code). All variants return the same value: XXH3 is defined bit-exactly.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvr::internal {

using Xxh3Fn = uint64_t (*)(const void* data, size_t len, uint64_t seed);

uint64_t Xxh3Baseline(const void* data, size_t len, uint64_t seed);
uint64_t Xxh3Avx2(const void* data, size_t len, uint64_t seed);    // x86-64 only
uint64_t Xxh3Avx512(const void* data, size_t len, uint64_t seed);  // x86-64 only

// The variants this CPU can run, best last; Xxh3Best() is the last.
struct Xxh3Variant {
  const char* name;
  Xxh3Fn fn;
};
size_t Xxh3Variants(Xxh3Variant out[3]);
Xxh3Fn Xxh3Best();

}  // namespace kvr::internal
