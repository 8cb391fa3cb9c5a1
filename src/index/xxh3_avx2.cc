// Compiled with -mavx2 (see CMakeLists.txt); called only when the CPU has AVX2.
#include "index/xxh3_simd.h"

#if defined(__x86_64__)
#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t kvr::internal::Xxh3Avx2(const void* data, size_t len, uint64_t seed) {
  return XXH3_64bits_withSeed(data, len, seed);
}
#endif
