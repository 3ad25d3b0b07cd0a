// EngineTests.cs - the C# Engine (paca_engine) against lone generations:
// several requests at once give Model.Complete's tokens, text and stop reasons
// for the same seeds, events and a stop string, cancel, statistics and the
// prefix cache, manual steps, bad arguments as PacaException, and disposing
// the engine while another thread waits on a request. Run by PacaTests.cs's
// runner (the same partial class).
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Paca;

static partial class PacaTests
{
    static readonly string[] EnginePrompts = { "Once upon a time", "The little dog", "Lily liked to", "One day", "Tom and Sue" };

    static GenerateOptions Sampled(long seed)
    {
        var o = new GenerateOptions { MaxTokens = 40, Temperature = 0.9f, TopP = 0.95f, Seed = seed };
        o.Stop.Add(".");
        return o;
    }

    [Test]
    static void EngineRequestsAtOnceGiveALoneGenerationsTokens()
    {
        using (var model = new Model(Stories(), 1))
        using (var engine = new Engine(model, new EngineOptions { MaxStepTokens = 8 }))
        {
            var alone = EnginePrompts.Select((p, i) => model.Complete(p, Sampled(i))).ToList();
            var reqs = EnginePrompts.Select((p, i) => engine.Submit(p, Sampled(i), new RequestOptions { Logprobs = true })).ToList();
            for (int i = reqs.Count - 1; i >= 0; --i)  // drained in another order
            {
                var got = reqs[i].Complete();
                Assert.Seq(alone[i].Tokens, got.Tokens, "tokens, request " + i);
                Assert.Equal(alone[i].Text, got.Text, "text, request " + i);
                Assert.Equal(alone[i].StopReason, got.StopReason, "stop reason, request " + i);
                Assert.Equal(got.Tokens.Length, reqs[i].Logprobs.Length, "logprobs");
                Assert.True(reqs[i].Logprobs.All(x => x <= 0f), "logprobs <= 0");
                Assert.Equal(got.Tokens.Length, reqs[i].Stats.GeneratedTokens, "generated");
                Assert.True(reqs[i].Done, "done");
            }
            Assert.Equal(EnginePrompts.Length, alone.Select(c => string.Join(",", c.Tokens)).Distinct().Count(), "distinct");
            Assert.True(alone.Any(c => c.StopReason == "stop_string"), "a stop string ended one");
        }
    }

    [Test]
    static void EngineEventsAndAStopString()
    {
        using (var model = new Model(Stories(), 1))
        using (var engine = new Engine(model))
        {
            var o = new GenerateOptions { MaxTokens = 60 };
            o.Stop.Add("Lily");
            var want = model.Complete("Once upon a time", o);
            Assert.Equal("stop_string", want.StopReason, "alone");
            using (var r = engine.Submit("Once upon a time", o))
            {
                var events = r.ToList();
                var last = events[events.Count - 1];
                Assert.True(last.Last && last.StopReason == "stop_string", "last event");
                Assert.Equal(5, last.Stats.PromptTokens, "prompt tokens");
                Assert.True(events.Take(events.Count - 1).All(e => !e.Last && e.StopReason == null && e.Stats == null), "others");
                Assert.Equal(want.Text, string.Concat(events.Select(e => e.Text)), "text");
                Assert.Seq(want.Tokens, r.Tokens, "tokens");
                Assert.True(r.Poll(0) == null && !r.Any(), "nothing after the end");
            }
        }
    }

    [Test]
    static void EngineCancelEndsARequestWithCancelled()
    {
        using (var model = new Model(Stories(), 1))
        using (var engine = new Engine(model))
        {
            var r = engine.Submit("Once upon a time", new GenerateOptions { MaxTokens = 0, IgnoreEos = true });
            var other = engine.Submit("One day", new GenerateOptions { MaxTokens = 12 });
            Assert.True(r.Poll(-1) != null, "a first event");
            r.Cancel();
            var e = Assert.Throws<PacaException>(() => { foreach (var ev in r) {} });
            Assert.Equal(PacaException.Cancelled, e.Status, "status");
            Assert.Equal("PACA_ERR_CANCELLED", e.StatusName, "status name");
            Assert.True(r.Done && r.Stats != null, "ended with stats");
            r.Cancel();  // ended: harmless
            Assert.Seq(model.Complete("One day", new GenerateOptions { MaxTokens = 12 }).Tokens, other.Complete().Tokens, "other");
            var st = engine.Stats();
            Assert.Equal(2L, st.Submitted, "submitted");
            Assert.Equal(2L, st.Finished, "finished");
            Assert.Equal(0L, st.Running + st.Queued, "idle");
        }
    }

    [Test]
    static void EngineStatsAndTheSharedPrefix()
    {
        using (var model = new Model(Stories(), 1))
        using (var engine = new Engine(model))
        {
            var prefix = model.Tokenize(string.Concat(Enumerable.Repeat(
                "Once upon a time, there was a little girl named Lily. She loved to play ", 2)));
            Assert.True(prefix.Length >= 32, "a long prefix");
            var a = prefix.Concat(new[] { 403 }).ToArray();
            var b = prefix.Concat(new[] { 500 }).ToArray();
            var o = new GenerateOptions { MaxTokens = 8, Temperature = 0.7f, Seed = 1 };
            var first = engine.Submit(a, o);
            first.Complete();
            var second = engine.Submit(b, o);
            var got = second.Complete();
            Assert.Equal(0, first.Stats.CachedTokens, "first: nothing cached");
            Assert.True(second.Stats.CachedTokens >= 16 && second.Stats.CachedTokens % 16 == 0, "second: whole blocks cached");
            using (var s = model.NewSession())
            using (var g = s.Generate(b, o))
                Assert.Seq(g.Complete().Tokens, got.Tokens, "tokens with a cached prefix");
            var st = engine.Stats();
            Assert.Equal(2L, st.Submitted, "submitted");
            Assert.Equal(16L, st.GeneratedTokens, "generated");
            Assert.Equal((long)second.Stats.CachedTokens, st.CachedTokens, "cached");
            Assert.Equal(16L, st.KvBlockTokens, "block tokens");
            Assert.True(st.Steps > 0 && st.KvBlocksCached > 0, "steps, cached blocks");
        }
    }

    [Test]
    static void EngineManualStepsAndBadArguments()
    {
        using (var model = new Model(Stories(), 1))
        {
            var e = Assert.Throws<PacaException>(() => new Engine(model, new EngineOptions { MaxRunning = 0 }));
            Assert.Equal(PacaException.InvalidArgument, e.Status, "max_running 0");
            Assert.True(e.Message.Contains("max_running"), e.Message);
            using (var engine = new Engine(model, new EngineOptions { ManualStep = true, MaxQueued = 1, ContextSize = 16 }))
            {
                var o = new GenerateOptions { MaxTokens = 6 };
                e = Assert.Throws<PacaException>(() => engine.Submit(new[] { 1, 1 << 20 }, o));
                Assert.Equal(PacaException.InvalidArgument, e.Status, "bad id");
                Assert.True(e.Message.Contains("vocabulary"), e.Message);
                Assert.Equal(PacaException.InvalidArgument,
                             Assert.Throws<PacaException>(() => engine.Submit("Once", new GenerateOptions { TopP = 2f })).Status, "top_p");
                Assert.Equal(PacaException.InvalidArgument, Assert.Throws<PacaException>(() => engine.Submit(new int[0], o)).Status, "empty");
                Assert.Equal(PacaException.ContextFull, Assert.Throws<PacaException>(() => engine.Submit(new int[40], o)).Status, "too long");
                var r = engine.Submit("Once upon a time", o);
                Assert.Equal(PacaException.Busy, Assert.Throws<PacaException>(() => engine.Submit("One day", o)).Status, "busy");
                Assert.True(r.Poll(10) == null, "nothing runs until a step");
                int steps = 0;
                while (engine.Step() > 0) ++steps;
                Assert.True(steps >= 6, "steps");
                Assert.Seq(model.Complete("Once upon a time", o).Tokens, r.Complete().Tokens, "tokens");
            }
            using (var engine = new Engine(model))
                Assert.Equal(PacaException.State, Assert.Throws<PacaException>(() => engine.Step()).Status, "own thread");
        }
    }

    [Test]
    static void DisposingTheEngineWakesAWaiterAndTheModelWaitsForIt()
    {
        var model = new Model(Stories(), 1);
        var engine = new Engine(model, new EngineOptions { ManualStep = true });  // no steps: waits until Dispose
        var r = engine.Submit("Once upon a time", new GenerateOptions { MaxTokens = 4 });
        Exception outcome = null;
        var t = new Thread(() =>
        {
            try { foreach (var ev in r) {} }
            catch (Exception x) { outcome = x; }
        });
        t.Start();
        Thread.Sleep(200);
        Assert.True(t.IsAlive, "waiting");
        model.Dispose();  // the engine still holds the native model
        engine.Step();
        Assert.Equal(2L, Library.LiveHandles, "model and engine handles");
        engine.Dispose();
        engine.Dispose();
        Assert.True(t.Join(10000), "the waiter woke");
        Assert.True(outcome is ObjectDisposedException || outcome is PacaException, "waiter: " + outcome);
        Assert.Throws<ObjectDisposedException>(() => engine.Submit(new[] { 1 }));
        Assert.Throws<ObjectDisposedException>(() => new Engine(model));
        r.Dispose();  // harmless now
    }
}
