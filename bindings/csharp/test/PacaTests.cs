// PacaTests.cs - the C# binding against the C results of the same requests
// (examples/c/generate.c, paca_generator from C): load, tokenize round trip,
// greedy and seeded generation, streaming, stop strings, error mapping,
// disposing twice, and every native handle released. A small self-contained
// runner (Debian ships no NUnit for Mono): each [Test] method runs, failures
// are counted, exit code 77 when the shared models are absent.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Text.RegularExpressions;
using Paca;

[AttributeUsage(AttributeTargets.Method)]
sealed class TestAttribute : Attribute {}

sealed class SkipException : Exception { public SkipException(string m) : base(m) {} }

static class Assert
{
    public static void Equal<T>(T want, T got, string what = "")
    {
        if (!EqualityComparer<T>.Default.Equals(want, got)) throw new Exception($"{what}: expected <{want}>, got <{got}>");
    }
    public static void Seq(int[] want, int[] got, string what = "")
    {
        if (!want.SequenceEqual(got))
            throw new Exception($"{what}: expected [{string.Join(",", want)}], got [{string.Join(",", got)}]");
    }
    public static void True(bool b, string what) { if (!b) throw new Exception(what); }
    public static E Throws<E>(Action a) where E : Exception
    {
        try { a(); } catch (E e) { return e; }
        throw new Exception($"no {typeof(E).Name} thrown");
    }
}

static partial class PacaTests
{
    static string Models()
    {
        var d = Environment.GetEnvironmentVariable("PACA_SHARED_DIR");
        if (string.IsNullOrEmpty(d)) d = Environment.GetEnvironmentVariable("PACA_SHARED_DEFAULT");
        return d == null ? null : Path.Combine(d, "models");
    }

    static string Stories()
    {
        var m = Models();
        var p = m == null ? null : Path.Combine(m, "stories260K", "stories260K.bin");
        if (p == null || !File.Exists(p)) throw new SkipException("../shared test models not found");
        return p;
    }

    sealed class C { public int[] Tokens = new int[0]; public string Text = "", Err = ""; public int Rc; }

    static C RunC(params string[] args)
    {
        var exe = Environment.GetEnvironmentVariable("PACA_EXAMPLE_GENERATE");
        if (exe == null || !File.Exists(exe)) throw new SkipException("examples/c/generate.c not built");
        var psi = new ProcessStartInfo(exe)
        {
            UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true,
            StandardOutputEncoding = System.Text.Encoding.UTF8,
            Arguments = string.Join(" ", args.Select(a => "\"" + a + "\""))
        };
        using (var p = Process.Start(psi))
        {
            var errTask = p.StandardError.ReadToEndAsync();
            var o = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            var c = new C { Rc = p.ExitCode, Err = errTask.Result };
            c.Text = o.Length > 0 ? o.Substring(0, o.Length - 1) : o;
            var m = Regex.Match(c.Err, "tokens: ([0-9,]+)");
            if (m.Success) c.Tokens = m.Groups[1].Value.Split(',').Select(int.Parse).ToArray();
            return c;
        }
    }

    [Test]
    static void MissingFileThrowsWithTheCMessage()
    {
        var e = Assert.Throws<PacaException>(() => new Model("/nonexistent/model.bin"));
        Assert.Equal(PacaException.IO, e.Status, "status");
        Assert.Equal("PACA_ERR_IO", e.StatusName, "status name");
        var c = RunC("/nonexistent/model.bin");
        Assert.Equal(1, c.Rc, "C exit code");
        Assert.Equal("load failed: " + e.Message, c.Err.Trim(), "message");
    }

    [Test]
    static void TokenizeRoundTripMatchesGolden()
    {
        var path = Stories();
        var golden = File.ReadAllText(Path.Combine(Models(), "stories260K", "golden.json"));
        var m = Regex.Match(golden, "\"prompt_tokens\":\\s*\\[([0-9,\\s]+)\\]");
        var want = m.Groups[1].Value.Split(',').Select(s => int.Parse(s.Trim())).ToArray();
        using (var model = new Model(path))
        {
            Assert.Seq(want, model.Tokenize("Once upon a time"), "tokens");
            Assert.Equal("Once upon a time", model.Detokenize(want), "text");
            Assert.Equal(512, model.VocabSize, "vocab");
        }
    }

    [Test]
    static void GreedyEqualsC()
    {
        var path = Stories();
        var c = RunC(path, "Once upon a time", "40");
        using (var model = new Model(path))
        {
            var r = model.Complete("Once upon a time", new GenerateOptions { MaxTokens = 40 });
            Assert.Seq(c.Tokens, r.Tokens, "tokens");
            Assert.Equal(c.Text, r.Text, "text");
            Assert.Equal("length", r.StopReason, "stop reason");
        }
    }

    [Test]
    static void SeededSamplingEqualsC()
    {
        var path = Stories();
        foreach (var seed in new long[] { 7, 12345 })
        {
            var c = RunC(path, "Once upon a time", "48", "0.8", seed.ToString());
            using (var model = new Model(path))
            {
                var r = model.Complete("Once upon a time", new GenerateOptions { MaxTokens = 48, Temperature = 0.8f, Seed = seed });
                Assert.Seq(c.Tokens, r.Tokens, "tokens, seed " + seed);
                Assert.Equal(c.Text, r.Text, "text");
            }
        }
    }

    [Test]
    static void CompleteBatchEqualsCompleteAlone()
    {
        var path = Stories();
        var prompts = new List<string> { "Once upon a time", "The little dog", "Lily liked to", "One day" };
        var options = new List<GenerateOptions>();
        foreach (var seed in new long[] { 3, 4, 5, 6 })
        {
            var o = new GenerateOptions { MaxTokens = 40, Temperature = 0.9f, TopP = 0.95f, Seed = seed };
            o.Stop.Add(".");
            options.Add(o);
        }
        using (var model = new Model(path, 2))
        {
            var alone = prompts.Select((p, i) => model.Complete(p, options[i])).ToList();
            var batch = model.CompleteBatch(prompts, options);
            Assert.Equal(prompts.Count, batch.Count, "completions");
            for (int i = 0; i < prompts.Count; ++i)
            {
                Assert.Seq(alone[i].Tokens, batch[i].Tokens, "tokens, prompt " + i);
                Assert.Equal(alone[i].Text, batch[i].Text, "text, prompt " + i);
                Assert.Equal(alone[i].StopReason, batch[i].StopReason, "stop reason, prompt " + i);
            }
            // the prompts really differ, and the stop string ended some
            Assert.Equal(prompts.Count, alone.Select(c => string.Join(",", c.Tokens)).Distinct().Count(), "distinct");
            Assert.True(alone.Any(c => c.StopReason == "stop_string"), "a stop string ended one");
            // one options object for all
            var greedy = new GenerateOptions { MaxTokens = 12 };
            var same = model.CompleteBatch(prompts.Take(2).ToList(), greedy);
            Assert.Seq(model.Complete(prompts[1], greedy).Tokens, same[1].Tokens, "greedy tokens");
            Assert.Equal(0, model.CompleteBatch(new List<string>(), greedy).Count, "no prompts");
            Assert.Throws<ArgumentException>(() => model.CompleteBatch(prompts, options.Take(2).ToList()));
        }
    }

    [Test]
    static void StreamingGivesTheSameTextInPieces()
    {
        var path = Stories();
        var c = RunC(path, "Once upon a time", "60", "0", "0", "Lily");
        using (var model = new Model(path))
        {
            var o = new GenerateOptions { MaxTokens = 60 };
            o.Stop.Add("Lily");
            var pieces = new List<string>();
            using (var g = model.Generate("Once upon a time", o))
            {
                foreach (var piece in g) pieces.Add(piece);
                Assert.Equal("stop_string", g.StopReason, "stop reason");
                Assert.Seq(c.Tokens, g.Tokens, "tokens");
            }
            Assert.True(pieces.Count > 3, "several pieces");
            Assert.Equal(c.Text, string.Concat(pieces), "text");
            using (var g = model.Generate("Once upon a time", o))
                foreach (var piece in g) break;  // abandoned: released by the enumerator and Dispose
        }
    }

    [Test]
    static void SessionErrorsAndLogits()
    {
        var path = Stories();
        using (var model = new Model(path))
        using (var s = model.NewSession(4))
        {
            var e = Assert.Throws<PacaException>(() => s.Prefill(new[] { 1, 1 << 20 }));
            Assert.Equal(PacaException.InvalidArgument, e.Status, "bad id");
            Assert.True(e.Message.Contains("vocabulary"), e.Message);
            Assert.Equal(PacaException.ContextFull, Assert.Throws<PacaException>(() => s.Prefill(new[] { 1, 2, 3, 4, 5 })).Status, "full");
            Assert.Equal(PacaException.State, Assert.Throws<PacaException>(() => s.Logits()).Status, "no logits");
            s.Prefill(model.Tokenize("Once upon"));
            var logits = s.Logits();
            int best = 0;
            for (int i = 1; i < logits.Length; ++i) if (logits[i] > logits[best]) best = i;
            using (var g = s.Generate(new int[0], new GenerateOptions { MaxTokens = 1 }))
                Assert.Equal(best, g.Complete().Tokens[0], "greedy = argmax");
        }
    }

    [Test]
    static void DisposingTwiceIsHarmless()
    {
        var path = Stories();
        var m = new Model(path);
        var s = m.NewSession();
        Assert.Equal(2L, Library.LiveHandles, "live");
        m.Dispose();
        m.Dispose();
        s.Prefill(new[] { 1, 403 });  // the session keeps the model's memory alive
        s.Dispose();
        s.Dispose();
        Assert.Throws<ObjectDisposedException>(() => s.Prefill(new[] { 1 }));
        Assert.True(Library.Version.Length > 0, "version");
    }

    static int Main()
    {
        int failed = 0, passed = 0, skipped = 0;
        foreach (var t in typeof(PacaTests).GetMethods(BindingFlags.Static | BindingFlags.NonPublic)
                     .Where(x => x.GetCustomAttribute<TestAttribute>() != null))
        {
            try
            {
                t.Invoke(null, null);
                if (Library.LiveHandles != 0) throw new Exception($"{Library.LiveHandles} native handles left open");
                Console.WriteLine($"PASS {t.Name}");
                ++passed;
            }
            catch (TargetInvocationException e) when (e.InnerException is SkipException)
            {
                Console.WriteLine($"SKIP {t.Name}: {e.InnerException.Message}");
                ++skipped;
            }
            catch (Exception e)
            {
                Console.WriteLine($"FAIL {t.Name}: {(e is TargetInvocationException ? e.InnerException : e)}");
                ++failed;
            }
        }
        Console.WriteLine($"{passed} passed, {failed} failed, {skipped} skipped");
        return failed > 0 ? 1 : passed == 0 ? 77 : 0;
    }
}
