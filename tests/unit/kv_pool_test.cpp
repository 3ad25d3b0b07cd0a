// kv_pool_test.cpp - the reserved KV pool: sizing from a memory fraction
// (kv_pool_blocks), its errors with the numbers, a pool that is full, and a
// reserved pool computing the same bits as an unbounded one.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "runtime/kv_cache.h"
#include "session_fixture.h"
#include "util/error.h"

namespace {

using paca::DeviceMemory;
using paca::kv_pool_blocks;

TEST(KvPool, BlocksFromAMemoryFraction) {
  const DeviceMemory mem{10240, 20480};
  EXPECT_EQ(kv_pool_blocks(0.5, mem, 1024, "cpu"), 5u);
  EXPECT_EQ(kv_pool_blocks(1.0, mem, 1024, "cpu"), 10u);
  EXPECT_EQ(kv_pool_blocks(0.5, mem, 1000, "cpu"), 5u);  // 1000 bytes take a 1024-byte stride
  EXPECT_EQ(kv_pool_blocks(0.5, mem, 1025, "cpu"), 4u);  // 1280-byte stride
  EXPECT_EQ(kv_pool_blocks(0.1, mem, 1024, "cpu"), 1u);
}

TEST(KvPool, TooLittleMemorySaysHowMuch) {
  const DeviceMemory mem{10240, 20480};
  try {
    (void)kv_pool_blocks(0.05, mem, 1024, "cuda:3");
    ADD_FAILURE() << "a pool of 512 bytes for blocks of 1024 was accepted";
  } catch (const paca::Error& e) {
    EXPECT_EQ(e.status(), paca::Status::out_of_memory);
    const std::string m = e.what();
    for (const char* part :
         {"too little memory for the KV cache on cuda:3", "need 1024 bytes", "have 512", "10240", "20480"})
      EXPECT_NE(m.find(part), std::string::npos) << part << " in: " << m;
  }
  for (double bad : {0.0, -0.5, 1.5, std::nan("")}) {
    try {
      (void)kv_pool_blocks(bad, mem, 1024, "cpu");
      ADD_FAILURE() << "fraction " << bad << " accepted";
    } catch (const paca::Error& e) {
      EXPECT_EQ(e.status(), paca::Status::invalid_argument) << bad;
    }
  }
}

// The steps' workspaces are set aside before the fraction is taken, so a
// fraction of 1 still leaves them room.
TEST(KvPool, HeadroomIsSetAsideFirst) {
  const DeviceMemory mem{10240, 20480};
  EXPECT_EQ(kv_pool_blocks(1.0, mem, 1024, "cpu", 2048), 8u);
  EXPECT_EQ(kv_pool_blocks(0.5, mem, 1024, "cpu", 2048), 4u);
  try {
    (void)kv_pool_blocks(1.0, mem, 1024, "cuda:0", 10000);  // 240 bytes left
    ADD_FAILURE() << "a pool was made in 240 bytes";
  } catch (const paca::Error& e) {
    EXPECT_EQ(e.status(), paca::Status::out_of_memory);
    const std::string m = e.what();
    for (const char* part : {"need 1024 bytes", "have 240", "less 10000 of headroom"})
      EXPECT_NE(m.find(part), std::string::npos) << part << " in: " << m;
  }
  EXPECT_THROW((void)kv_pool_blocks(1.0, mem, 1024, "cpu", 20000), paca::Error);  // more headroom than free
  // llama3-8b: a 256-token step holds x, xn, o (3 x 4096), q, att (2 x 4096),
  // k, v (2 x 1024), gate, up (2 x 14336) floats per token and one row of
  // 128256 logits: 52,941,824 bytes; two of them and 96 MiB
  paca::ModelConfig c;
  c.dim = 4096;
  c.n_heads = 32;
  c.n_kv_heads = 8;
  c.head_dim = 128;
  c.ffn_dim = 14336;
  c.n_vocab = 128256;
  EXPECT_EQ(paca::step_workspace_bytes(c, 256, 1), 52941824u);
  EXPECT_EQ(paca::kv_headroom_bytes(c), 2u * 52941824u + 100663296u);
}

TEST(KvPool, ReservedPoolFillsUpAndLeavesTheSessionUnchanged) {
  paca_test::Fixture f;  // 16-token blocks
  paca::BlockPool pool(f.model->backend(), f.model->kv_layout(), 3);
  EXPECT_EQ(pool.max_blocks(), 3u);
  EXPECT_EQ(pool.blocks_allocated(), 3u);
  EXPECT_EQ(pool.blocks_in_use(), 0u);
  paca::Session s(*f.model, pool, 0);
  const std::vector<int32_t> prompt = paca_test::prompt_of(40, 5);
  s.prefill(prompt);
  EXPECT_EQ(pool.blocks_in_use(), 3u);
  const std::vector<float> before = s.logits();
  const std::vector<int32_t> more = paca_test::prompt_of(10, 6);  // positions 40..49: a 4th block
  try {
    s.prefill(more);
    ADD_FAILURE() << "a 4th block came from a pool of 3";
  } catch (const paca::Error& e) {
    EXPECT_EQ(e.status(), paca::Status::out_of_memory);
    EXPECT_NE(std::string(e.what()).find("the KV cache is full: all 3 blocks (48 tokens"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(s.length(), 40u);
  EXPECT_EQ(pool.blocks_in_use(), 3u);
  EXPECT_EQ(0, std::memcmp(before.data(), s.logits().data(), before.size() * sizeof(float)));
  // what fits still runs; a rewind gives blocks back
  s.prefill(std::span<const int32_t>(more).first(8));
  EXPECT_EQ(s.length(), 48u);
  s.rewind(10);
  EXPECT_EQ(pool.blocks_in_use(), 1u);
  s.prefill(more);
  EXPECT_EQ(s.length(), 20u);
}

TEST(KvPool, ReservedPoolGivesTheSameBitsAsAnUnboundedOne) {
  paca_test::Fixture f;
  paca::BlockPool reserved(f.model->backend(), f.model->kv_layout(), 8);
  paca::Session a(*f.model, *f.pool, 0), b(*f.model, reserved, 0);
  const std::vector<int32_t> prompt = paca_test::prompt_of(37, 9);
  a.prefill(prompt);
  b.prefill(prompt);
  for (int32_t t : {3, 77, 201}) {
    a.prefill(std::span<const int32_t>(&t, 1));
    b.prefill(std::span<const int32_t>(&t, 1));
    ASSERT_EQ(0, std::memcmp(a.logits().data(), b.logits().data(), a.logits().size() * sizeof(float))) << t;
  }
  // a fork shares blocks of the reserved pool and copies the one it writes
  auto child = b.fork(b.length());
  const int32_t t = 42;
  child->prefill(std::span<const int32_t>(&t, 1));
  a.prefill(std::span<const int32_t>(&t, 1));
  EXPECT_EQ(0, std::memcmp(a.logits().data(), child->logits().data(), a.logits().size() * sizeof(float)));
}

}  // namespace
