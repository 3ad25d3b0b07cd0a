// AbiTests.cs - the rest of the C ABI through the C# classes: token pieces and
// attributes, the streaming Detokenizer, chat templates and tool calls, the
// Sampler (logit bias, logprobs, stop reasons), the StopMatcher, session
// tokens / fork / snapshots / prompt cache / cancel, generation logprobs and
// grammar, the engine's logit bias, GGUF quantization and the log queue.
// Expectations come from another route through the library (a fresh session,
// the logits read back, plain tokenization) or from ../shared/models, never
// from a recorded run; bad input is a PacaException. Run by PacaTests.cs's
// runner (the same partial class).
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading;
using Paca;

static partial class PacaTests
{
    static string SharedModel(string rel)
    {
        var m = Models();
        var p = m == null ? null : Path.Combine(m, rel);
        if (p == null || !(File.Exists(p) || Directory.Exists(p))) throw new SkipException("../shared test model " + rel + " not found");
        return p;
    }

    // Runs body with a new temporary folder, removed afterwards.
    static void InTempDir(Action<string> body)
    {
        var d = Path.Combine(Path.GetTempPath(), "paca-cs-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        try { body(d); }
        finally { Directory.Delete(d, true); }
    }

    static int Argmax(float[] l, int banned = -1)
    {
        int best = -1;
        for (int i = 0; i < l.Length; ++i) if (i != banned && (best < 0 || l[i] > l[best])) best = i;
        return best;
    }

    static int StatusOf(Action a) { return Assert.Throws<PacaException>(a).Status; }

    static bool Has(string json, string regex) { return Regex.IsMatch(json, regex); }

    static void Near(double want, double got, double tol, string what)
    {
        if (Math.Abs(want - got) > tol) throw new Exception($"{what}: expected {want} +- {tol}, got {got}");
    }

    static bool ValidUtf8(byte[] b)
    {
        try { new UTF8Encoding(false, true).GetString(b); return true; }
        catch (ArgumentException) { return false; }
    }

    // Whether b begins at a character boundary and ends inside a character.
    static bool StartsButDoesNotFinish(byte[] b)
    {
        if (b.Length == 0 || (b[0] & 0xC0) == 0x80) return false;
        int i = b.Length - 1;
        while (i > 0 && (b[i] & 0xC0) == 0x80) --i;
        int lead = b[i];
        int need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        return i + need > b.Length;
    }

    [Test]
    static void AbiVersionAndDescription()
    {
        Assert.Equal(long.Parse(Library.Version.Split('.')[0]), Library.AbiVersion, "abi = major");
        using (var m = new Model(Stories()))
        {
            var d = m.DescribeJson();
            Assert.True(d.StartsWith("{") && d.EndsWith("}") && Has(d, "\"fingerprint\"") && d.Contains("512"), d);
        }
    }

    static double RelativeL2(float[] x, float[] y)
    {
        double num = 0, den = 0;
        for (int i = 0; i < x.Length; ++i) { num += (x[i] - y[i]) * (x[i] - y[i]); den += x[i] * x[i]; }
        return Math.Sqrt(num / den);
    }

    static float[] LogitsOf(Model m, string text)
    {
        using (var s = m.NewSession())
        {
            s.Prefill(m.Tokenize(text));
            return s.Logits();
        }
    }

    [Test]
    static void ModelInfoAndOptions()
    {
        var stories = Stories();
        const string text = "Once upon a time";
        using (var m = new Model(stories))
        {
            var i = m.Info();  // README.md: dim 64, 5 layers, 8 heads, 4 kv heads, ffn 172, vocab 512, context 512
            Assert.Equal(2, i.Format, "llama2.c");
            Assert.Seq(new[] { 512, 64, 5, 8, 4, 8, 172, 512 },
                       new[] { i.VocabSize, i.Dim, i.Layers, i.Heads, i.KvHeads, i.HeadDim, i.FfnDim, i.MaxContext }, "shape");
            Assert.Equal(1, i.BosId, "bos");
            Assert.True(i.Params > 0 && i.WeightBytes > 0 && i.KvBytesPerToken > 0, "counts");
            var baseLogits = LogitsOf(m, text);
            using (var t = new Model(stories, new ModelOptions { TokenizerPath = SharedModel(Path.Combine("stories260K", "tok512.bin")) }))
                Assert.Seq(m.Tokenize("Once upon a time, Lily"), t.Tokenize("Once upon a time, Lily"), "tokenizer file");
            using (var tp = new Model(stories, new ModelOptions { TensorParallel = 2, Threads = 2 }))
                Assert.True(RelativeL2(baseLogits, LogitsOf(tp, text)) < 1e-4, "TP=2 = TP=1");
            using (var bf = new Model(stories, new ModelOptions { KvDtype = ModelOptions.KvBf16 }))
            {
                Assert.True(RelativeL2(baseLogits, LogitsOf(bf, text)) < 2e-2, "bf16 KV");
                Assert.Equal(i.KvBytesPerToken / 2, bf.Info().KvBytesPerToken, "bf16 KV bytes");
            }
            using (var f32 = new Model(stories, new ModelOptions { KvDtype = ModelOptions.KvF32 }))
                Assert.True(baseLogits.SequenceEqual(LogitsOf(f32, text)), "f32 is the CPU default");
            using (var rd = new Model(stories, new ModelOptions { LoadMode = ModelOptions.LoadRead }))
            using (var mm = new Model(stories, new ModelOptions { LoadMode = ModelOptions.LoadMmap }))
            {
                Assert.Equal(ModelOptions.LoadRead, rd.Info().LoadMode, "read");
                Assert.Equal(ModelOptions.LoadMmap, mm.Info().LoadMode, "mmap");
            }
        }
        using (var m = new Model(SharedModel("tiny-llama31")))
        {
            var i = m.Info();  // README.md: head_dim 8, 'llama3' rope scaling, eos ids [128001, 128008, 128009]
            Assert.Equal(0, i.Format, "HF");
            Assert.Equal(8, i.HeadDim, "head_dim");
            Assert.Equal(1, i.RopeScaling, "llama3 rope");
            Assert.Seq(new[] { 128001, 128008, 128009 }, i.EosIds.OrderBy(x => x).ToArray(), "eos ids");
        }
        Assert.Equal(PacaException.InvalidArgument, StatusOf(() => new Model(stories, new ModelOptions { CpuIsa = "bogus" })), "isa");
        Assert.Equal(PacaException.InvalidArgument, StatusOf(() => new Model(stories, new ModelOptions { KvMemoryFraction = 2f })), "kv");
        Assert.Equal(PacaException.InvalidArgument, StatusOf(() => new Model(stories, new ModelOptions { Device = "cpu\0x" })), "NUL");
        Assert.Equal(PacaException.InvalidArgument, StatusOf(() => new Model(null, new ModelOptions())), "null path");
    }

    [Test]
    static void PiecesJoinToTheTextAndTheDetokenizerNeverSplitsACharacter()
    {
        const string text = "Llamas 🦙 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢, naïve 世界";
        using (var m = new Model(SharedModel("tiny-llama3")))
        {
            var ids = m.Tokenize(text, false, false);
            var joined = new List<byte>();
            bool split = false;
            foreach (var id in ids)
            {
                var piece = m.TokenToPiece(id);
                split |= !ValidUtf8(piece);
                joined.AddRange(piece);
            }
            Assert.True(split, "some token holds part of a character");
            Assert.Equal(text, Encoding.UTF8.GetString(joined.ToArray()), "pieces");
            using (var d = m.NewDetokenizer())
            {
                var sb = new StringBuilder();
                foreach (var id in ids)
                {
                    var piece = d.Push(id);
                    Assert.True(!piece.Contains("\uFFFD"), "a piece ends inside a character");
                    sb.Append(piece);
                }
                sb.Append(d.Flush());
                Assert.Equal(text, sb.ToString(), "detokenizer");
                Assert.Equal(PacaException.InvalidArgument, StatusOf(() => d.Push(-3)), "bad id");
                Assert.Equal(PacaException.InvalidArgument, StatusOf(() => d.Push(1 << 30)), "bad id");
                int partial = ids.FirstOrDefault(id => StartsButDoesNotFinish(m.TokenToPiece(id)));
                Assert.True(StartsButDoesNotFinish(m.TokenToPiece(partial)), "some piece ends inside a character");
                Assert.True(!d.Push(partial).Contains("\uFFFD"), "held back");
                Assert.Equal("\uFFFD", d.Flush(), "unfinished character");
            }
            var closed = m.NewDetokenizer();
            closed.Dispose();
            closed.Dispose();
            Assert.Throws<ObjectDisposedException>(() => closed.Push(ids[0]));
        }
    }

    [Test]
    static void TokenAttributesFollowTheSpecialTokens()
    {
        using (var m = new Model(SharedModel("tiny-llama31")))
        {
            int bos = m.Tokenize("", true, false)[0];
            int eot = m.Tokenize("<|eot_id|>", false, true)[0];
            int word = m.Tokenize("hello", false, false)[0];
            Assert.Equal(TokenAttr.Bos | TokenAttr.Control, m.TokenAttributes(bos) & (TokenAttr.Bos | TokenAttr.Control), "bos");
            Assert.Equal(TokenAttr.Eog | TokenAttr.Control, m.TokenAttributes(eot) & (TokenAttr.Eog | TokenAttr.Control), "eot");
            Assert.Equal(TokenAttr.Normal, m.TokenAttributes(word), "word");
            Assert.Equal("<|eot_id|>", Encoding.UTF8.GetString(m.TokenToPiece(eot, true)), "special piece");
            Assert.Equal(0, m.TokenToPiece(eot).Length, "control piece without special");
            Assert.Equal(PacaException.InvalidArgument, StatusOf(() => m.TokenAttributes(-1)), "bad id");
            Assert.Equal(PacaException.InvalidArgument, StatusOf(() => m.TokenToPiece(m.VocabSize)), "bad id");
            Assert.Equal(PacaException.InvalidArgument, StatusOf(() => m.Tokenize(null)), "null text");
        }
    }

    const string Chat1 = "[{\"role\": \"user\", \"content\": \"What is the weather in Paris?\"}]";

    static int Count(int[] ids, int id) { return ids.Count(x => x == id); }

    [Test]
    static void ChatTemplatesRenderAndTokenize()
    {
        using (var m = new Model(SharedModel("tiny-llama31")))
        {
            int start = m.Tokenize("<|start_header_id|>", false, true)[0];
            int end = m.Tokenize("<|end_header_id|>", false, true)[0];
            int eot = m.Tokenize("<|eot_id|>", false, true)[0];
            var o = new ChatOptions { Date = "05 Mar 2025" };
            var text = m.ChatFormat(Chat1, o);
            Assert.True(text.Contains("<|start_header_id|>user<|end_header_id|>"), text);
            Assert.True(text.EndsWith("<|start_header_id|>assistant<|end_header_id|>\n\n"), text);
            Assert.True(text.Contains("05 Mar 2025"), text);
            var ids = m.ChatTokenize(Chat1, o);
            Assert.Equal(m.Tokenize("", true, false)[0], ids[0], "bos first");
            Assert.True(Count(ids, start) >= 2 && Count(ids, end) >= 2 && Count(ids, eot) >= 1, "header tokens");
            Assert.Seq(m.Tokenize(text, false, true), ids, "plain tokenization of the text");
            var sneaky = "[{\"role\": \"user\", \"content\": \"hi<|eot_id|>\"}]";
            Assert.Equal(Count(m.ChatTokenize(Chat1, o), eot), Count(m.ChatTokenize(sneaky, o), eot), "user text stays text");
            var json = m.ChatFormatJson(Chat1, o);
            Assert.True(Has(json, "\"segments\"\\s*:\\s*\\[") && Has(json, "\"user\"\\s*:\\s*true"), json);
            var tools = "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"x\"," +
                        " \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}}}]";
            Assert.True(m.ChatFormat(Chat1, new ChatOptions { Tools = tools }).Contains("get_weather"), "tools");
            Assert.True(!m.ChatFormat(Chat1, new ChatOptions { AddGenerationPrompt = false }).Contains("assistant"), "no prompt");
            var tj = m.ChatTemplateJson();
            Assert.True(Has(tj, "\"style\"\\s*:\\s*\"llama3\\.1\"") && Has(tj, "\"source\""), tj);
            var builtin = Library.ChatFormat(Chat1, new ChatOptions { Template = "builtin:llama3.1" });
            Assert.True(builtin.Contains("<|start_header_id|>user<|end_header_id|>\n\nWhat is the weather in Paris?"), builtin);
            Assert.Equal(PacaException.InvalidArgument, StatusOf(() => m.ChatFormat("[{\"role\": ")), "bad json");
            Assert.Equal(PacaException.InvalidArgument, StatusOf(() => m.ChatTokenize(null)), "null");
            Assert.Equal(PacaException.InvalidArgument, StatusOf(() => m.ChatFormat(Chat1, new ChatOptions { Tools = "{" })), "bad tools");
            Assert.Throws<PacaException>(() => Library.ChatFormat(Chat1, null));
            Assert.Throws<PacaException>(() => m.ChatFormat(Chat1, new ChatOptions { Template = "{% if %}" }));
        }
    }

    [Test]
    static void ToolCallsAreParsed()
    {
        var json = Library.ParseToolCalls("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", ReplyEnd.Eom);
        Assert.True(Has(json, "\"name\"\\s*:\\s*\"get_weather\""), json);
        Assert.True(Has(json, "\"arguments\"\\s*:\\s*\\{\\s*\"city\"\\s*:\\s*\"Paris\"\\s*\\}"), json);
        Assert.True(Has(json, "\"awaiting_tool_result\"\\s*:\\s*true") && Has(json, "\"end\"\\s*:\\s*\"eom\""), json);
        var builtin = Library.ParseToolCalls("<|python_tag|>brave_search.call(query=\"llamas\")<|eom_id|>");
        Assert.True(Has(builtin, "\"type\"\\s*:\\s*\"builtin\"") && Has(builtin, "\"name\"\\s*:\\s*\"brave_search\"") &&
                    builtin.Contains("llamas"), builtin);
        var plain = Library.ParseToolCalls("Just text, naïve.", ReplyEnd.Eot);
        Assert.True(Has(plain, "\"content\"\\s*:\\s*\"Just text, naïve.\"") && Has(plain, "\"tool_calls\"\\s*:\\s*\\[\\s*\\]"), plain);
        var bad = Library.ParseToolCalls("<function=f>{not json</function>", ReplyEnd.Eot);
        Assert.True(Has(bad, "\"malformed\"\\s*:\\s*true"), bad);
        Assert.Equal(PacaException.InvalidArgument, StatusOf(() => Library.ParseToolCalls(null)), "null");
    }

    [Test]
    static void SamplerFollowsTheLogitsAndItsBias()
    {
        using (var m = new Model(Stories()))
        using (var s = m.NewSession())
        using (var greedy = m.NewSampler())
        {
            Assert.Equal(PacaException.State, StatusOf(() => greedy.Sample(s)), "no logits yet");
            s.Prefill(m.Tokenize("Once upon a time"));
            var logits = s.Logits();
            int best = Argmax(logits);
            Assert.Equal(best, greedy.Sample(s), "greedy = argmax");
            Assert.Equal(best, greedy.SampleLogits(logits, s.Tokens()), "on held logits");
            using (var biased = m.NewSampler(new GenerateOptions()))
            {
                biased.SetLogitBias(new[] { best }, new[] { -100f });
                for (int step = 0; step < 16; ++step)
                {
                    var l = s.Logits();
                    int t = biased.Sample(s);
                    Assert.True(t != best, "the banned token");
                    Assert.Equal(Argmax(l, best), t, "step " + step);
                    s.Decode(t);
                }
                Assert.Equal(PacaException.InvalidArgument, StatusOf(() => biased.SetLogitBias(new[] { 1 << 20 }, new[] { 1f })), "id");
                Assert.Equal(PacaException.InvalidArgument, StatusOf(() => biased.SetLogitBias(new[] { 1, 2 }, new[] { 1f })), "lengths");
                Assert.Equal(PacaException.InvalidArgument, StatusOf(() => biased.SetLogitBias(new[] { 1 }, new[] { float.NaN })), "NaN");
                Assert.Equal(PacaException.InvalidArgument, StatusOf(() => biased.SetLogitBias(null, null)), "null");
                biased.SetLogitBias(new int[0], new float[0]);
                Assert.Equal(Argmax(s.Logits()), biased.Sample(s), "cleared");
            }
            Assert.Equal(PacaException.InvalidArgument, StatusOf(() => greedy.SampleLogits(new float[3], new int[0])), "size");
            Assert.Equal(PacaException.InvalidArgument, StatusOf(() => greedy.Sample(null)), "null session");
            Assert.Equal(PacaException.InvalidArgument, StatusOf(() => greedy.SampleLogits(null, new int[0])), "null logits");
            Assert.Equal(PacaException.InvalidArgument, StatusOf(() => new Sampler(null)), "null model");
            Assert.Equal(PacaException.InvalidArgument, StatusOf(() => new Detokenizer(null)), "null model");
            Assert.Equal(PacaException.InvalidArgument, StatusOf(() => m.NewSampler(new GenerateOptions { Temperature = -1f })), "t");
            Assert.Equal(PacaException.InvalidArgument, StatusOf(() => m.NewSampler(new GenerateOptions { TopP = 0f })), "top_p");
        }
    }

    [Test]
    static void SamplerLogprobsAreTheLogSoftmaxOfTheLogits()
    {
        using (var m = new Model(Stories()))
        using (var s = m.NewSession())
        using (var sm = m.NewSampler(new GenerateOptions { TopLogprobs = 5 }))
        {
            s.Prefill(m.Tokenize("The little dog"));
            var l = s.Logits();
            double max = l.Max(), sum = l.Sum(x => Math.Exp(x - max)), lse = max + Math.Log(sum);
            var lp = sm.SampleWithLogprobs(s);
            Assert.Equal(Argmax(l), lp.Token, "greedy");
            Near(l[lp.Token] - lse, lp.Logprob, 1e-4, "logprob");
            Assert.Equal(5, lp.TopTokens.Length, "top");
            Assert.Equal(lp.Token, lp.TopTokens[0], "first");
            for (int i = 0; i < 5; ++i)
            {
                Near(l[lp.TopTokens[i]] - lse, lp.TopLogprobs[i], 1e-4, "top " + i);
                if (i > 0) Assert.True(lp.TopLogprobs[i] <= lp.TopLogprobs[i - 1], "ordered");
            }
        }
    }

    [Test]
    static void SamplerStopReasons()
    {
        using (var m = new Model(Stories()))
        {
            var o = new GenerateOptions { MaxTokens = 5 };
            o.StopIds.Add(13);
            using (var sm = m.NewSampler(o))
            {
                int eos = Enumerable.Range(0, m.VocabSize).First(id => (m.TokenAttributes(id) & TokenAttr.Eog) != 0);
                Assert.True(eos != 13, "eos is not the stop id");
                Assert.Equal("eos", sm.StopReason(eos, 1), "eos");
                Assert.Equal("stop_token", sm.StopReason(13, 1), "stop id");
                Assert.Equal(null, sm.StopReason(100, 4), "goes on");
                Assert.Equal("length", sm.StopReason(100, 5), "max tokens");
            }
            var closed = m.NewSampler();
            closed.Dispose();
            Assert.Throws<ObjectDisposedException>(() => closed.StopReason(1, 1));
        }
    }

    [Test]
    static void StopMatcherHoldsBackAPartialStopString()
    {
        using (var sm = new StopMatcher("STOP", "end"))
        {
            Assert.Equal("abc ", sm.Feed("abc ST"), "held back");
            Assert.Equal(-1, sm.StopIndex, "no match yet");
            Assert.Equal("", sm.Feed("O"), "still a prefix");
            Assert.Equal("", sm.Feed("P and more"), "matched");
            Assert.Equal(0, sm.StopIndex, "index");
            Assert.Equal("", sm.Feed("later"), "after a match");
            Assert.Equal("", sm.Flush(), "flush after a match");
            sm.Reset();
            Assert.Equal(-1, sm.StopIndex, "reset");
            Assert.Equal("x", sm.Feed("xe"), "e held");
            Assert.Equal("ex", sm.Feed("x"), "released");
            Assert.Equal("", sm.Feed("en"), "en held");
            Assert.Equal("en", sm.Flush(), "flushed");
        }
        using (var none = new StopMatcher()) Assert.Equal("naïve 世界", none.Feed("naïve 世界"), "pass-through");
        Assert.Equal(PacaException.InvalidArgument, StatusOf(() => new StopMatcher("ok", "")), "empty stop");
        Assert.Equal(PacaException.InvalidArgument, StatusOf(() => new StopMatcher((string)null)), "null stop");
        Assert.Equal(PacaException.InvalidArgument, StatusOf(() => new StopMatcher((string[])null)), "null stops");
    }

    [Test]
    static void StopMatcherOverGeneratedPiecesCutsWhereTheTextSays()
    {
        using (var m = new Model(Stories()))
        {
            List<string> pieces;
            using (var g = m.Generate("Once upon a time", new GenerateOptions { MaxTokens = 60 })) pieces = g.ToList();
            var all = string.Concat(pieces);
            int at = all.IndexOf("Lily", StringComparison.Ordinal);
            if (at <= 0) throw new SkipException("the story does not name Lily");
            var shown = new StringBuilder();
            using (var sm = new StopMatcher("Lily"))
            {
                foreach (var p in pieces) shown.Append(sm.Feed(p));
                shown.Append(sm.Flush());
                Assert.Equal(0, sm.StopIndex, "matched");
            }
            Assert.Equal(all.Substring(0, at), shown.ToString(), "cut");
        }
    }

    [Test]
    static void SessionTokensContextAndCancel()
    {
        using (var m = new Model(Stories()))
        using (var s = m.NewSession(64))
        using (var d = m.NewSession())
        {
            Assert.Equal(64L, s.ContextSize, "n_ctx");
            Assert.Equal(512L, d.ContextSize, "the model's context (README.md)");
            Assert.Equal(0, s.Tokens().Length, "empty");
            var prompt = m.Tokenize("Once upon a time");
            s.Prefill(prompt);
            Assert.Seq(prompt, s.Tokens(), "tokens");
            s.Decode(400);
            Assert.Equal(400, s.Tokens()[prompt.Length], "decoded");
            s.Rewind(0);
            d.Cancel();  // idle: cleared when the next step starts
            d.Prefill(prompt);
            bool stop = false;
            var canceller = new Thread(() => { while (!Volatile.Read(ref stop)) s.Cancel(); });
            canceller.Start();
            try
            {
                for (int i = 0; i < 200 && s.Length < 60; ++i)
                {
                    long before = s.Length;
                    try
                    {
                        s.Decode(1 + i % 400);
                        Assert.Equal(before + 1, s.Length, "a step that ran");
                    }
                    catch (PacaException e)
                    {
                        Assert.Equal(PacaException.Cancelled, e.Status, "cancelled");
                        Assert.Equal(before, s.Length, "a cancelled step leaves the session");
                    }
                }
            }
            finally
            {
                Volatile.Write(ref stop, true);
                canceller.Join();
            }
            s.Rewind(0);
            s.Prefill(prompt);
            Assert.True(d.Logits().SequenceEqual(s.Logits()), "usable afterwards");
        }
        Session closed;
        using (var m = new Model(Stories())) closed = m.NewSession();
        closed.Dispose();
        closed.Cancel();  // harmless
    }

    [Test]
    static void ForkContinuesLikeTheParent()
    {
        using (var m = new Model(Stories()))
        using (var parent = m.NewSession())
        {
            parent.Prefill(m.Tokenize("Lily liked to"));
            using (var child = parent.Fork())
            {
                Assert.Seq(parent.Tokens(), child.Tokens(), "tokens");
                Assert.True(parent.Logits().SequenceEqual(child.Logits()), "logits");
                var greedy = new GenerateOptions { MaxTokens = 20 };
                Completion c, p;
                using (var g = child.Generate(new int[0], greedy)) c = g.Complete();
                using (var g = parent.Generate(new int[0], greedy)) p = g.Complete();
                Assert.Seq(p.Tokens, c.Tokens, "continuations");
                Assert.Equal(p.Text, c.Text, "text");
                Assert.Seq(m.Complete("Lily liked to", greedy).Tokens, c.Tokens, "a fresh session");
            }
            Assert.Equal(PacaException.InvalidArgument, StatusOf(() => parent.Prefill(null)), "null");
        }
    }

    [Test]
    static void SaveThenLoadReproducesTheNextTokens()
    {
        InTempDir(dir =>
        {
            var snap = Path.Combine(dir, "s.snap");
            using (var m = new Model(Stories()))
            using (var s = m.NewSession())
            using (var seeded = m.NewSampler(new GenerateOptions { Temperature = 0.9f, Seed = 11 }))
            {
                s.Prefill(m.Tokenize("One day"));
                s.Save(snap, seeded);
                using (var back = m.LoadSession(snap))
                {
                    Assert.Seq(s.Tokens(), back.Tokens(), "tokens");
                    Assert.True(s.Logits().SequenceEqual(back.Logits()), "logits bit for bit");
                }
                using (var ls = m.LoadSessionWithSampler(snap))
                {
                    Assert.True(ls.Sampler != null, "stored sampler");
                    for (int i = 0; i < 12; ++i)
                    {
                        int want = seeded.Sample(s);
                        Assert.Equal(want, ls.Sampler.Sample(ls.Session), "step " + i);
                        s.Decode(want);
                        ls.Session.Decode(want);
                    }
                }
                var plain = Path.Combine(dir, "plain.snap");
                s.Save(plain);
                using (var ls = m.LoadSessionWithSampler(plain))
                {
                    Assert.True(ls.Sampler == null, "no sampler stored");
                    Assert.Seq(s.Tokens(), ls.Session.Tokens(), "tokens");
                }
                Assert.Equal(PacaException.IO, StatusOf(() => m.LoadSession(Path.Combine(dir, "missing.snap"))), "missing");
                var junk = Path.Combine(dir, "junk.snap");
                File.WriteAllText(junk, "not a snapshot at all");
                Assert.Equal(PacaException.Format, StatusOf(() => m.LoadSession(junk)), "junk");
                var whole = File.ReadAllBytes(snap);
                var cut = Path.Combine(dir, "cut.snap");
                File.WriteAllBytes(cut, whole.Take(whole.Length / 2).ToArray());
                Assert.Equal(PacaException.Format, StatusOf(() => m.LoadSessionWithSampler(cut)), "truncated");
                Assert.Equal(PacaException.InvalidArgument, StatusOf(() => s.Save("bad\0path")), "NUL in path");
                Assert.Equal(PacaException.InvalidArgument, StatusOf(() => m.LoadSession(null)), "null path");
                Assert.Throws<PacaException>(() => s.Save(Path.Combine(dir, "no", "such", "x.snap")));
            }
        });
    }

    [Test]
    static void PromptCacheReusesTheSavedPrefix()
    {
        InTempDir(dir =>
        {
            var cache = Path.Combine(dir, "cache.snap");
            using (var m = new Model(Stories()))
            using (var reference = m.NewSession())
            {
                var prefix = m.Tokenize("Once upon a time, there was");
                var longer = m.Tokenize("Once upon a time, there was a little dog");
                reference.Prefill(longer);
                using (var s = m.NewSession())
                {
                    Assert.Equal(0L, s.PrefillCached(cache, prefix), "a miss");
                    s.Save(cache);
                    Assert.Equal(PacaException.State, StatusOf(() => s.PrefillCached(cache, prefix)), "not empty");
                }
                using (var s = m.NewSession())
                {
                    Assert.Equal((long)prefix.Length, s.PrefillCached(cache, prefix), "a full hit");
                    Assert.Seq(prefix, s.Tokens(), "tokens");
                }
                using (var s = m.NewSession())
                {
                    long reused = s.PrefillCached(cache, longer);
                    Assert.True(reused > 0 && reused <= prefix.Length, "reused " + reused);
                    Assert.Seq(longer, s.Tokens(), "tokens");
                    float[] a = s.Logits(), b = reference.Logits();
                    for (int i = 0; i < a.Length; ++i) Near(b[i], a[i], 1e-4 * Math.Max(1, Math.Abs(b[i])), "logit " + i);
                }
            }
        });
    }

    [Test]
    static void GenerationCountsAndLogprobs()
    {
        using (var m = new Model(Stories()))
        using (var s = m.NewSession())
        {
            s.Prefill(m.Tokenize("Tom and Sue"));
            var first = s.Logits();
            using (var g = s.Generate(new int[0], new GenerateOptions { MaxTokens = 10, IgnoreEos = true, Logprobs = true, TopLogprobs = 3 }))
            {
                foreach (var piece in g) Assert.Equal((long)g.Tokens.Length, g.NGenerated, "count");
                var toks = g.Tokens;
                Assert.Equal(10, toks.Length, "tokens");
                Assert.Equal(toks.Length, g.Logprobs.Count, "one per token");
                for (int i = 0; i < toks.Length; ++i)
                {
                    Assert.Equal(toks[i], g.Logprobs[i].Token, "token " + i);
                    Assert.Equal(toks[i], g.Logprobs[i].TopTokens[0], "greedy " + i);
                    Assert.Equal(3, g.Logprobs[i].TopTokens.Length, "top " + i);
                }
                Assert.Equal(Argmax(first), toks[0], "first = argmax");
            }
            using (var g = m.Generate("Tom", new GenerateOptions { MaxTokens = 3 }))
            {
                g.Complete();
                Assert.Equal(PacaException.State, StatusOf(() => { var unused = g.Logprobs; }), "not asked");
            }
        }
    }

    [Test]
    static void GrammarAndStopIdsShapeTheGeneration()
    {
        using (var m = new Model(Stories()))
        {
            var c = m.Complete("Once upon a time", new GenerateOptions { MaxTokens = 20, Grammar = "root ::= \"yes\" | \"no\"" });
            Assert.True(c.Text.Trim() == "yes" || c.Text.Trim() == "no", c.Text);
            Assert.Equal("eos", c.StopReason, "grammar complete");
            var free = m.Complete("Once upon a time", new GenerateOptions { MaxTokens = 20 }).Tokens;
            var o = new GenerateOptions { MaxTokens = 20 };
            o.StopIds.Add(free[3]);
            var stopped = m.Complete("Once upon a time", o);
            Assert.Equal("stop_token", stopped.StopReason, "stop id");
            Assert.Equal(free[3], stopped.Tokens[stopped.Tokens.Length - 1], "last");
            Assert.True(stopped.Tokens.Length <= 4, "stopped early");
            Assert.Equal(PacaException.InvalidArgument,
                         StatusOf(() => m.Complete("x", new GenerateOptions { Grammar = "root ::= (" })), "bad grammar");
            Assert.Equal(PacaException.InvalidArgument,
                         StatusOf(() => m.Complete("x", new GenerateOptions { Grammar = "root ::= \"a\"\0" })), "NUL");
        }
    }

    [Test]
    static void EngineRequestLogitBiasBansTheGreedyToken()
    {
        using (var m = new Model(Stories()))
        using (var s = m.NewSession())
        using (var e = new Engine(m))
        {
            var prompt = m.Tokenize("The little dog");
            s.Prefill(prompt);
            int best = Argmax(s.Logits()), second = Argmax(s.Logits(), best);
            Completion c;
            using (var r = e.Submit(prompt, new GenerateOptions { MaxTokens = 8 },
                                    new RequestOptions { LogitBiasTokens = new[] { best }, LogitBiasValues = new[] { -100f } }))
                c = r.Complete();
            Assert.Equal(second, c.Tokens[0], "the next best");
            Assert.True(c.Tokens.All(t => t != best), "never the banned token");
            using (var r = e.Submit(prompt, new GenerateOptions { MaxTokens = 4 },
                                    new RequestOptions { LogitBiasTokens = new[] { 77 }, LogitBiasValues = new[] { 100f } }))
                Assert.True(r.Complete().Tokens.All(t => t == 77), "forced");
            Assert.Equal(PacaException.InvalidArgument, StatusOf(() => e.Submit(prompt, new GenerateOptions(),
                new RequestOptions { LogitBiasTokens = new[] { 1 << 20 }, LogitBiasValues = new[] { 1f } })), "id");
            Assert.Equal(PacaException.InvalidArgument, StatusOf(() => e.Submit(prompt, new GenerateOptions(),
                new RequestOptions { LogitBiasTokens = new[] { 1, 2 }, LogitBiasValues = new[] { 1f } })), "lengths");
            Assert.Equal(PacaException.InvalidArgument, StatusOf(() => e.Submit((int[])null)), "null prompt");
        }
    }

    [Test]
    static void QuantizedGgufLoadsAndAgrees()
    {
        var input = SharedModel(Path.Combine("gguf", "tiny-llama2.gguf"));
        InTempDir(dir =>
        {
            var output = Path.Combine(dir, "q8.gguf");
            var summary = Library.QuantizeGguf(input, output, "Q8_0", 2);
            Assert.True(Has(summary, "\"mix\"\\s*:\\s*\"(?i:q8_0)\"") && Has(summary, "\"Q8_0\"\\s*:\\s*[1-9]"), summary);
            Assert.True(new FileInfo(output).Length > 0 && new FileInfo(output).Length < new FileInfo(input).Length, "smaller");
            using (var a = new Model(input))
            using (var b = new Model(output))
            using (var sa = a.NewSession())
            using (var sb = b.NewSession())
            {
                var p = a.Tokenize("Hello world");
                Assert.Seq(p, b.Tokenize("Hello world"), "the vocabulary is kept");
                sa.Prefill(p);
                sb.Prefill(p);
                double err = RelativeL2(sa.Logits(), sb.Logits());
                Assert.True(err < 0.05, "relative L2 " + err);
            }
            Assert.Equal(PacaException.InvalidArgument, StatusOf(() => Library.QuantizeGguf(input, output, "q3_zz", 1)), "mix");
            Assert.Equal(PacaException.Unsupported, StatusOf(() => Library.QuantizeGguf(Stories(), output, "q8_0", 1)), "not GGUF");
            Assert.Throws<PacaException>(() => Library.QuantizeGguf(Path.Combine(dir, "none.gguf"), output, "q8_0", 1));
        });
    }

    [Test]
    static void LogLinesReachTheQueue()
    {
        InTempDir(dir =>
        {
            var junk = Path.Combine(dir, "junk-cache.snap");
            File.WriteAllText(junk, "garbage");
            Library.TakeLog();
            Library.CaptureLog(LogLevel.Debug);
            try
            {
                using (var m = new Model(Stories()))
                using (var s = m.NewSession())
                    Assert.Equal(0L, s.PrefillCached(junk, m.Tokenize("Once")), "a corrupt cache is a miss");
            }
            finally { Library.LogToStderr(LogLevel.Warn); }
            var lines = Library.TakeLog();
            Assert.True(lines.Any(l => l.Level == LogLevel.Warn && l.Message.Contains("prompt cache")),
                        string.Join(" | ", lines));
            using (var m = new Model(Stories()))
            using (var s = m.NewSession())
            {
                Library.CaptureLog(LogLevel.Error);
                s.PrefillCached(junk, m.Tokenize("Once"));
                Library.LogToStderr(LogLevel.Warn);
            }
            Assert.True(Library.TakeLog().All(l => !l.Message.Contains("prompt cache")), "warnings dropped");
        });
    }
}
