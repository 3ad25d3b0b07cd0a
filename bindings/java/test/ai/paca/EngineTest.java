package ai.paca;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The Java Engine (paca_engine) against lone generations: several requests at once give
 * Model.complete's tokens, text and stop reasons for the same seeds, events and a stop string,
 * cancel, statistics and the prefix cache, manual steps, bad arguments as PacaException, and
 * closing the engine while another thread waits on a request.
 */
class EngineTest {
  static final List<String> PROMPTS =
      Arrays.asList("Once upon a time", "The little dog", "Lily liked to", "One day", "Tom and Sue");

  @AfterEach
  void everyHandleWasFreed() {
    assertEquals(0, Paca.liveHandles());
  }

  static GenerateOptions sampled(long seed) {
    return new GenerateOptions().maxTokens(40).temperature(0.9f).topP(0.95f).seed(seed).stop(".");
  }

  @Test
  void requestsAtOnceGiveALoneGenerationsTokens() {
    try (Model model = new Model(PacaTest.stories(), 1);
        Engine engine = new Engine(model, new EngineOptions().maxStepTokens(8))) {
      List<Completion> alone = new ArrayList<>();
      for (int i = 0; i < PROMPTS.size(); ++i) alone.add(model.complete(PROMPTS.get(i), sampled(i)));
      List<Request> reqs = new ArrayList<>();
      for (int i = 0; i < PROMPTS.size(); ++i) {
        reqs.add(engine.submit(PROMPTS.get(i), sampled(i), new RequestOptions().logprobs(true)));
      }
      for (int i = PROMPTS.size() - 1; i >= 0; --i) {  // drained in another order
        Completion got = reqs.get(i).complete();
        assertArrayEquals(alone.get(i).tokens, got.tokens, "request " + i);
        assertEquals(alone.get(i).text, got.text, "request " + i);
        assertEquals(alone.get(i).stopReason, got.stopReason, "request " + i);
        float[] lp = reqs.get(i).logprobs();
        assertEquals(got.tokens.length, lp.length);
        for (float x : lp) assertTrue(x <= 0f);
        assertEquals(got.tokens.length, reqs.get(i).stats().generatedTokens);
        assertTrue(reqs.get(i).done());
      }
      assertEquals(PROMPTS.size(), alone.stream().map(c -> Arrays.toString(c.tokens)).distinct().count());
      assertTrue(alone.stream().anyMatch(c -> "stop_string".equals(c.stopReason)));
    }
  }

  @Test
  void eventsAndAStopString() {
    try (Model model = new Model(PacaTest.stories(), 1); Engine engine = new Engine(model)) {
      GenerateOptions o = new GenerateOptions().maxTokens(60).stop("Lily");
      Completion want = model.complete("Once upon a time", o);
      assertEquals("stop_string", want.stopReason);
      try (Request r = engine.submit("Once upon a time", o)) {
        List<RequestEvent> events = new ArrayList<>();
        r.forEachRemaining(events::add);
        RequestEvent last = events.get(events.size() - 1);
        assertTrue(last.last);
        assertEquals("stop_string", last.stopReason);
        assertEquals(5, last.stats.promptTokens);
        for (RequestEvent e : events.subList(0, events.size() - 1)) {
          assertFalse(e.last);
          assertNull(e.stopReason);
          assertNull(e.stats);
        }
        StringBuilder sb = new StringBuilder();
        for (RequestEvent e : events) sb.append(e.text);
        assertEquals(want.text, sb.toString());
        assertFalse(sb.toString().contains("Lily"));
        assertArrayEquals(want.tokens, r.tokens());
        assertFalse(r.hasNext());
        assertNull(r.poll(0));
      }
    }
  }

  @Test
  void cancelEndsARequestWithCancelled() {
    try (Model model = new Model(PacaTest.stories(), 1); Engine engine = new Engine(model)) {
      Request r = engine.submit("Once upon a time", new GenerateOptions().maxTokens(0).ignoreEos(true));
      Request other = engine.submit("One day", new GenerateOptions().maxTokens(12));
      assertNotNull(r.poll(-1));
      r.cancel();
      PacaException e = assertThrows(PacaException.class, () -> r.forEachRemaining(ev -> {}));
      assertEquals(PacaException.CANCELLED, e.status());
      assertEquals("PACA_ERR_CANCELLED", e.statusName());
      assertTrue(r.done());
      assertNotNull(r.stats());
      r.cancel();  // ended: harmless
      assertArrayEquals(model.complete("One day", new GenerateOptions().maxTokens(12)).tokens, other.complete().tokens);
      EngineStats st = engine.stats();
      assertEquals(2, st.submitted);
      assertEquals(2, st.finished);
      assertEquals(0, st.running + st.queued);
    }
  }

  @Test
  void statsAndTheSharedPrefix() {
    try (Model model = new Model(PacaTest.stories(), 1); Engine engine = new Engine(model)) {
      int[] prefix = model.tokenize("Once upon a time, there was a little girl named Lily. She loved to play "
          + "Once upon a time, there was a little girl named Lily. She loved to play ");
      assertTrue(prefix.length >= 32);
      int[] a = Arrays.copyOf(prefix, prefix.length + 1);
      a[prefix.length] = 403;
      int[] b = Arrays.copyOf(prefix, prefix.length + 1);
      b[prefix.length] = 500;
      GenerateOptions o = new GenerateOptions().maxTokens(8).temperature(0.7f).seed(1);
      Request first = engine.submit(a, o);
      first.complete();
      Request second = engine.submit(b, o);
      Completion got = second.complete();
      assertEquals(0, first.stats().cachedTokens);
      assertTrue(second.stats().cachedTokens >= 16 && second.stats().cachedTokens % 16 == 0);
      try (Session s = model.newSession(); Generation g = s.generate(b, o)) {
        assertArrayEquals(g.complete().tokens, got.tokens);
      }
      EngineStats st = engine.stats();
      assertEquals(2, st.submitted);
      assertEquals(16, st.generatedTokens);
      assertEquals(second.stats().cachedTokens, st.cachedTokens);
      assertEquals(16, st.kvBlockTokens);
      assertTrue(st.steps > 0 && st.kvBlocksCached > 0);
    }
  }

  @Test
  void manualStepsAndBadArguments() {
    try (Model model = new Model(PacaTest.stories(), 1)) {
      PacaException e = assertThrows(PacaException.class, () -> new Engine(model, new EngineOptions().maxRunning(0)));
      assertEquals(PacaException.INVALID_ARGUMENT, e.status());
      assertTrue(e.getMessage().contains("max_running"), e.getMessage());
      try (Engine engine = new Engine(model, new EngineOptions().manualStep(true).maxQueued(1).contextSize(16))) {
        GenerateOptions o = new GenerateOptions().maxTokens(6);
        e = assertThrows(PacaException.class, () -> engine.submit(new int[] {1, 1 << 20}, o));
        assertEquals(PacaException.INVALID_ARGUMENT, e.status());
        assertTrue(e.getMessage().contains("vocabulary"), e.getMessage());
        e = assertThrows(PacaException.class, () -> engine.submit("Once", new GenerateOptions().topP(2f)));
        assertEquals(PacaException.INVALID_ARGUMENT, e.status());
        assertEquals(PacaException.INVALID_ARGUMENT, assertThrows(PacaException.class,
            () -> engine.submit(new int[0], o)).status());
        assertEquals(PacaException.CONTEXT_FULL, assertThrows(PacaException.class,
            () -> engine.submit(new int[40], o)).status());
        Request r = engine.submit("Once upon a time", o);
        assertEquals(PacaException.BUSY, assertThrows(PacaException.class, () -> engine.submit("One day", o)).status());
        assertNull(r.poll(10));  // nothing runs until a step
        int steps = 0;
        while (engine.step() > 0) ++steps;
        assertTrue(steps >= 6);
        assertArrayEquals(model.complete("Once upon a time", o).tokens, r.complete().tokens);
      }
      try (Engine engine = new Engine(model)) {
        assertEquals(PacaException.STATE, assertThrows(PacaException.class, engine::step).status());
      }
    }
  }

  @Test
  void closingTheEngineWakesAWaiterAndTheModelWaitsForIt() throws Exception {
    Model model = new Model(PacaTest.stories(), 1);
    Engine engine = new Engine(model, new EngineOptions().manualStep(true));  // no steps: waits until close
    Request r = engine.submit("Once upon a time", new GenerateOptions().maxTokens(4));
    AtomicReference<Throwable> outcome = new AtomicReference<>();
    Thread t = new Thread(() -> {
      try {
        r.forEachRemaining(ev -> {});
      } catch (Throwable x) {
        outcome.set(x);
      }
    });
    t.start();
    Thread.sleep(200);
    assertTrue(t.isAlive());
    model.close();  // deferred: the engine still uses the model
    engine.step();
    engine.close();
    engine.close();
    t.join(10000);
    assertFalse(t.isAlive());
    assertTrue(outcome.get() instanceof IllegalStateException || outcome.get() instanceof PacaException,
        String.valueOf(outcome.get()));
    assertThrows(IllegalStateException.class, () -> engine.submit(new int[] {1}, new GenerateOptions()));
    assertThrows(IllegalStateException.class, () -> new Engine(model));
    r.close();  // harmless now
  }
}
