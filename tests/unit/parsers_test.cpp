// parsers_test.cpp - the byte-level parsers on hand-built inputs.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "format/gguf.h"
#include "format/safetensors.h"
#include "util/error.h"

using namespace paca;

namespace {

std::vector<uint8_t> safetensors(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> b(8 + header.size() + data_bytes, 0);
  uint64_t n = header.size();
  std::memcpy(b.data(), &n, 8);
  std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

Status status_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.status();
  }
  return Status::ok;
}

}  // namespace

TEST(Safetensors, ParsesEntries) {
  auto b = safetensors(R"({"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},
                           "b":{"dtype":"F32","shape":[],"data_offsets":[12,16]}})", 16);
  SafetensorsFile f = parse_safetensors(b, "t");
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[0].name, "a");
  EXPECT_EQ(f.tensors[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f.tensors[1].shape.size(), 0u);
  EXPECT_EQ(f.data_start, 8 + b.size() - 16 - 8);
}

TEST(Safetensors, RejectsDuplicatesAndBadOffsets) {
  EXPECT_EQ(status_of([] {
              parse_safetensors(safetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},
                                                "a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8), "t");
            }),
            Status::format);
  EXPECT_EQ(status_of([] {
              parse_safetensors(safetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 8), "t");
            }),
            Status::format);
  EXPECT_EQ(status_of([] {
              parse_safetensors(
                  safetensors(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}})", 8), "t");
            }),
            Status::format);
  EXPECT_EQ(status_of([] { parse_safetensors(safetensors(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 8), "t"); }),
            Status::format);
  EXPECT_EQ(status_of([] { parse_safetensors(safetensors(R"({"a":5})", 8), "t"); }), Status::format);
}

TEST(Gguf, ParsesArraysWithoutCopying) {
  std::vector<uint8_t> b;
  auto u32 = [&](uint32_t v) { for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i))); };
  auto u64 = [&](uint64_t v) { for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i))); };
  auto str = [&](const std::string& s) { u64(s.size()); b.insert(b.end(), s.begin(), s.end()); };
  u32(0x46554747u); u32(3); u64(1); u64(2);
  str("tokenizer.ggml.tokens"); u32(9); u32(8); u64(3); str("a"); str("bb"); str("");
  str("general.alignment"); u32(4); u32(64);
  str("w"); u32(2); u64(32); u64(2); u32(8); u64(0);  // Q8_0 [2, 32]
  while (b.size() % 64) b.push_back(0);
  b.resize(b.size() + 68, 1);
  GgufFile g = parse_gguf(b, "t");
  EXPECT_EQ(g.alignment, 64u);
  const GgufValue* t = g.find("tokenizer.ggml.tokens");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->count, 3u);
  ASSERT_EQ(g.tensors.size(), 1u);
  EXPECT_EQ(g.tensors[0].bytes, 68u);
  EXPECT_EQ(g.data_start % 64, 0u);
  EXPECT_EQ(ggml_type_name(12), "Q4_K");
  b.resize(b.size() - 1);
  EXPECT_EQ(status_of([&] { parse_gguf(b, "t"); }), Status::format);
}
