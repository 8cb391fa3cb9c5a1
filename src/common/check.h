// Invariants that must hold, made visible when they do not (a bare assert vanishes from release
// builds, and the program goes on in a state nobody looked at).
//
// KVR_CHECK(cond): the program cannot go on safely without it (memory or a cache's event stream
// would be corrupted): writes the condition and its place to stderr, then aborts, in every
// build.
// KVR_BUG_IF(cond): a bug the caller can step around, and says how right after
// (`if (KVR_BUG_IF(b.ref == 0)) return;`). Debug builds abort; release builds log it (the
// first 16 in the process, to stderr), count it (BugCount) and go on.
#pragma once

#include <cstdint>

namespace kvr {

// Reports a KVR_BUG_IF that fired; returns true (or aborts in a debug build).
[[gnu::cold]] bool Bug(const char* file, int line, const char* what);
// Reports a failed KVR_CHECK, then aborts.
[[noreturn, gnu::cold]] void CheckFailed(const char* file, int line, const char* what);
// KVR_BUG_IFs fired since the process started.
uint64_t BugCount();

}  // namespace kvr

#define KVR_CHECK(cond)                                                              \
  do {                                                                               \
    if (__builtin_expect(!(cond), 0)) ::kvr::CheckFailed(__FILE__, __LINE__, #cond); \
  } while (0)

#define KVR_BUG_IF(cond) \
  (__builtin_expect(static_cast<bool>(cond), 0) && ::kvr::Bug(__FILE__, __LINE__, #cond))
