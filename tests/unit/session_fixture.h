// session_fixture.h - a small random model loaded through the core API, with
// a block pool and helpers to run sessions on it (fork and snapshot tests).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "model/test_model.h"
#include "runtime/load.h"
#include "runtime/session.h"

namespace paca_test {

namespace fs = std::filesystem;

inline fs::path temp_dir() {
  std::string tmpl = (fs::temp_directory_path() / "paca-snap-XXXXXX").string();
  char* d = ::mkdtemp(tmpl.data());
  EXPECT_NE(d, nullptr);
  return fs::path(tmpl);
}

struct Fixture {
  fs::path dir = temp_dir();
  std::unique_ptr<paca::LlamaModel> model;
  std::unique_ptr<paca::BlockPool> pool;
  explicit Fixture(uint64_t seed = 11, int block_tokens = 16) {
    paca::TestModelSpec spec;
    spec.seed = seed;
    spec.dim = 64;
    spec.n_layers = 2;
    spec.n_heads = 4;
    spec.n_kv_heads = 2;
    spec.ffn_dim = 160;
    spec.n_vocab = 300;
    spec.max_context = 256;
    paca::write_test_model((dir / "model").string(), spec);
    paca::LoadOptions opt;
    opt.model.n_threads = 2;
    opt.model.kv_block_tokens = block_tokens;
    model = paca::load_model((dir / "model").string(), opt);
    pool = std::make_unique<paca::BlockPool>(model->backend(), model->kv_layout());
  }
  std::unique_ptr<paca::Session> session() { return std::make_unique<paca::Session>(*model, *pool, 0); }
  std::unique_ptr<paca::Session> prefilled(size_t n, uint32_t seed);
};

inline std::vector<int32_t> prompt_of(size_t n, uint32_t seed) {
  std::vector<int32_t> t;
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    t.push_back(static_cast<int32_t>((seed >> 9) % 300));
  }
  return t;
}

inline std::unique_ptr<paca::Session> Fixture::prefilled(size_t n, uint32_t seed) {
  auto s = session();
  s->prefill(prompt_of(n, seed));
  return s;
}

inline int32_t argmax(const std::vector<float>& v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// Greedy continuation of s by n tokens, recording every logits vector.
inline std::vector<std::vector<float>> continue_greedy(paca::Session& s, int n) {
  std::vector<std::vector<float>> all;
  for (int i = 0; i < n; ++i) {
    const int32_t t = argmax(s.logits());
    s.prefill(std::span<const int32_t>(&t, 1));
    all.push_back(s.logits());
  }
  return all;
}

}  // namespace paca_test
