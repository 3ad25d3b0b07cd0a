// kv_fork_test.cpp - copy-on-write forks of sessions: the children share the
// parent's KV blocks (checked on the block pool's counts), copy only the
// block they write into, and continue exactly as fresh sessions would.
#include <gtest/gtest.h>

#include <tuple>

#include "session_fixture.h"

namespace {

using paca_test::Fixture;
using paca_test::continue_greedy;
using paca_test::prompt_of;

TEST(SessionFork, ChildrenShareTheParentsBlocksAndContinueIndependently) {
  Fixture f;
  auto parent = f.session();
  const auto prompt = prompt_of(40, 1);  // blocks of 16: two full blocks and one holding 8 positions
  parent->prefill(prompt);
  ASSERT_EQ(f.pool->blocks_in_use(), 3u);

  auto a = parent->fork(parent->length());
  auto b = parent->fork(parent->length());
  // shared, not copied: still three blocks, each held by all three sessions
  EXPECT_EQ(f.pool->blocks_in_use(), 3u);
  for (uint8_t* blk : parent->kv().blocks()) EXPECT_EQ(f.pool->ref_count(blk), 3u);
  EXPECT_EQ(a->kv().blocks(), parent->kv().blocks());
  EXPECT_EQ(a->logits(), parent->logits());

  // Each child writes into the partial last block: only that block is copied.
  const int32_t ta = 7, tb = 123;
  a->prefill(std::span<const int32_t>(&ta, 1));
  EXPECT_EQ(f.pool->blocks_in_use(), 4u);
  b->prefill(std::span<const int32_t>(&tb, 1));
  EXPECT_EQ(f.pool->blocks_in_use(), 5u);
  EXPECT_EQ(f.pool->ref_count(parent->kv().blocks()[0]), 3u);
  EXPECT_EQ(f.pool->ref_count(parent->kv().blocks()[1]), 3u);
  EXPECT_EQ(f.pool->ref_count(parent->kv().blocks()[2]), 1u);  // both children copied it away

  auto ga = continue_greedy(*a, 30);  // crosses into new blocks of its own
  auto gb = continue_greedy(*b, 30);

  // Each child equals a fresh session that ran the same steps.
  for (auto [child, first, gen] : {std::tuple{a.get(), ta, &ga}, std::tuple{b.get(), tb, &gb}}) {
    auto fresh = f.session();
    fresh->prefill(prompt);
    fresh->prefill(std::span<const int32_t>(&first, 1));
    auto g = continue_greedy(*fresh, 30);
    EXPECT_EQ(fresh->tokens(), child->tokens());
    EXPECT_EQ(g, *gen);  // bit for bit
  }
  // The parent's own cache was not disturbed by its children.
  auto fresh = f.session();
  fresh->prefill(prompt);
  EXPECT_EQ(continue_greedy(*fresh, 5), continue_greedy(*parent, 5));

  // Freeing everything returns every block.
  a.reset();
  b.reset();
  parent.reset();
  fresh.reset();
  EXPECT_EQ(f.pool->blocks_in_use(), 0u);
}

TEST(SessionFork, ForkAtABlockBoundaryCopiesNothingAndRewindOfTheChildKeepsTheParent) {
  Fixture f;
  auto parent = f.session();
  const auto prompt = prompt_of(32, 2);  // exactly two blocks
  parent->prefill(prompt);
  auto child = parent->fork(32);
  const int32_t t = 5;
  child->prefill(std::span<const int32_t>(&t, 1));  // opens a third block of its own
  EXPECT_EQ(f.pool->blocks_in_use(), 3u);
  child->rewind(20);  // back inside shared block 1: drops its block 2 only
  EXPECT_EQ(f.pool->blocks_in_use(), 2u);
  child->prefill(std::span<const int32_t>(&t, 1));  // writes position 20 of shared block 1: copied
  EXPECT_EQ(f.pool->blocks_in_use(), 3u);
  EXPECT_EQ(f.pool->ref_count(parent->kv().blocks()[1]), 1u);
  auto fresh = f.session();
  fresh->prefill(prompt);
  EXPECT_EQ(continue_greedy(*fresh, 4), continue_greedy(*parent, 4));
}

}  // namespace
