// test_util.h - helpers shared by the C-API tests (paca.h only).
#pragma once

#include <paca/paca.h>
#include <paca/paca_experimental.h>

#include <string>
#include <vector>

namespace test {

// ../shared, or $PACA_SHARED_DIR; "" when absent.
std::string shared_dir();
// A fresh empty temporary directory.
std::string temp_dir();
std::vector<uint8_t> read_file(const std::string& path);
void write_file(const std::string& path, const std::vector<uint8_t>& bytes);
void write_text(const std::string& path, const std::string& text);
// Loads a model or fails the test with the library's message.
paca_model* load_or_die(const std::string& path, int n_threads = 0);
// The CPU kernel set the tests run on: $PACA_CPU_ISA (NULL: the best). The
// library does not read the variable; load_or_die and the tests that fill
// their own paca_model_params pass it on as cpu_isa.
const char* test_cpu_isa();
// Relative L2 error ||a - b|| / ||b||.
double rel_l2(const float* a, const float* b, size_t n);
// Writes a small random model (paca_make_test_model) into a new temp dir.
std::string make_small_model(uint64_t seed = 7);

}  // namespace test

#define SKIP_WITHOUT_SHARED()                                                                \
  do {                                                                                       \
    if (test::shared_dir().empty()) GTEST_SKIP() << "../shared test data not found (set PACA_SHARED_DIR)"; \
  } while (0)
