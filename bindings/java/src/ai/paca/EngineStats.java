package ai.paca;

import ai.paca.jni.EngineCounters;

/**
 * An engine's counters so far (paca_engine_stats): requests waiting and running, submitted and
 * finished, forward steps, tokens prefilled (recomputation included), generated and taken from
 * the prefix cache, preemptions, and the KV pool (blocks in use, held by the prefix cache, in
 * all: 0 for an unbounded pool; positions per block).
 */
public final class EngineStats {
  public final long queued;
  public final long running;
  public final long submitted;
  public final long finished;
  public final long steps;
  public final long prefillTokens;
  public final long generatedTokens;
  public final long cachedTokens;
  public final long preemptions;
  public final long kvBlocksUsed;
  public final long kvBlocksCached;
  public final long kvBlocksTotal;
  public final long kvBlockTokens;

  EngineStats(EngineCounters c) {
    queued = c.getN_queued();
    running = c.getN_running();
    submitted = c.getN_submitted();
    finished = c.getN_finished();
    steps = c.getN_steps();
    prefillTokens = c.getN_prefill_tokens();
    generatedTokens = c.getN_generated_tokens();
    cachedTokens = c.getN_cached_tokens();
    preemptions = c.getN_preemptions();
    kvBlocksUsed = c.getKv_blocks_used();
    kvBlocksCached = c.getKv_blocks_cached();
    kvBlocksTotal = c.getKv_blocks_total();
    kvBlockTokens = c.getKv_block_tokens();
  }
}
