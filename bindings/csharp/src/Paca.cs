// Paca.cs - the idiomatic C# layer over the SWIG P/Invoke wrapper
// (Paca.Native, generated from bindings/swig/paca.i): Model, Session and
// Generation as IDisposable over SafeHandles, IEnumerable<string> streaming,
// PacaException for non-OK statuses. Plain C# 7, so the same files compile
// with Mono's mcs and with modern .NET.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using Paca.Native;

namespace Paca
{
    /// <summary>A paca call failed: Status is the paca_status of paca.h, Message paca_last_error()'s text.</summary>
    public class PacaException : Exception
    {
        public const int InvalidArgument = 1, IO = 2, Format = 3, ContextFull = 6, State = 10;
        public int Status { get; }
        public string StatusName => paca_native.status_name(Status);
        public PacaException(int status, string message) : base(message) { Status = status; }
    }

    /// <summary>Library-wide facts.</summary>
    public static class Library
    {
        static long live;
        public static string Version => paca_native.version();
        /// <summary>Native handles (models, sessions, generations) open now; 0 when all were released.</summary>
        public static long LiveHandles => Interlocked.Read(ref live);
        internal static void Opened() { Interlocked.Increment(ref live); }
        internal static void Closed() { Interlocked.Decrement(ref live); }

        internal static void Check()
        {
            int s = paca_native.last_status();
            if (s != 0) throw new PacaException(s, paca_native.last_error());
        }

        internal static ByteVector Bytes(string s) { return new ByteVector(Encoding.UTF8.GetBytes(s)); }
        internal static string Text(ByteVector v) { return Encoding.UTF8.GetString(v.ToArray()); }
    }

    /// <summary>Owns one native handle; releases it once, whoever asks first (Dispose or the finalizer).</summary>
    public abstract class PacaHandle : SafeHandle
    {
        protected PacaHandle(IntPtr h) : base(IntPtr.Zero, true) { SetHandle(h); Library.Opened(); }
        public override bool IsInvalid => handle == IntPtr.Zero;
        protected override bool ReleaseHandle() { Free(handle); Library.Closed(); return true; }
        protected abstract void Free(IntPtr h);
    }

    sealed class ModelHandle : PacaHandle
    {
        public ModelHandle(IntPtr h) : base(h) {}
        protected override void Free(IntPtr h) { paca_native.model_free(new SWIGTYPE_p_paca_model(h, false)); }
        public SWIGTYPE_p_paca_model Ptr => new SWIGTYPE_p_paca_model(DangerousGetHandle(), false);
    }

    sealed class SessionHandle : PacaHandle
    {
        public SessionHandle(IntPtr h) : base(h) {}
        protected override void Free(IntPtr h) { paca_native.session_free(new SWIGTYPE_p_paca_session(h, false)); }
        public SWIGTYPE_p_paca_session Ptr => new SWIGTYPE_p_paca_session(DangerousGetHandle(), false);
    }

    sealed class GeneratorHandle : PacaHandle
    {
        public GeneratorHandle(IntPtr h) : base(h) {}
        protected override void Free(IntPtr h) { paca_native.generator_free(new Generator(h, false)); }
        public Generator Ptr => new Generator(DangerousGetHandle(), false);
    }

    /// <summary>Sampling and stop settings; Temperature 0 (the default) is greedy.</summary>
    public sealed class GenerateOptions
    {
        public int MaxTokens { get; set; } = 128;
        public float Temperature { get; set; } = 0f;
        public float TopP { get; set; } = 1f;
        public int TopK { get; set; } = 0;
        public long Seed { get; set; } = 0;
        public bool IgnoreEos { get; set; } = false;
        /// <summary>Stop strings: generation ends before one, which is not returned.</summary>
        public List<string> Stop { get; } = new List<string>();
    }

    /// <summary>A finished generation. StopReason: "eos", "stop_token", "stop_string", "length" or "context_full".</summary>
    public sealed class Completion
    {
        public string Text { get; internal set; }
        public int[] Tokens { get; internal set; }
        public string StopReason { get; internal set; }
    }

    /// <summary>A loaded model; may be shared by threads. Dispose twice is harmless.</summary>
    public sealed class Model : IDisposable
    {
        readonly ModelHandle h;

        public Model(string path, int threads = 0)
        {
            var p = paca_native.model_load(Library.Bytes(path), threads);
            Library.Check();
            h = new ModelHandle(SWIGTYPE_p_paca_model.getCPtr(p).Handle);
        }

        internal SWIGTYPE_p_paca_model Ptr
        {
            get { if (h.IsClosed) throw new ObjectDisposedException("Model"); return h.Ptr; }
        }

        public int VocabSize { get { int n = paca_native.model_n_vocab(Ptr); Library.Check(); return n; } }

        /// <summary>Token ids of text; bos adds the start token, special recognises control-token text.</summary>
        public int[] Tokenize(string text, bool bos = true, bool special = false)
        {
            var v = paca_native.tokenize(Ptr, Library.Bytes(text), (bos ? 1 : 0) | (special ? 2 : 0));
            Library.Check();
            return v.ToArray();
        }

        public string Detokenize(int[] ids)
        {
            var s = Library.Text(paca_native.detokenize(Ptr, new IntVector(ids), 0));
            Library.Check();
            return s;
        }

        public Session NewSession(int contextSize = 0) { return new Session(this, contextSize); }

        /// <summary>Streams the continuation of prompt (tokenized with BOS) as text pieces.</summary>
        public Generation Generate(string prompt, GenerateOptions options = null)
        {
            var s = NewSession();
            try { return new Generation(s, Tokenize(prompt), options ?? new GenerateOptions(), true); }
            catch { s.Dispose(); throw; }
        }

        public Completion Complete(string prompt, GenerateOptions options = null)
        {
            using (var g = Generate(prompt, options)) return g.Complete();
        }

        /// <summary>CompleteBatch with the same options for every prompt (null: the defaults).</summary>
        public IList<Completion> CompleteBatch(IList<string> prompts, GenerateOptions options = null)
        {
            return CompleteBatch(prompts, new[] { options ?? new GenerateOptions() });
        }

        /// <summary>
        /// Complete for several prompts at once (paca_generator_next_batch): each step runs every
        /// unfinished prompt through the model together, reading each weight once for all of
        /// them, and each prompt gets exactly the Completion Complete gives it alone. options:
        /// one for every prompt, or one per prompt (e.g. a seed each). Each prompt runs in a
        /// session of its own.
        /// </summary>
        public IList<Completion> CompleteBatch(IList<string> prompts, IList<GenerateOptions> options)
        {
            int n = prompts.Count;
            if (options.Count != 1 && options.Count != n)
                throw new ArgumentException(options.Count + " options for " + n +
                                            " prompts (give one for all, or one per prompt)", "options");
            var gens = new List<Generation>();
            try
            {
                for (int i = 0; i < n; ++i) gens.Add(Generate(prompts[i], options[options.Count == 1 ? 0 : i]));
                var texts = new List<StringBuilder>();
                var active = new List<int>();
                for (int i = 0; i < n; ++i)
                {
                    texts.Add(new StringBuilder());
                    active.Add(i);
                }
                while (active.Count > 0)
                {
                    IntVector toks;
                    using (var batch = new GeneratorList())
                    {
                        foreach (int i in active) batch.Add(gens[i].NativePtr);
                        toks = paca_native.generator_next_batch(batch);
                    }
                    using (toks)
                    {
                        Library.Check();
                        var still = new List<int>();
                        for (int k = 0; k < active.Count; ++k)
                        {
                            int i = active[k];
                            texts[i].Append(gens[i].Take(toks[k]));
                            if (!gens[i].Ended) still.Add(i);
                        }
                        active = still;
                    }
                }
                var result = new List<Completion>();
                for (int i = 0; i < n; ++i)
                    result.Add(new Completion { Text = texts[i].ToString(), Tokens = gens[i].Tokens,
                                                StopReason = gens[i].StopReason });
                return result;
            }
            finally
            {
                foreach (var g in gens) g.Dispose();
            }
        }

        public void Dispose() { h.Dispose(); }
    }

    /// <summary>One sequence on a model; used by one thread at a time. Dispose twice is harmless.</summary>
    public sealed class Session : IDisposable
    {
        readonly SessionHandle h;

        internal Session(Model model, int contextSize)
        {
            var p = paca_native.session_create(model.Ptr, contextSize);
            Library.Check();
            h = new SessionHandle(SWIGTYPE_p_paca_session.getCPtr(p).Handle);
        }

        internal SWIGTYPE_p_paca_session Ptr
        {
            get { if (h.IsClosed) throw new ObjectDisposedException("Session"); return h.Ptr; }
        }

        public void Prefill(int[] tokens) { paca_native.session_prefill(Ptr, new IntVector(tokens)); Library.Check(); }
        public void Decode(int token) { paca_native.session_decode(Ptr, token); Library.Check(); }
        public void Rewind(long n) { paca_native.session_rewind(Ptr, n); Library.Check(); }
        public long Length => paca_native.session_length(Ptr);

        /// <summary>A copy of the last position's logits.</summary>
        public float[] Logits()
        {
            var v = paca_native.session_logits(Ptr);
            Library.Check();
            return v.ToArray();
        }

        public Generation Generate(int[] prompt, GenerateOptions options = null)
        {
            return new Generation(this, prompt, options ?? new GenerateOptions(), false);
        }

        public void Dispose() { h.Dispose(); }
    }

    /// <summary>One generation: enumerate it for the text pieces as they are generated.</summary>
    public sealed class Generation : IEnumerable<string>, IDisposable
    {
        static readonly string[] Reasons = { null, "eos", "stop_token", "stop_string", "length", "context_full" };
        readonly GeneratorHandle h;
        readonly Session session;
        readonly bool ownsSession;
        readonly List<int> tokens = new List<int>();
        bool started;

        public string StopReason { get; private set; }
        public int[] Tokens => tokens.ToArray();

        internal Generation(Session s, int[] prompt, GenerateOptions o, bool ownsSession)
        {
            var p = new GenerateParams();
            p.temperature = o.Temperature;
            p.seed = o.Seed;
            p.top_k = o.TopK;
            p.top_p = o.TopP;
            p.max_new_tokens = o.MaxTokens;
            p.ignore_eos = o.IgnoreEos;
            foreach (var stop in o.Stop) p.add_stop(Library.Bytes(stop));
            var g = paca_native.generator_create(s.Ptr, new IntVector(prompt), p);
            p.Dispose();
            Library.Check();
            h = new GeneratorHandle(Generator.getCPtr(g).Handle);
            session = s;
            this.ownsSession = ownsSession;
        }

        public IEnumerator<string> GetEnumerator()
        {
            if (started) throw new InvalidOperationException("a Generation is enumerated once");
            started = true;
            try
            {
                while (!h.IsClosed)
                {
                    int tok = paca_native.generator_next(h.Ptr);
                    Library.Check();
                    string piece = Take(tok);
                    if (piece.Length > 0) yield return piece;
                    if (tok < 0) break;
                }
            }
            finally { Dispose(); }
        }

        // For a batched step (Model.CompleteBatch): whether the generation has ended, and its
        // native generator while it goes on.
        internal bool Ended => h.IsClosed;
        internal Generator NativePtr => h.Ptr;

        // Takes one step's result (generator_next's, or this generator's entry of a batched
        // step): records the token (-1: none), returns its text, and disposes the generation
        // when it has ended.
        internal string Take(int tok)
        {
            started = true;
            string piece = tok >= 0 ? Library.Text(paca_native.generator_text(h.Ptr)) : "";
            if (tok >= 0) tokens.Add(tok);
            int reason = paca_native.generator_stop_reason(h.Ptr);
            if (reason != 0)
            {
                StopReason = Reasons[reason];
                Dispose();
            }
            return piece;
        }

        IEnumerator IEnumerable.GetEnumerator() { return GetEnumerator(); }

        /// <summary>Reads the rest of the generation.</summary>
        public Completion Complete()
        {
            var sb = new StringBuilder();
            foreach (var piece in this) sb.Append(piece);
            return new Completion { Text = sb.ToString(), Tokens = Tokens, StopReason = StopReason };
        }

        public void Dispose()
        {
            if (h.IsClosed) return;
            h.Dispose();
            if (ownsSession) session.Dispose();
        }
    }
}
