package ai.paca;

import ai.paca.jni.GenerateParams;
import java.util.ArrayList;
import java.util.List;

/** Sampling and stop settings; temperature 0 (the default) is greedy. Setters chain. */
public final class GenerateOptions {
  int maxTokens = 128;
  float temperature = 0f;
  float topP = 1f;
  int topK = 0;
  long seed = 0;
  boolean ignoreEos = false;
  final List<String> stop = new ArrayList<>();

  public GenerateOptions maxTokens(int n) { maxTokens = n; return this; }
  public GenerateOptions temperature(float t) { temperature = t; return this; }
  public GenerateOptions topP(float p) { topP = p; return this; }
  public GenerateOptions topK(int k) { topK = k; return this; }
  public GenerateOptions seed(long s) { seed = s; return this; }
  public GenerateOptions ignoreEos(boolean b) { ignoreEos = b; return this; }
  /** A stop string: generation ends before it, and it is not returned. */
  public GenerateOptions stop(String s) { stop.add(s); return this; }

  /** The native settings (the caller deletes them). */
  GenerateParams toNative() {
    GenerateParams p = new GenerateParams();
    p.setTemperature(temperature);
    p.setSeed(seed);
    p.setTop_k(topK);
    p.setTop_p(topP);
    p.setMax_new_tokens(maxTokens);
    p.setIgnore_eos(ignoreEos);
    for (String s : stop) p.add_stop(Native.bytes(s));
    return p;
  }
}
