package ai.paca;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The rest of the C ABI through the Java classes: token pieces and attributes, the streaming
 * detokenizer, chat templates and tool calls, the Sampler (logit bias, logprobs, stop reasons),
 * the StopMatcher, session tokens / fork / snapshots / prompt cache / cancel, generation logprobs
 * and grammar, the engine's logit bias, GGUF quantization and the log queue. Expectations come
 * from another route through the library (a fresh session, the logits read back, plain
 * tokenization) or from ../shared/models, never from a recorded run; bad input is a
 * PacaException.
 */
class AbiTest {
  @TempDir Path tmp;

  @AfterEach
  void everyHandleWasFreed() {
    assertEquals(0, Paca.liveHandles());
  }

  static String model(String rel) {
    String m = PacaTest.models();
    String p = m == null ? null : m + "/" + rel;
    assumeTrue(p != null && new File(p).exists(), "../shared test model " + rel + " not found");
    return p;
  }

  static int argmax(float[] l, int banned) {
    int best = -1;
    for (int i = 0; i < l.length; ++i) if (i != banned && (best < 0 || l[i] > l[best])) best = i;
    return best;
  }

  static boolean validUtf8(byte[] b) {
    try {
      StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(b));
      return true;
    } catch (CharacterCodingException e) {
      return false;
    }
  }

  /** Whether b begins at a character boundary and ends inside a character. */
  static boolean startsButDoesNotFinish(byte[] b) {
    if (b.length == 0 || (b[0] & 0xC0) == 0x80) return false;
    int i = b.length - 1;
    while (i > 0 && (b[i] & 0xC0) == 0x80) --i;
    int lead = b[i] & 0xFF;
    int need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return i + need > b.length;
  }

  static int status(Runnable r) {
    return assertThrows(PacaException.class, r::run).status();
  }

  static boolean has(String json, String regex) {
    return Pattern.compile(regex).matcher(json).find();
  }

  @Test
  void abiVersionAndDescription() {
    assertEquals(Long.parseLong(Paca.version().split("\\.")[0]), Paca.abiVersion());  // SOVERSION = major
    try (Model m = new Model(PacaTest.stories())) {
      String d = m.describeJson();
      assertTrue(d.startsWith("{") && d.endsWith("}"), d);
      assertTrue(has(d, "\"fingerprint\""), d);
      assertTrue(d.contains("512"), d);  // the vocabulary size README.md gives
    }
  }

  static double relativeL2(float[] x, float[] y) {
    double num = 0, den = 0;
    for (int i = 0; i < x.length; ++i) {
      num += (x[i] - y[i]) * (x[i] - y[i]);
      den += x[i] * x[i];
    }
    return Math.sqrt(num / den);
  }

  static float[] logitsOf(Model m, String text) {
    try (Session s = m.newSession()) {
      s.prefill(m.tokenize(text));
      return s.logits();
    }
  }

  @Test
  void modelInfoAndOptions() {
    String stories = PacaTest.stories();
    try (Model m = new Model(stories)) {
      ModelInfo i = m.info();  // README.md: dim 64, 5 layers, 8 heads, 4 kv heads, ffn 172, vocab 512, context 512
      assertEquals(2, i.format);
      assertArrayEquals(new int[] {512, 64, 5, 8, 4, 8, 172, 512},
                        new int[] {i.vocabSize, i.dim, i.layers, i.heads, i.kvHeads, i.headDim, i.ffnDim, i.maxContext});
      assertEquals(1, i.bosId);
      assertTrue(i.params > 0 && i.weightBytes > 0 && i.kvBytesPerToken > 0);
      float[] base = logitsOf(m, "Once upon a time");
      // an explicit tokenizer file, the one beside the checkpoint: the same ids
      try (Model t = new Model(stories, new ModelOptions().tokenizerPath(model("stories260K/tok512.bin")))) {
        assertArrayEquals(m.tokenize("Once upon a time, Lily"), t.tokenize("Once upon a time, Lily"));
      }
      // two tensor-parallel ranks in this process: the logits of one (float rounding)
      try (Model tp = new Model(stories, new ModelOptions().tensorParallel(2).threads(2))) {
        assertTrue(relativeL2(base, logitsOf(tp, "Once upon a time")) < 1e-4);
      }
      try (Model bf = new Model(stories, new ModelOptions().kvDtype(ModelOptions.KV_BF16))) {
        assertTrue(relativeL2(base, logitsOf(bf, "Once upon a time")) < 2e-2);
        assertEquals(i.kvBytesPerToken / 2, bf.info().kvBytesPerToken);
      }
      try (Model f32 = new Model(stories, new ModelOptions().kvDtype(ModelOptions.KV_F32))) {
        assertArrayEquals(base, logitsOf(f32, "Once upon a time"));  // f32 is the CPU default
      }
      try (Model rd = new Model(stories, new ModelOptions().loadMode(ModelOptions.LOAD_READ));
          Model mm = new Model(stories, new ModelOptions().loadMode(ModelOptions.LOAD_MMAP))) {
        assertEquals(ModelOptions.LOAD_READ, rd.info().loadMode);
        assertEquals(ModelOptions.LOAD_MMAP, mm.info().loadMode);
      }
    }
    try (Model m = new Model(model("tiny-llama31"))) {
      ModelInfo i = m.info();  // README.md: head_dim 8, 'llama3' rope scaling, eos ids [128001, 128008, 128009]
      assertEquals(0, i.format);
      assertEquals(8, i.headDim);
      assertEquals(1, i.ropeScaling);
      assertArrayEquals(new int[] {128001, 128008, 128009}, java.util.Arrays.stream(i.eosIds).sorted().toArray());
    }
    assertEquals(PacaException.INVALID_ARGUMENT, status(() -> new Model(stories, new ModelOptions().cpuIsa("bogus"))));
    assertEquals(PacaException.INVALID_ARGUMENT, status(() -> new Model(stories, new ModelOptions().kvMemoryFraction(2f))));
    assertEquals(PacaException.INVALID_ARGUMENT, status(() -> new Model(stories, new ModelOptions().device("cpu\0x"))));
    assertEquals(PacaException.INVALID_ARGUMENT, status(() -> new Model(null, new ModelOptions())));
  }

  @Test
  void piecesJoinToTheTextAndTheDetokenizerNeverSplitsACharacter() throws Exception {
    String text = "Llamas 🦙 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢, naïve 世界";
    try (Model m = new Model(model("tiny-llama3"))) {
      int[] ids = m.tokenize(text, false, false);
      ByteArrayOutputStream joined = new ByteArrayOutputStream();
      boolean split = false;
      for (int id : ids) {
        byte[] piece = m.tokenToPiece(id, false);
        split |= !validUtf8(piece);
        joined.write(piece);
      }
      assertTrue(split, "some token holds part of a character");
      assertEquals(text, new String(joined.toByteArray(), StandardCharsets.UTF_8));
      try (Detokenizer d = m.newDetokenizer(false, false)) {
        StringBuilder sb = new StringBuilder();
        for (int id : ids) {
          String piece = d.push(id);
          assertFalse(piece.contains("\uFFFD"), "a piece ends inside a character");
          sb.append(piece);
        }
        sb.append(d.flush());
        assertEquals(text, sb.toString());
        assertEquals(PacaException.INVALID_ARGUMENT, status(() -> d.push(-3)));
        assertEquals(PacaException.INVALID_ARGUMENT, status(() -> d.push(1 << 30)));
        // a piece that starts a character it does not finish: held back, then flushed as U+FFFD
        int partial = -1;
        for (int id : ids) if (startsButDoesNotFinish(m.tokenToPiece(id, false))) { partial = id; break; }
        assertTrue(partial >= 0, "some piece ends inside a character");
        assertFalse(d.push(partial).contains("\uFFFD"));
        assertEquals("\uFFFD", d.flush());
      }
      Detokenizer closed = m.newDetokenizer(false, false);
      closed.close();
      closed.close();
      assertThrows(IllegalStateException.class, () -> closed.push(ids[0]));
    }
  }

  @Test
  void tokenAttributesFollowTheSpecialTokens() {
    try (Model m = new Model(model("tiny-llama31"))) {
      int bos = m.tokenize("", true, false)[0];
      int eot = m.tokenize("<|eot_id|>", false, true)[0];
      int word = m.tokenize("hello", false, false)[0];
      assertEquals(TokenAttributes.BOS | TokenAttributes.CONTROL,
                   m.tokenAttributes(bos) & (TokenAttributes.BOS | TokenAttributes.CONTROL));
      assertEquals(TokenAttributes.EOG | TokenAttributes.CONTROL,
                   m.tokenAttributes(eot) & (TokenAttributes.EOG | TokenAttributes.CONTROL));
      assertEquals(TokenAttributes.NORMAL, m.tokenAttributes(word));
      assertEquals("<|eot_id|>", new String(m.tokenToPiece(eot, true), StandardCharsets.UTF_8));
      assertEquals(0, m.tokenToPiece(eot, false).length);
      assertEquals(PacaException.INVALID_ARGUMENT, status(() -> m.tokenAttributes(-1)));
      assertEquals(PacaException.INVALID_ARGUMENT, status(() -> m.tokenToPiece(m.vocabSize(), false)));
      assertEquals(PacaException.INVALID_ARGUMENT, status(() -> m.tokenize(null)));
    }
  }

  static final String CHAT = "[{\"role\": \"user\", \"content\": \"What is the weather in Paris?\"}]";

  @Test
  void chatTemplatesRenderAndTokenize() {
    try (Model m = new Model(model("tiny-llama31"))) {
      int start = m.tokenize("<|start_header_id|>", false, true)[0];
      int end = m.tokenize("<|end_header_id|>", false, true)[0];
      int eot = m.tokenize("<|eot_id|>", false, true)[0];
      ChatOptions o = new ChatOptions().date("05 Mar 2025");
      String text = m.chatFormat(CHAT, o);
      assertTrue(text.contains("<|start_header_id|>user<|end_header_id|>"), text);
      assertTrue(text.endsWith("<|start_header_id|>assistant<|end_header_id|>\n\n"), text);
      assertTrue(text.contains("05 Mar 2025"), text);
      int[] ids = m.chatTokenize(CHAT, o);
      assertEquals(m.tokenize("", true, false)[0], ids[0]);
      assertTrue(count(ids, start) >= 2 && count(ids, end) >= 2 && count(ids, eot) >= 1);
      // the messages hold no special-token text, so plain tokenization of the text agrees
      assertArrayEquals(m.tokenize(text, false, true), ids);
      // special-token text written by a user stays text
      String sneaky = "[{\"role\": \"user\", \"content\": \"hi<|eot_id|>\"}]";
      assertEquals(count(m.chatTokenize(CHAT, o), eot), count(m.chatTokenize(sneaky, o), eot));
      String json = m.chatFormatJson(CHAT, o);
      assertTrue(has(json, "\"segments\"\\s*:\\s*\\[") && has(json, "\"user\"\\s*:\\s*true"), json);
      String tools = "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"x\","
          + " \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}}}]";
      assertTrue(m.chatFormat(CHAT, new ChatOptions().tools(tools)).contains("get_weather"));
      assertFalse(m.chatFormat(CHAT, new ChatOptions().addGenerationPrompt(false)).contains("assistant"));
      String tj = m.chatTemplateJson();
      assertTrue(has(tj, "\"style\"\\s*:\\s*\"llama3\\.1\"") && has(tj, "\"source\""), tj);
      String builtin = Paca.chatFormat(CHAT, new ChatOptions().template("builtin:llama3.1"));
      assertTrue(builtin.contains("<|start_header_id|>user<|end_header_id|>\n\nWhat is the weather in Paris?"));
      assertEquals(PacaException.INVALID_ARGUMENT, status(() -> m.chatFormat("[{\"role\": ", null)));
      assertEquals(PacaException.INVALID_ARGUMENT, status(() -> m.chatTokenize(null, null)));
      assertEquals(PacaException.INVALID_ARGUMENT, status(() -> m.chatFormat(CHAT, new ChatOptions().tools("{"))));
      assertThrows(PacaException.class, () -> Paca.chatFormat(CHAT, null));  // neither model nor template
      assertThrows(PacaException.class, () -> m.chatFormat(CHAT, new ChatOptions().template("{% if %}")));
    }
  }

  static int count(int[] ids, int id) {
    int n = 0;
    for (int x : ids) n += x == id ? 1 : 0;
    return n;
  }

  @Test
  void toolCallsAreParsed() {
    String json = Paca.parseToolCalls("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
                                      Paca.REPLY_END_EOM);
    assertTrue(has(json, "\"name\"\\s*:\\s*\"get_weather\""), json);
    assertTrue(has(json, "\"arguments\"\\s*:\\s*\\{\\s*\"city\"\\s*:\\s*\"Paris\"\\s*\\}"), json);
    assertTrue(has(json, "\"awaiting_tool_result\"\\s*:\\s*true") && has(json, "\"end\"\\s*:\\s*\"eom\""), json);
    String builtin = Paca.parseToolCalls("<|python_tag|>brave_search.call(query=\"llamas\")<|eom_id|>",
                                         Paca.REPLY_END_NONE);
    assertTrue(has(builtin, "\"type\"\\s*:\\s*\"builtin\"") && has(builtin, "\"name\"\\s*:\\s*\"brave_search\""));
    assertTrue(builtin.contains("llamas"), builtin);
    String plain = Paca.parseToolCalls("Just text, naïve.", Paca.REPLY_END_EOT);
    assertTrue(has(plain, "\"content\"\\s*:\\s*\"Just text, naïve.\"") && has(plain, "\"tool_calls\"\\s*:\\s*\\[\\s*\\]"));
    String bad = Paca.parseToolCalls("<function=f>{not json</function>", Paca.REPLY_END_EOT);
    assertTrue(has(bad, "\"malformed\"\\s*:\\s*true"), bad);
    assertEquals(PacaException.INVALID_ARGUMENT, status(() -> Paca.parseToolCalls(null, 0)));
  }

  @Test
  void samplerFollowsTheLogitsAndItsBias() {
    try (Model m = new Model(PacaTest.stories()); Session s = m.newSession();
        Sampler greedy = m.newSampler(null)) {
      assertEquals(PacaException.STATE, status(() -> greedy.sample(s)));  // no logits yet
      s.prefill(m.tokenize("Once upon a time"));
      float[] logits = s.logits();
      int best = argmax(logits, -1);
      assertEquals(best, greedy.sample(s));
      assertEquals(best, greedy.sampleLogits(logits, s.tokens()));
      // a -100 bias on the greedy token: never chosen, step after step; the next best instead
      try (Sampler biased = m.newSampler(new GenerateOptions())) {
        biased.setLogitBias(new int[] {best}, new float[] {-100f});
        for (int step = 0; step < 16; ++step) {
          float[] l = s.logits();
          int t = biased.sample(s);
          assertNotEquals(best, t);
          assertEquals(argmax(l, best), t, "step " + step);
          s.decode(t);
        }
        assertEquals(PacaException.INVALID_ARGUMENT, status(() -> biased.setLogitBias(new int[] {1 << 20}, new float[] {1f})));
        assertEquals(PacaException.INVALID_ARGUMENT, status(() -> biased.setLogitBias(new int[] {1, 2}, new float[] {1f})));
        assertEquals(PacaException.INVALID_ARGUMENT, status(() -> biased.setLogitBias(new int[] {1}, new float[] {Float.NaN})));
        assertEquals(PacaException.INVALID_ARGUMENT, status(() -> biased.setLogitBias(null, null)));
        biased.setLogitBias(new int[0], new float[0]);  // cleared
        assertEquals(argmax(s.logits(), -1), biased.sample(s));
      }
      assertEquals(PacaException.INVALID_ARGUMENT, status(() -> greedy.sampleLogits(new float[3], new int[0])));
      assertEquals(PacaException.INVALID_ARGUMENT, status(() -> greedy.sample(null)));
      assertEquals(PacaException.INVALID_ARGUMENT, status(() -> greedy.sampleLogits(null, new int[0])));
      assertEquals(PacaException.INVALID_ARGUMENT, status(() -> new Sampler(null, null)));
      assertEquals(PacaException.INVALID_ARGUMENT, status(() -> new Detokenizer(null)));
      assertEquals(PacaException.INVALID_ARGUMENT, status(() -> m.newSampler(new GenerateOptions().temperature(-1f))));
      assertEquals(PacaException.INVALID_ARGUMENT, status(() -> m.newSampler(new GenerateOptions().topP(0f))));
    }
  }

  @Test
  void samplerLogprobsAreTheLogSoftmaxOfTheLogits() {
    try (Model m = new Model(PacaTest.stories()); Session s = m.newSession();
        Sampler sm = m.newSampler(new GenerateOptions().topLogprobs(5))) {
      s.prefill(m.tokenize("The little dog"));
      float[] l = s.logits();
      double max = Double.NEGATIVE_INFINITY, sum = 0;
      for (float x : l) max = Math.max(max, x);
      for (float x : l) sum += Math.exp(x - max);
      double lse = max + Math.log(sum);
      TokenLogprobs lp = sm.sampleWithLogprobs(s);
      assertEquals(argmax(l, -1), lp.token);
      assertEquals(l[lp.token] - lse, lp.logprob, 1e-4);
      assertEquals(5, lp.topTokens.length);
      assertEquals(lp.token, lp.topTokens[0]);
      for (int i = 0; i < 5; ++i) {
        assertEquals(l[lp.topTokens[i]] - lse, lp.topLogprobs[i], 1e-4);
        if (i > 0) assertTrue(lp.topLogprobs[i] <= lp.topLogprobs[i - 1]);
      }
    }
  }

  @Test
  void samplerStopReasons() {
    try (Model m = new Model(PacaTest.stories());
        Sampler sm = m.newSampler(new GenerateOptions().maxTokens(5).stopId(13))) {
      int eos = -1;
      for (int id = 0; id < m.vocabSize() && eos < 0; ++id) {
        if ((m.tokenAttributes(id) & TokenAttributes.EOG) != 0) eos = id;
      }
      assertTrue(eos >= 0 && eos != 13);
      assertEquals("eos", sm.stopReason(eos, 1));
      assertEquals("stop_token", sm.stopReason(13, 1));
      assertNull(sm.stopReason(100, 4));
      assertEquals("length", sm.stopReason(100, 5));
      Sampler closed = m.newSampler(null);
      closed.close();
      assertThrows(IllegalStateException.class, () -> closed.stopReason(1, 1));
    }
  }

  @Test
  void stopMatcherHoldsBackAPartialStopString() {
    try (StopMatcher sm = new StopMatcher("STOP", "end")) {
      assertEquals("abc ", sm.feed("abc ST"));
      assertEquals(-1, sm.stopIndex());
      assertEquals("", sm.feed("O"));
      assertEquals("", sm.feed("P and more"));
      assertEquals(0, sm.stopIndex());
      assertEquals("", sm.feed("later"));
      assertEquals("", sm.flush());
      sm.reset();
      assertEquals(-1, sm.stopIndex());
      assertEquals("x", sm.feed("xe"));
      assertEquals("ex", sm.feed("x"));  // "ex" cannot start "end": released
      assertEquals("", sm.feed("en"));
      assertEquals("en", sm.flush());
    }
    try (StopMatcher none = new StopMatcher()) {
      assertEquals("naïve 世界", none.feed("naïve 世界"));
    }
    assertEquals(PacaException.INVALID_ARGUMENT, status(() -> new StopMatcher("ok", "")));
    assertEquals(PacaException.INVALID_ARGUMENT, status(() -> new StopMatcher((String) null)));
    assertEquals(PacaException.INVALID_ARGUMENT, status(() -> new StopMatcher((String[]) null)));
  }

  @Test
  void stopMatcherOverGeneratedPiecesCutsWhereTheTextSays() {
    try (Model m = new Model(PacaTest.stories())) {
      List<String> pieces = new ArrayList<>();
      try (Generation g = m.generate("Once upon a time", new GenerateOptions().maxTokens(60))) {
        while (g.hasNext()) pieces.add(g.next());
      }
      String all = String.join("", pieces);
      String stop = "Lily";
      int at = all.indexOf(stop);
      assumeTrue(at > 0, "the story names Lily");
      StringBuilder shown = new StringBuilder();
      try (StopMatcher sm = new StopMatcher(stop)) {
        for (String p : pieces) shown.append(sm.feed(p));
        shown.append(sm.flush());
        assertEquals(0, sm.stopIndex());
      }
      assertEquals(all.substring(0, at), shown.toString());
    }
  }

  @Test
  void sessionTokensContextAndCancel() throws Exception {
    try (Model m = new Model(PacaTest.stories()); Session s = m.newSession(64); Session d = m.newSession()) {
      assertEquals(64, s.contextSize());
      assertEquals(512, d.contextSize());  // stories260K's context (README.md)
      assertEquals(0, s.tokens().length);
      int[] prompt = m.tokenize("Once upon a time");
      s.prefill(prompt);
      assertArrayEquals(prompt, s.tokens());
      s.decode(400);
      assertEquals(prompt.length + 1, s.tokens().length);
      assertEquals(400, s.tokens()[prompt.length]);
      // cancel from another thread at any time: every step either runs or leaves the session as it was
      s.rewind(0);
      d.cancel();  // idle: cleared when the next step starts
      d.prefill(prompt);
      AtomicBoolean stop = new AtomicBoolean();
      Thread canceller = new Thread(() -> {
        while (!stop.get()) s.cancel();
      });
      canceller.start();
      int cancelled = 0;
      try {
        for (int i = 0; i < 200 && s.length() < 60; ++i) {
          long before = s.length();
          try {
            s.decode(1 + i % 400);
            assertEquals(before + 1, s.length());
          } catch (PacaException e) {
            assertEquals(PacaException.CANCELLED, e.status());
            assertEquals(before, s.length());
            ++cancelled;
          }
        }
      } finally {
        stop.set(true);
        canceller.join();
      }
      s.rewind(0);
      s.prefill(prompt);  // usable afterwards
      assertArrayEquals(d.logits(), s.logits());
      System.out.println("cancelled steps: " + cancelled);
    }
    Session closed;
    try (Model m = new Model(PacaTest.stories())) {
      closed = m.newSession();
    }
    closed.close();
    closed.cancel();  // harmless
  }

  @Test
  void forkContinuesLikeTheParent() {
    try (Model m = new Model(PacaTest.stories()); Session parent = m.newSession()) {
      int[] prompt = m.tokenize("Lily liked to");
      parent.prefill(prompt);
      try (Session child = parent.fork()) {
        assertArrayEquals(parent.tokens(), child.tokens());
        assertArrayEquals(parent.logits(), child.logits());
        GenerateOptions greedy = new GenerateOptions().maxTokens(20);
        Completion c, p;
        try (Generation g = child.generate(new int[0], greedy)) {
          c = g.complete();
        }
        try (Generation g = parent.generate(new int[0], greedy)) {
          p = g.complete();
        }
        assertArrayEquals(p.tokens, c.tokens);
        assertEquals(p.text, c.text);
        assertArrayEquals(m.complete("Lily liked to", greedy).tokens, c.tokens);  // a fresh session agrees
      }
      assertEquals(PacaException.INVALID_ARGUMENT, status(() -> parent.prefill(null)));
    }
  }

  @Test
  void saveThenLoadReproducesTheNextTokens() throws Exception {
    String snap = tmp.resolve("s.snap").toString();
    try (Model m = new Model(PacaTest.stories()); Session s = m.newSession();
        Sampler seeded = m.newSampler(new GenerateOptions().temperature(0.9f).seed(11))) {
      s.prefill(m.tokenize("One day"));
      s.save(snap, seeded);
      try (Session back = m.loadSession(snap)) {
        assertArrayEquals(s.tokens(), back.tokens());
        assertArrayEquals(s.logits(), back.logits());
      }
      try (LoadedSession ls = m.loadSessionWithSampler(snap)) {
        assertNotNull(ls.sampler());
        Session a = ls.session();
        for (int i = 0; i < 12; ++i) {
          int want = seeded.sample(s);
          assertEquals(want, ls.sampler().sample(a), "step " + i);
          s.decode(want);
          a.decode(want);
        }
      }
      String plain = tmp.resolve("plain.snap").toString();
      s.save(plain);
      try (LoadedSession ls = m.loadSessionWithSampler(plain)) {
        assertNull(ls.sampler());
        assertArrayEquals(s.tokens(), ls.session().tokens());
      }
      assertEquals(PacaException.IO, status(() -> m.loadSession(tmp.resolve("missing.snap").toString())));
      Path junk = tmp.resolve("junk.snap");
      Files.write(junk, "not a snapshot at all".getBytes(StandardCharsets.UTF_8));
      assertEquals(PacaException.FORMAT, status(() -> m.loadSession(junk.toString())));
      byte[] whole = Files.readAllBytes(Path.of(snap));
      Path cut = tmp.resolve("cut.snap");
      Files.write(cut, java.util.Arrays.copyOf(whole, whole.length / 2));
      assertEquals(PacaException.FORMAT, status(() -> m.loadSessionWithSampler(cut.toString())));
      assertEquals(PacaException.INVALID_ARGUMENT, status(() -> s.save("bad\0path")));
      assertEquals(PacaException.INVALID_ARGUMENT, status(() -> m.loadSession(null)));
      assertThrows(PacaException.class, () -> s.save(tmp.resolve("no/such/dir/x.snap").toString()));
    }
  }

  @Test
  void promptCacheReusesTheSavedPrefix() throws Exception {
    String cache = tmp.resolve("cache.snap").toString();
    try (Model m = new Model(PacaTest.stories()); Session ref = m.newSession()) {
      int[] prefix = m.tokenize("Once upon a time, there was");
      int[] longer = m.tokenize("Once upon a time, there was a little dog");
      ref.prefill(longer);
      try (Session s = m.newSession()) {
        assertEquals(0, s.prefillCached(cache, prefix));  // no cache yet: a miss
        s.save(cache);
        assertEquals(PacaException.STATE, status(() -> s.prefillCached(cache, prefix)));  // not empty
      }
      try (Session s = m.newSession()) {
        assertEquals(prefix.length, s.prefillCached(cache, prefix));  // full hit
        assertArrayEquals(prefix, s.tokens());
      }
      try (Session s = m.newSession()) {
        long reused = s.prefillCached(cache, longer);
        assertTrue(reused > 0 && reused <= prefix.length, "reused " + reused);
        assertArrayEquals(longer, s.tokens());
        float[] a = s.logits(), b = ref.logits();
        for (int i = 0; i < a.length; ++i) assertEquals(b[i], a[i], 1e-4f * Math.max(1f, Math.abs(b[i])));
      }
    }
  }

  @Test
  void generationCountsAndLogprobs() {
    try (Model m = new Model(PacaTest.stories()); Session s = m.newSession()) {
      int[] prompt = m.tokenize("Tom and Sue");
      s.prefill(prompt);
      float[] first = s.logits();
      try (Generation g = s.generate(new int[0], new GenerateOptions().maxTokens(10).ignoreEos(true).logprobs(true).topLogprobs(3))) {
        int n = 0;
        while (g.hasNext()) {
          g.next();
          assertEquals(g.tokens().length, g.nGenerated());
          ++n;
        }
        assertTrue(n > 0);
        List<TokenLogprobs> lps = g.logprobs();
        int[] toks = g.tokens();
        assertEquals(10, toks.length);
        assertEquals(toks.length, lps.size());
        for (int i = 0; i < toks.length; ++i) {
          assertEquals(toks[i], lps.get(i).token);
          assertEquals(toks[i], lps.get(i).topTokens[0]);  // greedy
          assertEquals(3, lps.get(i).topTokens.length);
        }
        assertEquals(argmax(first, -1), toks[0]);
      }
      try (Generation g = m.generate("Tom", new GenerateOptions().maxTokens(3))) {
        g.complete();
        assertEquals(PacaException.STATE, status(g::logprobs));
      }
    }
  }

  @Test
  void grammarAndStopIdsShapeTheGeneration() {
    try (Model m = new Model(PacaTest.stories())) {
      Completion c = m.complete("Once upon a time", new GenerateOptions().maxTokens(20).grammar("root ::= \"yes\" | \"no\""));
      assertTrue(c.text.trim().equals("yes") || c.text.trim().equals("no"), c.text);
      assertEquals("eos", c.stopReason);
      int[] free = m.complete("Once upon a time", new GenerateOptions().maxTokens(20)).tokens;
      Completion stopped = m.complete("Once upon a time", new GenerateOptions().maxTokens(20).stopId(free[3]));
      assertEquals("stop_token", stopped.stopReason);
      assertEquals(free[3], stopped.tokens[stopped.tokens.length - 1]);
      assertTrue(stopped.tokens.length <= 4);
      assertEquals(PacaException.INVALID_ARGUMENT,
                   status(() -> m.complete("x", new GenerateOptions().grammar("root ::= ("))));
      assertEquals(PacaException.INVALID_ARGUMENT,
                   status(() -> m.complete("x", new GenerateOptions().grammar("root ::= \"a\"\0"))));
    }
  }

  @Test
  void engineRequestLogitBiasBansTheGreedyToken() {
    try (Model m = new Model(PacaTest.stories()); Session s = m.newSession(); Engine e = new Engine(m)) {
      int[] prompt = m.tokenize("The little dog");
      s.prefill(prompt);
      int best = argmax(s.logits(), -1);
      int second = argmax(s.logits(), best);
      Request banned = e.submit(prompt, new GenerateOptions().maxTokens(8),
                                new RequestOptions().logitBias(new int[] {best}, new float[] {-100f}));
      Completion c = banned.complete();
      assertEquals(second, c.tokens[0]);
      for (int t : c.tokens) assertNotEquals(best, t);
      Request forced = e.submit(prompt, new GenerateOptions().maxTokens(4),
                                new RequestOptions().logitBias(new int[] {77}, new float[] {100f}));
      for (int t : forced.complete().tokens) assertEquals(77, t);
      assertEquals(PacaException.INVALID_ARGUMENT, status(() -> e.submit(prompt, new GenerateOptions(),
          new RequestOptions().logitBias(new int[] {1 << 20}, new float[] {1f}))));
      assertEquals(PacaException.INVALID_ARGUMENT, status(() -> e.submit(prompt, new GenerateOptions(),
          new RequestOptions().logitBias(new int[] {1, 2}, new float[] {1f}))));
      assertEquals(PacaException.INVALID_ARGUMENT, status(() -> e.submit((int[]) null, new GenerateOptions())));
    }
  }

  @Test
  void quantizedGgufLoadsAndAgrees() throws Exception {
    String in = model("gguf/tiny-llama2.gguf");
    String out = tmp.resolve("q8.gguf").toString();
    String summary = Paca.quantizeGguf(in, out, "Q8_0", 2);
    assertTrue(has(summary, "\"mix\"\\s*:\\s*\"(?i:q8_0)\"") && has(summary, "\"Q8_0\"\\s*:\\s*[1-9]"), summary);
    assertTrue(new File(out).length() > 0 && new File(out).length() < new File(in).length());
    try (Model a = new Model(in); Model b = new Model(out); Session sa = a.newSession(); Session sb = b.newSession()) {
      int[] p = a.tokenize("Hello world");
      assertArrayEquals(p, b.tokenize("Hello world"));  // the vocabulary is kept
      sa.prefill(p);
      sb.prefill(p);
      double err = relativeL2(sa.logits(), sb.logits());
      assertTrue(err < 0.05, "relative L2 " + err);
    }
    assertEquals(PacaException.INVALID_ARGUMENT, status(() -> Paca.quantizeGguf(in, out, "q3_zz", 1)));
    assertEquals(PacaException.UNSUPPORTED, status(() -> Paca.quantizeGguf(PacaTest.stories(), out, "q8_0", 1)));
    assertThrows(PacaException.class, () -> Paca.quantizeGguf(tmp.resolve("none.gguf").toString(), out, "q8_0", 1));
  }

  @Test
  void logLinesReachTheQueue() throws Exception {
    Path junk = tmp.resolve("junk-cache.snap");
    Files.write(junk, "garbage".getBytes(StandardCharsets.UTF_8));
    Paca.takeLog();
    Paca.captureLog(Paca.LOG_DEBUG);
    try (Model m = new Model(PacaTest.stories()); Session s = m.newSession()) {
      assertEquals(0, s.prefillCached(junk.toString(), m.tokenize("Once")));  // a corrupt cache: a warning
    } finally {
      Paca.logToStderr(Paca.LOG_WARN);
    }
    List<Paca.LogLine> lines = Paca.takeLog();
    assertTrue(lines.stream().anyMatch(l -> l.level == Paca.LOG_WARN && l.message.contains("prompt cache")),
               lines.toString());
    try (Model m = new Model(PacaTest.stories()); Session s = m.newSession()) {
      Paca.captureLog(Paca.LOG_ERROR);  // warnings dropped
      s.prefillCached(junk.toString(), m.tokenize("Once"));
      Paca.logToStderr(Paca.LOG_WARN);
    }
    assertTrue(Paca.takeLog().stream().noneMatch(l -> l.message.contains("prompt cache")));
  }
}
