#include "index/xxh3_simd.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace kvr::internal {

uint64_t Xxh3Baseline(const void* data, size_t len, uint64_t seed) {
  return XXH3_64bits_withSeed(data, len, seed);
}

size_t Xxh3Variants(Xxh3Variant out[3]) {
  size_t n = 0;
  out[n++] = {"baseline", &Xxh3Baseline};
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) out[n++] = {"avx2", &Xxh3Avx2};
  if (__builtin_cpu_supports("avx512f")) out[n++] = {"avx512", &Xxh3Avx512};
#endif
  return n;
}

Xxh3Fn Xxh3Best() {
  static const Xxh3Fn best = [] {
    Xxh3Variant v[3];
    return v[Xxh3Variants(v) - 1].fn;
  }();
  return best;
}

}  // namespace kvr::internal
