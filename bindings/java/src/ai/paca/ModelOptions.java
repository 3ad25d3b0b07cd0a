package ai.paca;

import ai.paca.jni.ModelParams;

/**
 * Settings of a model load (paca_model_params); the defaults are the library's. Setters chain.
 * Not here: load progress and a per-model log sink (callbacks), the multi-process fields (rank,
 * world_size, rendezvous) and the CUDA kernel switches.
 */
public final class ModelOptions {
  /** paca_kv_dtype. */
  public static final int KV_AUTO = -1, KV_F32 = 0, KV_BF16 = 1;
  /** paca_load_mode. */
  public static final int LOAD_MMAP = 0, LOAD_READ = 1, LOAD_AUTO = 2;
  /** paca_weight_dtype. */
  public static final int WEIGHTS_AS_STORED = 0, WEIGHTS_FP8 = 1;

  int threads, kvDtype, kvBlockTokens, weightDtype, fp8Targets, fp8Mode, loadMode, tensorParallel, pipelineParallel;
  float kvMemoryFraction;
  String device, devices, tokenizerPath, cpuIsa;

  public ModelOptions() {
    Native.init();
    ModelParams d = new ModelParams();
    threads = d.getN_threads();
    kvDtype = d.getKv_dtype();
    kvBlockTokens = d.getKv_block_tokens();
    weightDtype = d.getWeight_dtype();
    fp8Targets = d.getFp8_targets();
    fp8Mode = d.getFp8_mode();
    loadMode = d.getLoad_mode();
    tensorParallel = d.getTensor_parallel();
    pipelineParallel = d.getPipeline_parallel();
    kvMemoryFraction = d.getKv_memory_fraction();
    d.delete();
  }

  /** Compute threads; 0 = all hardware threads. */
  public ModelOptions threads(int n) { threads = n; return this; }
  /** "cpu" (null), "cuda" or "cuda:N". */
  public ModelOptions device(String d) { device = d; return this; }
  /** Comma-separated devices of the ranks, e.g. "cpu,cpu" (null: device). */
  public ModelOptions devices(String d) { devices = d; return this; }
  /** KV_AUTO, KV_F32 or KV_BF16. */
  public ModelOptions kvDtype(int t) { kvDtype = t; return this; }
  /** Tokens per KV-cache block; 0 = 16. */
  public ModelOptions kvBlockTokens(int n) { kvBlockTokens = n; return this; }
  /** A tokenizer file to use instead of the checkpoint's own. */
  public ModelOptions tokenizerPath(String p) { tokenizerPath = p; return this; }
  /** WEIGHTS_AS_STORED or WEIGHTS_FP8 (quantize at load). */
  public ModelOptions weightDtype(int t) { weightDtype = t; return this; }
  /** PACA_FP8_* flags for quantizing at load; 0 = Meta's recipe. */
  public ModelOptions fp8Targets(int flags) { fp8Targets = flags; return this; }
  /** paca_fp8_mode: 0 auto, 1 W8A8, 2 W8A16. */
  public ModelOptions fp8Mode(int m) { fp8Mode = m; return this; }
  /** LOAD_MMAP, LOAD_READ or LOAD_AUTO. */
  public ModelOptions loadMode(int m) { loadMode = m; return this; }
  /** Ranks per layer in this process (0 or 1: none). */
  public ModelOptions tensorParallel(int n) { tensorParallel = n; return this; }
  /** Pipeline stages in this process (0 or 1: none). */
  public ModelOptions pipelineParallel(int n) { pipelineParallel = n; return this; }
  /** 0: KV blocks allocated as needed; in (0, 1]: a pool of that fraction of free memory. */
  public ModelOptions kvMemoryFraction(float f) { kvMemoryFraction = f; return this; }
  /** CPU kernels: null or "auto", "scalar", "avx2", "avx512". */
  public ModelOptions cpuIsa(String isa) { cpuIsa = isa; return this; }

  /** The native settings (the caller deletes them). */
  ModelParams toNative() {
    ModelParams p = new ModelParams();
    p.setN_threads(threads);
    p.setKv_dtype(kvDtype);
    p.setKv_block_tokens(kvBlockTokens);
    p.setWeight_dtype(weightDtype);
    p.setFp8_targets(fp8Targets);
    p.setFp8_mode(fp8Mode);
    p.setLoad_mode(loadMode);
    p.setTensor_parallel(tensorParallel);
    p.setPipeline_parallel(pipelineParallel);
    p.setKv_memory_fraction(kvMemoryFraction);
    p.setDevice(Native.optional(device));
    p.setDevices(Native.optional(devices));
    p.setTokenizer_path(Native.optional(tokenizerPath));
    p.setCpu_isa(Native.optional(cpuIsa));
    return p;
  }
}
