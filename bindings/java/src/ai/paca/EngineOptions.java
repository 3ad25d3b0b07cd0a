package ai.paca;

import ai.paca.jni.EngineParams;

/**
 * Settings of an Engine (paca_engine_params): requests stepped together, tokens in one step,
 * requests that may wait (a submit beyond raises PacaException BUSY), each request's context
 * (0: the model's), the shared prefix cache, and manual stepping (no thread: call Engine.step).
 * Setters chain.
 */
public final class EngineOptions {
  int maxRunning = 64;
  int maxStepTokens = 512;
  int maxQueued = 1024;
  int contextSize = 0;
  boolean prefixCache = true;
  boolean manualStep = false;

  public EngineOptions maxRunning(int n) { maxRunning = n; return this; }
  public EngineOptions maxStepTokens(int n) { maxStepTokens = n; return this; }
  public EngineOptions maxQueued(int n) { maxQueued = n; return this; }
  public EngineOptions contextSize(int n) { contextSize = n; return this; }
  public EngineOptions prefixCache(boolean b) { prefixCache = b; return this; }
  public EngineOptions manualStep(boolean b) { manualStep = b; return this; }

  /** The native settings (the caller deletes them). */
  EngineParams toNative() {
    EngineParams p = new EngineParams();
    p.setMax_running(maxRunning);
    p.setMax_step_tokens(maxStepTokens);
    p.setMax_queued(maxQueued);
    p.setN_ctx(contextSize);
    p.setPrefix_cache(prefixCache);
    p.setManual_step(manualStep);
    return p;
  }
}
