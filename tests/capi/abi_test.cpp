// abi_test.cpp - the ABI contract: struct layouts are pinned (this table is
// checked in; a change here is an ABI break unless fields were appended),
// versions agree, struct_size lets old callers pass smaller structs.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>

#include "test_util.h"

namespace {

TEST(Abi, ParamsStructLayoutIsPinned) {
  // x86-64 / aarch64 LP64 layouts.
  EXPECT_EQ(sizeof(paca_model_params), 152u);
  EXPECT_EQ(offsetof(paca_model_params, n_threads), 4u);
  EXPECT_EQ(offsetof(paca_model_params, device), 8u);
  EXPECT_EQ(offsetof(paca_model_params, progress), 16u);
  EXPECT_EQ(offsetof(paca_model_params, progress_user), 24u);
  EXPECT_EQ(offsetof(paca_model_params, log), 32u);
  EXPECT_EQ(offsetof(paca_model_params, log_user), 40u);
  EXPECT_EQ(offsetof(paca_model_params, log_level), 48u);
  EXPECT_EQ(offsetof(paca_model_params, kv_dtype), 52u);
  EXPECT_EQ(offsetof(paca_model_params, kv_block_tokens), 56u);
  EXPECT_EQ(offsetof(paca_model_params, tokenizer_path), 64u);
  EXPECT_EQ(offsetof(paca_model_params, weight_dtype), 72u);
  EXPECT_EQ(offsetof(paca_model_params, fp8_targets), 76u);
  EXPECT_EQ(offsetof(paca_model_params, fp8_mode), 80u);
  EXPECT_EQ(offsetof(paca_model_params, load_mode), 84u);  // v0.2, in what was tail padding
  EXPECT_EQ(offsetof(paca_model_params, tensor_parallel), 88u);  // v0.2: sharding
  EXPECT_EQ(offsetof(paca_model_params, pipeline_parallel), 92u);
  EXPECT_EQ(offsetof(paca_model_params, devices), 96u);
  EXPECT_EQ(offsetof(paca_model_params, rank), 104u);
  EXPECT_EQ(offsetof(paca_model_params, world_size), 108u);
  EXPECT_EQ(offsetof(paca_model_params, rendezvous), 112u);
  EXPECT_EQ(offsetof(paca_model_params, comm_timeout_ms), 120u);
  EXPECT_EQ(offsetof(paca_model_params, kv_memory_fraction), 124u);  // v0.2, in what was tail padding
  EXPECT_EQ(offsetof(paca_model_params, cpu_isa), 128u);             // v0.4: kernels, after v0.2's sizeof
  EXPECT_EQ(offsetof(paca_model_params, cuda_graphs), 136u);
  EXPECT_EQ(offsetof(paca_model_params, cuda_fp8_decode_w8a16), 140u);
  EXPECT_EQ(offsetof(paca_model_params, cuda_fp8_prefill_w8a8), 144u);
  EXPECT_EQ(offsetof(paca_model_params, cuda_fp8_fused_norm), 148u);

  EXPECT_EQ(sizeof(paca_session_params), 8u);
  EXPECT_EQ(offsetof(paca_session_params, n_ctx), 4u);

  EXPECT_EQ(sizeof(paca_model_info), 136u);
  EXPECT_EQ(offsetof(paca_model_info, load_mode), 128u);  // v0.2, appended
  EXPECT_EQ(offsetof(paca_model_info, format), 4u);
  EXPECT_EQ(offsetof(paca_model_info, rope_theta), 40u);
  EXPECT_EQ(offsetof(paca_model_info, eos_ids), 68u);
  EXPECT_EQ(offsetof(paca_model_info, n_params), 104u);
  EXPECT_EQ(offsetof(paca_model_info, kv_bytes_per_token), 120u);

  EXPECT_EQ(sizeof(paca_test_model_params), 56u);
  EXPECT_EQ(offsetof(paca_test_model_params, seed), 8u);
  EXPECT_EQ(offsetof(paca_test_model_params, tied_embeddings), 48u);

  EXPECT_EQ(sizeof(paca_sampler_params), 88u);
  EXPECT_EQ(offsetof(paca_sampler_params, temperature), 4u);
  EXPECT_EQ(offsetof(paca_sampler_params, seed), 8u);
  EXPECT_EQ(offsetof(paca_sampler_params, top_k), 16u);
  EXPECT_EQ(offsetof(paca_sampler_params, repeat_last_n), 40u);
  EXPECT_EQ(offsetof(paca_sampler_params, ignore_eos), 52u);
  EXPECT_EQ(offsetof(paca_sampler_params, stop_ids), 56u);
  EXPECT_EQ(offsetof(paca_sampler_params, n_stop_ids), 64u);
  EXPECT_EQ(offsetof(paca_sampler_params, grammar), 72u);  // v0.3, appended after the tail padding
  EXPECT_EQ(offsetof(paca_sampler_params, json_schema), 80u);

  EXPECT_EQ(sizeof(paca_token_logprobs), 176u);
  EXPECT_EQ(offsetof(paca_token_logprobs, n_top), 12u);
  EXPECT_EQ(offsetof(paca_token_logprobs, top_tokens), 16u);
  EXPECT_EQ(offsetof(paca_token_logprobs, top_logprobs), 96u);

  EXPECT_EQ(sizeof(paca_generator_params), 40u);
  EXPECT_EQ(offsetof(paca_generator_params, stop_strings), 8u);
  EXPECT_EQ(offsetof(paca_generator_params, stop_lengths), 16u);
  EXPECT_EQ(offsetof(paca_generator_params, n_stop_strings), 24u);
  EXPECT_EQ(offsetof(paca_generator_params, logprobs), 28u);
  EXPECT_EQ(offsetof(paca_generator_params, detokenize_flags), 32u);

  EXPECT_EQ(PACA_OK, 0);
  EXPECT_EQ(PACA_ERR_FORMAT, 3);
  EXPECT_EQ(PACA_ERR_STATE, 10);
  EXPECT_EQ(PACA_ERR_BUSY, 11);
  EXPECT_EQ(PACA_ERR_TIMEOUT, 12);
  EXPECT_EQ(PACA_ERR_INTERNAL, 99);
}

TEST(Abi, Versions) {
  EXPECT_EQ(paca_abi_version(), static_cast<uint32_t>(PACA_ABI_VERSION));
  char want[32];
  std::snprintf(want, sizeof want, "%d.%d.%d", PACA_VERSION_MAJOR, PACA_VERSION_MINOR, PACA_VERSION_PATCH);
  EXPECT_STREQ(paca_version(), want);
}

TEST(Abi, StatusNames) {
  EXPECT_STREQ(paca_status_name(PACA_ERR_CONTEXT_FULL), "PACA_ERR_CONTEXT_FULL");
  EXPECT_STREQ(paca_status_name(PACA_ERR_BUSY), "PACA_ERR_BUSY");
  EXPECT_STREQ(paca_status_name(PACA_ERR_TIMEOUT), "PACA_ERR_TIMEOUT");
  EXPECT_STREQ(paca_status_name(static_cast<paca_status>(12345)), "PACA_ERR_UNKNOWN");
}

TEST(Abi, OlderCallersPassSmallerStructs) {
  std::string dir = test::make_small_model();
  // an "old" caller knows only struct_size and n_threads
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.struct_size = offsetof(paca_model_params, device);
  p.n_threads = 1;
  p.kv_dtype = 77;  // beyond the declared size: must be ignored
  paca_model* m = nullptr;
  ASSERT_EQ(paca_model_load(dir.c_str(), &p, &m), PACA_OK) << paca_last_error();
  paca_model_info info;
  std::memset(&info, 0xab, sizeof info);
  info.struct_size = offsetof(paca_model_info, n_layers);  // knows format, n_vocab, dim
  ASSERT_EQ(paca_model_get_info(m, &info), PACA_OK);
  EXPECT_EQ(info.format, PACA_FORMAT_HF_SAFETENSORS);
  EXPECT_EQ(info.n_vocab, 300);
  EXPECT_EQ(info.dim, 64);
  int32_t untouched;
  std::memset(&untouched, 0xab, sizeof untouched);
  EXPECT_EQ(info.n_layers, untouched) << "fields past struct_size must be left alone";
  paca_model_free(m);
}

TEST(Abi, InitFillsExactlyTheGivenSize) {
  // a caller whose struct is shorter than the library's (an older header)
  alignas(8) unsigned char buf[256];
  std::memset(buf, 0xcd, sizeof buf);
  const size_t old_size = offsetof(paca_model_params, load_mode);
  auto* p = reinterpret_cast<paca_model_params*>(buf);
  ASSERT_EQ(paca_model_params_init(p, old_size), PACA_OK);
  EXPECT_EQ(p->struct_size, old_size);
  EXPECT_EQ(p->kv_block_tokens, 16);
  for (size_t i = old_size; i < sizeof buf; ++i) ASSERT_EQ(buf[i], 0xcd) << "byte " << i << " written past size";
  // a caller whose struct is longer (a newer header): the unknown tail is zeroed
  std::memset(buf, 0xcd, sizeof buf);
  ASSERT_EQ(paca_sampler_params_init(reinterpret_cast<paca_sampler_params*>(buf), 200), PACA_OK);
  EXPECT_EQ(reinterpret_cast<paca_sampler_params*>(buf)->struct_size, 200u);
  for (size_t i = sizeof(paca_sampler_params); i < 200; ++i) ASSERT_EQ(buf[i], 0) << "byte " << i;
  EXPECT_EQ(buf[200], 0xcd);
  // hostile arguments
  EXPECT_EQ(paca_model_params_init(nullptr, sizeof(paca_model_params)), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(paca_session_params_init(reinterpret_cast<paca_session_params*>(buf), 2), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("pass sizeof p"), std::string::npos) << paca_last_error();
  EXPECT_EQ(paca_chat_params_init(reinterpret_cast<paca_chat_params*>(buf), size_t{1} << 40), PACA_ERR_INVALID_ARGUMENT);
  // every params struct has one
  paca_test_model_params t;
  paca_generator_params g;
  paca_engine_params e;
  paca_request_params r;
  EXPECT_EQ(paca_test_model_params_init(&t, sizeof t), PACA_OK);
  EXPECT_EQ(paca_generator_params_init(&g, sizeof g), PACA_OK);
  EXPECT_EQ(paca_engine_params_init(&e, sizeof e), PACA_OK);
  EXPECT_EQ(paca_request_params_init(&r, sizeof r), PACA_OK);
  EXPECT_EQ(t.struct_size, sizeof t);
  EXPECT_EQ(e.max_running, 64);
  EXPECT_EQ(r.callback, nullptr);
}

TEST(Abi, NewerCallersPassLargerStructsWithZeroTails) {
  std::string dir = test::make_small_model();
  struct Newer {
    paca_model_params p;
    int64_t field_of_a_later_version;
  } n;
  paca_model_params_init(&n.p, sizeof n);
  n.p.n_threads = 1;
  paca_model* m = nullptr;
  ASSERT_EQ(paca_model_load(dir.c_str(), &n.p, &m), PACA_OK) << paca_last_error();
  paca_model_free(m);
  m = nullptr;
  n.field_of_a_later_version = 5;  // this library cannot honour it: refused, not ignored
  EXPECT_EQ(paca_model_load(dir.c_str(), &n.p, &m), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(paca_last_error()).find("does not know (byte 152)"), std::string::npos) << paca_last_error();
}

TEST(Abi, V01SizedModelParamsIgnoreTheirTailPadding) {
  // v0.1's paca_model_params was 88 bytes, load_mode (v0.2) at 84 in its
  // padding: with struct_size 88 the library must not read those bytes.
  std::string dir = test::make_small_model();
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.struct_size = 88;
  p.n_threads = 1;
  p.load_mode = -12345;  // what garbage padding would hold
  paca_model* m = nullptr;
  ASSERT_EQ(paca_model_load(dir.c_str(), &p, &m), PACA_OK) << paca_last_error();
  paca_model_free(m);
  // one byte more is a v0.2+ caller, whose load_mode counts
  p.struct_size = 92;
  m = nullptr;
  EXPECT_EQ(paca_model_load(dir.c_str(), &p, &m), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("load_mode"), std::string::npos) << paca_last_error();
}

TEST(Abi, CpuIsaIsAParameter) {
  std::string dir = test::make_small_model();
  auto backend_of = [&](const char* isa, paca_status want) {
    paca_model_params p;
    paca_model_params_init(&p, sizeof p);
    p.n_threads = 1;
    p.cpu_isa = isa;
    paca_model* m = nullptr;
    EXPECT_EQ(paca_model_load(dir.c_str(), &p, &m), want) << (isa ? isa : "NULL") << ": " << paca_last_error();
    std::string json;
    if (m != nullptr) {
      size_t need = 0;
      paca_model_describe_json(m, nullptr, 0, &need);
      json.resize(need);
      EXPECT_EQ(paca_model_describe_json(m, json.data(), need, &need), PACA_OK);
      paca_model_free(m);
    }
    return json;
  };
  EXPECT_NE(backend_of("scalar", PACA_OK).find("\"backend\":\"cpu (scalar, 1 threads)\""), std::string::npos);
  const std::string best = backend_of(nullptr, PACA_OK);
  EXPECT_EQ(backend_of("auto", PACA_OK), best);
  (void)backend_of("sse9", PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("cpu_isa 'sse9' is not one this build and CPU run (auto, scalar"),
            std::string::npos)
      << paca_last_error();
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.cuda_graphs = 2;
  paca_model* m = nullptr;
  EXPECT_EQ(paca_model_load(dir.c_str(), &p, &m), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(paca_last_error()).find("cuda_graphs must be 0 or 1"), std::string::npos) << paca_last_error();
}

TEST(Abi, LogCallbackReceivesMessages) {
  struct Sink {
    int n = 0;
    std::string last;
  } sink;
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.log = [](void* user, int32_t, const char* msg) {
    auto* s = static_cast<Sink*>(user);
    ++s->n;
    s->last = msg;
  };
  p.log_user = &sink;
  p.log_level = PACA_LOG_DEBUG;
  paca_model* m = nullptr;
  std::string dir = test::make_small_model();
  ASSERT_EQ(paca_model_load(dir.c_str(), &p, &m), PACA_OK) << paca_last_error();
  EXPECT_GE(sink.n, 1);
  EXPECT_NE(sink.last.find("loaded"), std::string::npos) << sink.last;
  paca_model_free(m);
}

TEST(Abi, DescribeJsonReportsSizeAndContents) {
  paca_model* m = test::load_or_die(test::make_small_model());
  ASSERT_NE(m, nullptr);
  size_t need = 0;
  EXPECT_EQ(paca_model_describe_json(m, nullptr, 0, &need), PACA_ERR_BUFFER_TOO_SMALL);
  ASSERT_GT(need, 10u);
  std::string buf(need, 'x');
  ASSERT_EQ(paca_model_describe_json(m, buf.data(), buf.size(), &need), PACA_OK);
  EXPECT_EQ(buf.back(), '\0');
  EXPECT_NE(buf.find("\"n_vocab\":300"), std::string::npos) << buf;
  EXPECT_NE(buf.find("\"format\":\"hf-safetensors\""), std::string::npos) << buf;
  paca_model_free(m);
}

}  // namespace
