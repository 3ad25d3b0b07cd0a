// snapshot_test.cpp - core-level tests of snapshot files: crash safety of the
// writer (a process killed after every step and at random moments, a step
// that fails), headers that pass their checksum but say absurd things, other
// block sizes, the model fingerprint.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <random>
#include <thread>

#include "runtime/snapshot.h"
#include "session_fixture.h"
#include "util/error.h"

namespace {

namespace fs = std::filesystem;
using paca_test::Fixture;
using paca_test::continue_greedy;
using paca_test::prompt_of;

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Runs body in a child process, which exits 0 when body returns and 3 when it throws.
pid_t start_child(const std::function<void()>& body) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    try {
      body();
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  EXPECT_GT(pid, 0);
  return pid;
}

int wait_for(pid_t pid) {
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  return status;
}

// The snapshot at path loads, and is exactly one of the two sessions.
void expect_old_or_new(Fixture& f, const fs::path& path, const paca::Session& old_s, const paca::Session& new_s) {
  paca::LoadedSnapshot l = paca::load_snapshot(*f.model, *f.pool, path.string());
  const bool is_old = l.session->tokens() == old_s.tokens() && l.session->logits() == old_s.logits();
  const bool is_new = l.session->tokens() == new_s.tokens() && l.session->logits() == new_s.logits();
  EXPECT_TRUE(is_old || is_new) << "the file holds neither snapshot";
}

int g_crash_at = -1;
int g_steps = 0;

TEST(SnapshotCrashSafety, AWriterKilledAfterAnyStepLeavesTheOldOrTheNewFile) {
  Fixture f;
  auto old_s = f.prefilled(20, 3);
  auto new_s = f.prefilled(70, 4);
  const fs::path path = f.dir / "s.snap";
  paca::save_snapshot(*old_s, nullptr, path.string());

  // A child process saves new_s and dies (_exit, no cleanup) right after step
  // k; it exits 0 when it finished before step k, i.e. every step was covered.
  int k = 0;
  for (;; ++k) {
    const int status = wait_for(start_child([&] {
      g_crash_at = k;
      g_steps = 0;
      paca::snapshot_testing::after_step = [](const char*) {
        if (g_steps++ == g_crash_at) ::_exit(42);
      };
      paca::save_snapshot(*new_s, nullptr, path.string());
    }));
    ASSERT_TRUE(WIFEXITED(status));
    const int code = WEXITSTATUS(status);
    ASSERT_TRUE(code == 42 || code == 0) << "writer failed with " << code;
    expect_old_or_new(f, path, *old_s, *new_s);
    if (code == 0) break;
  }
  EXPECT_GT(k, 6);  // open, writes, header, fsync, close, rename, dirsync
  expect_old_or_new(f, path, *new_s, *new_s);  // the run that finished wrote the new one
}

TEST(SnapshotCrashSafety, AWriterKilledAtRandomMomentsLeavesTheOldOrTheNewFile) {
  Fixture f;
  auto a = f.prefilled(30, 5);
  auto b = f.prefilled(200, 6);
  const fs::path path = f.dir / "s.snap";
  paca::save_snapshot(*a, nullptr, path.string());
  std::mt19937 rng(1234);
  for (int round = 0; round < 40; ++round) {
    const pid_t pid = start_child([&] {  // rewrites the file as fast as it can until killed
      for (int i = 0;; ++i) paca::save_snapshot(i % 2 ? *a : *b, nullptr, path.string());
    });
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 30000)(rng)));
    ::kill(pid, SIGKILL);
    const int status = wait_for(pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer stopped on its own";
    expect_old_or_new(f, path, *a, *b);
  }
}

TEST(SnapshotCrashSafety, AFailingStepLeavesTheOldFileAndNoTemporary) {
  Fixture f;
  auto old_s = f.prefilled(10, 7);
  auto new_s = f.prefilled(50, 8);
  const fs::path path = f.dir / "s.snap";
  int failures = 0;
  for (int k = 0;; ++k) {
    paca::save_snapshot(*old_s, nullptr, path.string());
    g_crash_at = k;
    g_steps = 0;
    paca::snapshot_testing::after_step = [](const char* step) {
      if (g_steps++ == g_crash_at) throw paca::Error(paca::Status::io, std::string("injected failure after ") + step);
    };
    bool failed = false;
    try {
      paca::save_snapshot(*new_s, nullptr, path.string());
    } catch (const paca::Error& e) {
      failed = true;
      ++failures;
      EXPECT_EQ(e.status(), paca::Status::io);
    }
    paca::snapshot_testing::after_step = nullptr;
    size_t entries = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(f.dir)) ++entries;
    EXPECT_EQ(entries, 2u) << "a temporary file was left behind (step " << k << ")";  // model/ and s.snap
    expect_old_or_new(f, path, *old_s, *new_s);
    if (!failed) break;
  }
  EXPECT_GT(failures, 6);
}

// Headers that pass the checksum (re-computed after the edit) but lie.
TEST(SnapshotReader, HeadersWithAbsurdOrInconsistentFieldsAreRefused) {
  Fixture f;
  auto s = f.session();
  s->prefill(prompt_of(25, 9));
  const fs::path path = f.dir / "s.snap";
  paca::save_snapshot(*s, nullptr, path.string());
  const std::vector<uint8_t> good = read_bytes(path);
  const uint64_t fp = f.model->fingerprint();

  struct Edit {
    size_t offset;  // of a field in the header (see snapshot.h)
    uint64_t value;
    size_t width;
    paca::Status want;
    const char* says;
  };
  const Edit edits[] = {
      {8, 2, 4, paca::Status::unsupported, "newer than this library"},   // version
      {8, 0, 4, paca::Status::format, "version 0"},                       // version 0
      {12, 6, 4, paca::Status::unsupported, "unknown header flags"},      // flags
      {24, 0, 4, paca::Status::unsupported, "KV cache is bf16"},          // kv dtype (2 = bf16)
      {28, 3, 4, paca::Status::format, "shapes"},                         // n_layers
      {40, uint64_t{1} << 40, 8, paca::Status::format, "absurd sizes"},   // n_tokens
      {48, uint64_t{1} << 30, 8, paca::Status::format, "absurd sizes"},   // n_ctx
      {48, 0, 8, paca::Status::format, "absurd sizes"},                   // n_ctx 0
      {40, 26, 8, paca::Status::format, "the header implies"},            // n_tokens != section sizes
      {56, 0, 4, paca::Status::format, "sections"},                       // n_sections 0
      {56, 1000, 4, paca::Status::format, "sections"},                    // n_sections huge
      {64 + 8, uint64_t{1} << 62, 8, paca::Status::format, "starts at"},  // tokens offset
      {64 + 16, uint64_t{1} << 62, 8, paca::Status::format, "truncated"}, // tokens stored size
      {64, 9, 4, paca::Status::unsupported, "unknown section kind"},      // section kind
      {64 + 4, 2, 4, paca::Status::unsupported, "unknown codec"},         // codec
  };
  for (const Edit& e : edits) {
    std::vector<uint8_t> b = good;
    if (e.offset == 24) b[24] = 2;
    else std::memcpy(b.data() + e.offset, &e.value, e.width);
    paca::snapshot_testing::fix_header(b, fp);
    try {
      paca::read_snapshot(*f.model, *f.pool, b, "edited");
      ADD_FAILURE() << "accepted a header edited at byte " << e.offset;
    } catch (const paca::Error& err) {
      EXPECT_EQ(err.status(), e.want) << err.what();
      EXPECT_NE(std::string(err.what()).find(e.says), std::string::npos) << err.what();
    }
  }
  // The unedited file (through fix_header too) still loads: the edits, not fix_header, broke them.
  std::vector<uint8_t> b = good;
  paca::snapshot_testing::fix_header(b, fp);
  EXPECT_EQ(paca::read_snapshot(*f.model, *f.pool, b, "unedited").session->tokens(), s->tokens());
}

TEST(SnapshotReader, LoadsIntoAModelWithAnotherBlockSize) {
  Fixture f(11, 16);
  Fixture g(11, 5);  // same checkpoint, KV blocks of 5 tokens
  ASSERT_EQ(f.model->fingerprint(), g.model->fingerprint());
  auto s = f.session();
  s->prefill(prompt_of(37, 10));
  const fs::path path = f.dir / "s.snap";
  paca::save_snapshot(*s, nullptr, path.string());
  auto l = paca::load_snapshot(*g.model, *g.pool, path.string());
  EXPECT_EQ(g.pool->blocks_in_use(), 8u);  // ceil(37 / 5)
  EXPECT_EQ(continue_greedy(*l.session, 6), continue_greedy(*s, 6));
}

TEST(ModelFingerprint, DiffersForAnotherSeedOfTheSameShape) {
  Fixture a(11), b(12);
  EXPECT_NE(a.model->fingerprint(), b.model->fingerprint());
  Fixture c(11);
  EXPECT_EQ(a.model->fingerprint(), c.model->fingerprint());
}

}  // namespace
