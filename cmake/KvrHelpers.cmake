# Helpers in the Abseil/leveldb style: every target is declared with its sources and deps,
# no globbing. Warnings-as-errors apply to our code only (third-party headers are SYSTEM).

set(KVR_WARNINGS -Wall -Wextra -Wshadow -Wnon-virtual-dtor -Wformat=2 -Wvla
                 -Wimplicit-fallthrough -Wno-missing-field-initializers)
if(KVR_WERROR)
  list(APPEND KVR_WARNINGS -Werror)
endif()

# kvr_library(NAME name SRCS ... DEPS ...)
function(kvr_library)
  cmake_parse_arguments(K "" "NAME" "SRCS;DEPS" ${ARGN})
  add_library(kvr_${K_NAME} STATIC ${K_SRCS})
  target_include_directories(kvr_${K_NAME} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(kvr_${K_NAME} PRIVATE ${KVR_WARNINGS})
  target_link_libraries(kvr_${K_NAME} PUBLIC ${K_DEPS})
endfunction()

# kvr_test(NAME name SRCS ... DEPS ... [LABELS ...]): one gtest binary, one ctest entry.
function(kvr_test)
  cmake_parse_arguments(K "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${K_NAME} ${K_SRCS})
  target_compile_options(${K_NAME} PRIVATE ${KVR_WARNINGS})
  target_link_libraries(${K_NAME} PRIVATE ${K_DEPS} GTest::gtest GTest::gtest_main GTest::gmock)
  add_test(NAME ${K_NAME} COMMAND ${K_NAME} WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  if(NOT K_LABELS)
    set(K_LABELS unit)
  endif()
  if(NOT K_TIMEOUT)
    set(K_TIMEOUT 600)
  endif()
  set_tests_properties(${K_NAME} PROPERTIES LABELS "${K_LABELS}" TIMEOUT ${K_TIMEOUT})
endfunction()

# kvr_benchmark(NAME name SRCS ... DEPS ...)
function(kvr_benchmark)
  cmake_parse_arguments(K "" "NAME" "SRCS;DEPS" ${ARGN})
  if(NOT KVR_BENCH)
    return()
  endif()
  add_executable(${K_NAME} ${K_SRCS})
  target_compile_options(${K_NAME} PRIVATE ${KVR_WARNINGS})
  target_link_libraries(${K_NAME} PRIVATE ${K_DEPS} benchmark::benchmark benchmark::benchmark_main)
endfunction()

# kvr_fuzzer(NAME name SRCS ... DEPS ...): libFuzzer target (clang).
function(kvr_fuzzer)
  cmake_parse_arguments(K "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${K_NAME} ${K_SRCS})
  target_compile_options(${K_NAME} PRIVATE ${KVR_WARNINGS} -fsanitize=fuzzer)
  target_link_libraries(${K_NAME} PRIVATE ${K_DEPS} -fsanitize=fuzzer)
endfunction()
