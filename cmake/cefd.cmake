# Helpers so that every library, test and benchmark is declared the same way.

# Warnings are on for every build. They become errors only where the project picks the compiler:
# the ci, debug, asan and tsan presets set CMAKE_COMPILE_WARNING_AS_ERROR, which CMake turns into
# -Werror on each target. A plain `cmake -DCMAKE_BUILD_TYPE=Release` with someone else's GCC or
# clang must build even when that compiler invents a new warning.
set(CEFD_WARNINGS -Wall -Wextra -Wpedantic -Wno-missing-field-initializers)
# GCC 12 at -O2/-O3 reports -Wrestrict inside libstdc++'s `"literal" + std::string` (GCC bug
# 105329, fixed in GCC 13): a from-scratch build printed 11 of these false positives, enough to
# hide a real warning among them. Off for GCC 12 only; GCC 13+ and clang still check it.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  list(APPEND CEFD_WARNINGS -Wno-restrict)
endif()

# cefd_library(NAME parse SRCS a.cpp DEPS cefd::engine) -> target cefd_parse, alias cefd::parse
function(cefd_library)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  add_library(cefd_${ARG_NAME} STATIC ${ARG_SRCS})
  add_library(cefd::${ARG_NAME} ALIAS cefd_${ARG_NAME})
  target_include_directories(cefd_${ARG_NAME} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(cefd_${ARG_NAME} PRIVATE ${CEFD_WARNINGS})
  target_link_libraries(cefd_${ARG_NAME} PUBLIC ${ARG_DEPS})
endfunction()

# cefd_test(NAME parse_syslog SRCS syslog_test.cpp DEPS cefd::parse [LABELS e2e])
function(cefd_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(test_${ARG_NAME} ${ARG_SRCS})
  target_compile_options(test_${ARG_NAME} PRIVATE ${CEFD_WARNINGS})
  target_include_directories(test_${ARG_NAME} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(test_${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  target_compile_definitions(test_${ARG_NAME} PRIVATE
    CEFD_SOURCE_DIR="${PROJECT_SOURCE_DIR}" CEFD_BINARY_DIR="${PROJECT_BINARY_DIR}")
  add_test(NAME ${ARG_NAME} COMMAND test_${ARG_NAME})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  set_tests_properties(${ARG_NAME} PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}")
endfunction()

# cefd_bench(NAME parse SRCS parse_bench.cpp DEPS cefd::parse): also a CTest case with a
# tiny --benchmark_min_time, so every benchmark builds and runs on every test run.
function(cefd_bench)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(bench_${ARG_NAME} ${ARG_SRCS})
  target_compile_options(bench_${ARG_NAME} PRIVATE ${CEFD_WARNINGS})
  target_include_directories(bench_${ARG_NAME} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(bench_${ARG_NAME} PRIVATE ${ARG_DEPS} benchmark::benchmark)
  target_compile_definitions(bench_${ARG_NAME} PRIVATE CEFD_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  if(CEFD_BUILD_TESTS)
    add_test(NAME bench_${ARG_NAME} COMMAND bench_${ARG_NAME} --benchmark_min_time=0.01)
    set_tests_properties(bench_${ARG_NAME} PROPERTIES TIMEOUT 300 LABELS bench)
  endif()
endfunction()
