package ai.paca;

/** What a loaded model is (paca_model_info). */
public final class ModelInfo {
  /** paca_model_format: 0 Hugging Face safetensors, 1 GGUF, 2 llama2.c. */
  public final int format;
  public final int vocabSize, dim, layers, heads, kvHeads, headDim, ffnDim, maxContext;
  public final float ropeTheta, ropeFactor, normEps;
  /** paca_rope_scaling: 0 none, 1 llama3. */
  public final int ropeScaling;
  public final boolean tiedEmbeddings;
  /** -1 when none. */
  public final int bosId;
  public final int[] eosIds;
  public final long params, weightBytes, kvBytesPerToken;
  /** ModelOptions.LOAD_READ when every weight file was read into memory, else LOAD_MMAP. */
  public final int loadMode;

  ModelInfo(ai.paca.jni.ModelInfo n) {
    format = n.getFormat();
    vocabSize = n.getN_vocab();
    dim = n.getDim();
    layers = n.getN_layers();
    heads = n.getN_heads();
    kvHeads = n.getN_kv_heads();
    headDim = n.getHead_dim();
    ffnDim = n.getFfn_dim();
    maxContext = n.getMax_context();
    ropeTheta = n.getRope_theta();
    ropeFactor = n.getRope_factor();
    normEps = n.getNorm_eps();
    ropeScaling = n.getRope_scaling();
    tiedEmbeddings = n.getTied_embeddings() != 0;
    bosId = n.getBos_id();
    eosIds = Native.array(n.getEos_ids());
    params = n.getN_params();
    weightBytes = n.getWeight_bytes();
    kvBytesPerToken = n.getKv_bytes_per_token();
    loadMode = n.getLoad_mode();
  }
}
