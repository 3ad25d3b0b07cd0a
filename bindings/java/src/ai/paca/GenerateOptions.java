package ai.paca;

import ai.paca.jni.GenerateParams;
import java.util.ArrayList;
import java.util.List;

/**
 * Sampling and stop settings (paca_sampler_params plus stop strings); temperature 0 (the
 * default) is greedy. Setters chain. The same options make a Generation, an engine Request or a
 * Sampler (which ignores the stop strings; see StopMatcher).
 */
public final class GenerateOptions {
  int maxTokens = 128;
  float temperature = 0f;
  float topP = 1f;
  int topK = 0;
  float minP = 0f;
  float repeatPenalty = 1f;
  float frequencyPenalty = 0f;
  float presencePenalty = 0f;
  int repeatLastN = 64;
  int topLogprobs = 0;
  long seed = 0;
  boolean ignoreEos = false;
  boolean logprobs = false;
  boolean special = false;
  String grammar;
  String jsonSchema;
  final List<String> stop = new ArrayList<>();
  final List<Integer> stopIds = new ArrayList<>();

  /** Tokens to generate at most; 0: no limit. */
  public GenerateOptions maxTokens(int n) { maxTokens = n; return this; }
  public GenerateOptions temperature(float t) { temperature = t; return this; }
  public GenerateOptions topP(float p) { topP = p; return this; }
  public GenerateOptions topK(int k) { topK = k; return this; }
  public GenerateOptions minP(float p) { minP = p; return this; }
  public GenerateOptions repeatPenalty(float p) { repeatPenalty = p; return this; }
  public GenerateOptions frequencyPenalty(float p) { frequencyPenalty = p; return this; }
  public GenerateOptions presencePenalty(float p) { presencePenalty = p; return this; }
  /** Penalty window in tokens; -1 the whole sequence, 0 off (default 64). */
  public GenerateOptions repeatLastN(int n) { repeatLastN = n; return this; }
  /** Alternatives reported with each token's log-probability (0..20). */
  public GenerateOptions topLogprobs(int n) { topLogprobs = n; return this; }
  public GenerateOptions seed(long s) { seed = s; return this; }
  public GenerateOptions ignoreEos(boolean b) { ignoreEos = b; return this; }
  /** A Generation records each token's log-probabilities (Generation.logprobs()). */
  public GenerateOptions logprobs(boolean b) { logprobs = b; return this; }
  /** A Generation renders control tokens as their text. */
  public GenerateOptions special(boolean b) { special = b; return this; }
  /** GBNF grammar the text must follow (null: none). */
  public GenerateOptions grammar(String g) { grammar = g; return this; }
  /** JSON Schema the text must follow (null: none); at most one of grammar and jsonSchema. */
  public GenerateOptions jsonSchema(String s) { jsonSchema = s; return this; }
  /** A stop string: generation ends before it, and it is not returned. */
  public GenerateOptions stop(String s) { stop.add(s); return this; }
  /** A token id that stops the generation. */
  public GenerateOptions stopId(int id) { stopIds.add(id); return this; }

  /** The native settings (the caller deletes them). */
  GenerateParams toNative() {
    GenerateParams p = new GenerateParams();
    try {
      p.setTemperature(temperature);
      p.setSeed(seed);
      p.setTop_k(topK);
      p.setTop_p(topP);
      p.setMin_p(minP);
      p.setRepeat_penalty(repeatPenalty);
      p.setFrequency_penalty(frequencyPenalty);
      p.setPresence_penalty(presencePenalty);
      p.setRepeat_last_n(repeatLastN);
      p.setN_top_logprobs(topLogprobs);
      p.setMax_new_tokens(maxTokens);
      p.setIgnore_eos(ignoreEos);
      p.setLogprobs(logprobs);
      p.setSpecial(special);
      p.setGrammar(Native.optional(grammar));
      p.setJson_schema(Native.optional(jsonSchema));
      for (String s : stop) p.add_stop(Native.bytes(s));
      for (int id : stopIds) p.add_stop_id(id);
    } catch (RuntimeException e) {
      p.delete();
      throw e;
    }
    return p;
  }
}
