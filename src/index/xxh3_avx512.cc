// Compiled with -mavx512f (see CMakeLists.txt); called only when the CPU has AVX-512F.
#include "index/xxh3_simd.h"

#if defined(__x86_64__)
// GCC 12's own avx512fintrin.h trips -Wmaybe-uninitialized once inlined (GCC bug 105593); the
// warning is about the compiler's header, not this file's code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t kvr::internal::Xxh3Avx512(const void* data, size_t len, uint64_t seed) {
  return XXH3_64bits_withSeed(data, len, seed);
}
#endif
