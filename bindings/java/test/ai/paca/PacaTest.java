package ai.paca;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The Java binding against the C results of the same requests (examples/c/generate.c, i.e.
 * paca_generator from C): load, tokenize round trip, greedy and seeded generation, streaming,
 * stop strings, error mapping, closing twice, and every native handle freed.
 */
class PacaTest {
  static String models() {
    String d = System.getenv("PACA_SHARED_DIR");
    if (d == null || d.isEmpty()) d = System.getenv("PACA_SHARED_DEFAULT");
    return d == null ? null : d + "/models";
  }

  static String stories() {
    String m = models();
    String p = m == null ? null : m + "/stories260K/stories260K.bin";
    assumeTrue(p != null && new File(p).exists(), "../shared test models not found");
    return p;
  }

  /** Result of the C example: ids on stderr ("tokens: a,b,c"), text on stdout. */
  static final class C {
    int[] tokens = new int[0];
    String text;
    String err;
    int rc;
  }

  static C runC(String... args) throws IOException, InterruptedException {
    String exe = System.getenv("PACA_EXAMPLE_GENERATE");
    assumeTrue(exe != null && new File(exe).exists(), "examples/c/generate.c not built");
    List<String> cmd = new ArrayList<>();
    cmd.add(exe);
    cmd.addAll(Arrays.asList(args));
    Path out = Files.createTempFile("paca", ".out");
    Path err = Files.createTempFile("paca", ".err");
    Process p = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
    C c = new C();
    c.rc = p.waitFor();
    String o = new String(Files.readAllBytes(out), StandardCharsets.UTF_8);
    c.text = o.isEmpty() ? o : o.substring(0, o.length() - 1);
    c.err = new String(Files.readAllBytes(err), StandardCharsets.UTF_8);
    Matcher m = Pattern.compile("tokens: ([0-9,]+)").matcher(c.err);
    if (m.find()) c.tokens = Arrays.stream(m.group(1).split(",")).mapToInt(Integer::parseInt).toArray();
    Files.delete(out);
    Files.delete(err);
    return c;
  }

  @AfterEach
  void everyHandleWasFreed() {
    assertEquals(0, Paca.liveHandles());
  }

  @Test
  void missingFileThrowsWithTheCMessage() throws Exception {
    PacaException e = assertThrows(PacaException.class, () -> new Model("/nonexistent/model.bin"));
    assertEquals(PacaException.IO, e.status());
    assertEquals("PACA_ERR_IO", e.statusName());
    C c = runC("/nonexistent/model.bin");
    assertEquals(1, c.rc);
    assertEquals("load failed: " + e.getMessage(), c.err.trim());
  }

  @Test
  void tokenizeRoundTripMatchesGolden() throws Exception {
    String path = stories();
    String golden = new String(Files.readAllBytes(Path.of(models(), "stories260K", "golden.json")), StandardCharsets.UTF_8);
    Matcher m = Pattern.compile("\"prompt_tokens\":\\s*\\[([0-9,\\s]+)\\]").matcher(golden);
    assertTrue(m.find());
    int[] want = Arrays.stream(m.group(1).split(",")).map(String::trim).mapToInt(Integer::parseInt).toArray();
    try (Model model = new Model(path)) {
      assertArrayEquals(want, model.tokenize("Once upon a time"));
      assertEquals("Once upon a time", model.detokenize(want));
      assertEquals(512, model.vocabSize());
    }
  }

  @Test
  void greedyEqualsC() throws Exception {
    String path = stories();
    C c = runC(path, "Once upon a time", "40");
    try (Model model = new Model(path)) {
      Completion r = model.complete("Once upon a time", new GenerateOptions().maxTokens(40));
      assertArrayEquals(c.tokens, r.tokens);
      assertEquals(c.text, r.text);
      assertEquals("length", r.stopReason);
    }
  }

  @Test
  void seededSamplingEqualsC() throws Exception {
    String path = stories();
    for (long seed : new long[] {7, 12345}) {
      C c = runC(path, "Once upon a time", "48", "0.8", Long.toString(seed));
      try (Model model = new Model(path)) {
        Completion r = model.complete("Once upon a time", new GenerateOptions().maxTokens(48).temperature(0.8f).seed(seed));
        assertArrayEquals(c.tokens, r.tokens);
        assertEquals(c.text, r.text);
      }
    }
  }

  @Test
  void completeBatchEqualsCompleteAlone() throws Exception {
    String path = stories();
    List<String> prompts = Arrays.asList("Once upon a time", "The little dog", "Lily liked to", "One day");
    List<GenerateOptions> options = new ArrayList<>();
    for (long seed : new long[] {3, 4, 5, 6}) {
      options.add(new GenerateOptions().maxTokens(40).temperature(0.9f).topP(0.95f).seed(seed).stop("."));
    }
    try (Model model = new Model(path, 2)) {
      List<Completion> alone = new ArrayList<>();
      for (int i = 0; i < prompts.size(); ++i) alone.add(model.complete(prompts.get(i), options.get(i)));
      List<Completion> batch = model.completeBatch(prompts, options);
      assertEquals(prompts.size(), batch.size());
      for (int i = 0; i < prompts.size(); ++i) {
        assertArrayEquals(alone.get(i).tokens, batch.get(i).tokens, "prompt " + i);
        assertEquals(alone.get(i).text, batch.get(i).text, "prompt " + i);
        assertEquals(alone.get(i).stopReason, batch.get(i).stopReason, "prompt " + i);
      }
      // the prompts really differ, and the stop string ended some
      assertEquals(prompts.size(), alone.stream().map(c -> Arrays.toString(c.tokens)).distinct().count());
      assertTrue(alone.stream().anyMatch(c -> "stop_string".equals(c.stopReason)));
      // one options object for all: the same as complete with it
      GenerateOptions greedy = new GenerateOptions().maxTokens(12);
      List<Completion> same = model.completeBatch(prompts.subList(0, 2), greedy);
      assertArrayEquals(model.complete(prompts.get(1), greedy).tokens, same.get(1).tokens);
      assertTrue(model.completeBatch(new ArrayList<>(), greedy).isEmpty());
      assertThrows(IllegalArgumentException.class, () -> model.completeBatch(prompts, options.subList(0, 2)));
    }
  }

  @Test
  void streamingGivesTheSameTextInPieces() throws Exception {
    String path = stories();
    C c = runC(path, "Once upon a time", "60", "0", "0", "Lily");
    try (Model model = new Model(path)) {
      GenerateOptions o = new GenerateOptions().maxTokens(60).stop("Lily");
      List<String> pieces = new ArrayList<>();
      try (Generation g = model.generate("Once upon a time", o)) {
        Iterator<String> it = g;
        while (it.hasNext()) pieces.add(it.next());
        assertEquals("stop_string", g.stopReason());
        assertArrayEquals(c.tokens, g.tokens());
      }
      assertTrue(pieces.size() > 3);
      assertEquals(c.text, String.join("", pieces));
      String viaStream;
      try (java.util.stream.Stream<String> s = model.stream("Once upon a time", o)) {
        viaStream = s.collect(Collectors.joining());
      }
      assertEquals(c.text, viaStream);
      // a generation abandoned half way is freed by close()
      try (Generation g = model.generate("Once upon a time", o)) {
        assertTrue(g.hasNext());
        g.next();
      }
    }
  }

  @Test
  void sessionErrorsAndLogits() throws Exception {
    String path = stories();
    try (Model model = new Model(path); Session s = model.newSession(4)) {
      PacaException e = assertThrows(PacaException.class, () -> s.prefill(new int[] {1, 1 << 20}));
      assertEquals(PacaException.INVALID_ARGUMENT, e.status());
      assertTrue(e.getMessage().contains("vocabulary"), e.getMessage());
      assertEquals(PacaException.CONTEXT_FULL, assertThrows(PacaException.class, () -> s.prefill(new int[] {1, 2, 3, 4, 5})).status());
      assertEquals(PacaException.STATE, assertThrows(PacaException.class, s::logits).status());
      s.prefill(model.tokenize("Once upon"));
      float[] logits = s.logits();
      assertEquals(512, logits.length);
      int best = 0;
      for (int i = 1; i < logits.length; ++i) if (logits[i] > logits[best]) best = i;
      try (Generation g = s.generate(new int[0], new GenerateOptions().maxTokens(1))) {
        g.complete();
        assertEquals(best, g.tokens()[0]);  // greedy picks the argmax of the logits
      }
    }
  }

  @Test
  void closingTwiceIsHarmless() throws Exception {
    String path = stories();
    Model m = new Model(path);
    Session s = m.newSession();
    assertEquals(2, Paca.liveHandles());
    m.close();
    m.close();
    s.prefill(new int[] {1, 403});  // the session keeps the model's memory alive
    s.close();
    s.close();
    assertThrows(IllegalStateException.class, () -> s.prefill(new int[] {1}));
    assertFalse(Paca.version().isEmpty());
  }
}
