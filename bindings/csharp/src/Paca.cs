// Paca.cs - the idiomatic C# layer over the SWIG P/Invoke wrapper
// (Paca.Native, generated from bindings/swig/paca.i): Model, Session,
// Generation and Engine as IDisposable over SafeHandles, IEnumerable<string>
// streaming, engine Requests as IEnumerable<RequestEvent> (polled), and
// PacaException for non-OK statuses. Text.cs (tokens, detokenizer, stop
// strings, chat, logging) and State.cs (sampler, fork, snapshots) add the rest
// of paca.h. Plain C# 7, so the same files compile with Mono's mcs and with
// modern .NET.
using System;
using System.Collections;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using Paca.Native;

namespace Paca
{
    /// <summary>A paca call failed: Status is the paca_status of paca.h, Message paca_last_error()'s text.</summary>
    public class PacaException : Exception
    {
        public const int InvalidArgument = 1, IO = 2, Format = 3, Unsupported = 4, OutOfMemory = 5, ContextFull = 6,
                         Cancelled = 7, Device = 8, State = 10, Busy = 11, Timeout = 12, Internal = 99;
        public int Status { get; }
        public string StatusName => paca_native.status_name(Status);
        public PacaException(int status, string message) : base(message) { Status = status; }
    }

    /// <summary>Library-wide facts.</summary>
    public static partial class Library
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

        // s as UTF-8 bytes; a null s is PacaException InvalidArgument.
        internal static ByteVector Bytes(string s)
        {
            if (s == null) throw new PacaException(PacaException.InvalidArgument, "a string argument is null");
            return new ByteVector(Encoding.UTF8.GetBytes(s));
        }
        // o itself; a null o is PacaException InvalidArgument naming what.
        internal static T Require<T>(T o, string what) where T : class
        {
            if (o == null) throw new PacaException(PacaException.InvalidArgument, what + " is null");
            return o;
        }
        // An optional text: null as no bytes (the layer's "unset").
        internal static ByteVector Optional(string s) { return s == null ? new ByteVector() : Bytes(s); }
        internal static IntVector Ids(int[] a)
        {
            if (a == null) throw new PacaException(PacaException.InvalidArgument, "an int[] argument is null");
            return new IntVector(a);
        }
        internal static FloatVector Floats(float[] a)
        {
            if (a == null) throw new PacaException(PacaException.InvalidArgument, "a float[] argument is null");
            return new FloatVector(a);
        }
        internal static string Text(ByteVector v) { using (v) return Encoding.UTF8.GetString(v.ToArray()); }
    }

    /// <summary>Owns one native handle; releases it once, whoever asks first (Dispose or the finalizer).</summary>
    public abstract class PacaHandle : SafeHandle
    {
        protected PacaHandle(IntPtr h) : base(IntPtr.Zero, true) { SetHandle(h); Library.Opened(); }
        public override bool IsInvalid => handle == IntPtr.Zero;
        protected override bool ReleaseHandle() { Free(handle); Library.Closed(); return true; }
        protected abstract void Free(IntPtr h);
    }

    // A handle of a paca.h object that needs nothing but its free: wrap makes the SWIG pointer.
    sealed class OwnedHandle<T> : PacaHandle
    {
        readonly Func<IntPtr, T> wrap;
        readonly Action<T> free;
        public OwnedHandle(IntPtr h, Func<IntPtr, T> wrap, Action<T> free) : base(h) { this.wrap = wrap; this.free = free; }
        protected override void Free(IntPtr h) { free(wrap(h)); }
        // The SWIG pointer; ObjectDisposedException (naming what) once disposed.
        public T Get(string what)
        {
            if (IsClosed) throw new ObjectDisposedException(what);
            return wrap(DangerousGetHandle());
        }
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

    // An engine and a reference on its model's handle, dropped after the engine is freed.
    sealed class EngineHandle : PacaHandle
    {
        readonly ModelHandle model;
        public EngineHandle(IntPtr h, ModelHandle model) : base(h) { this.model = model; }
        protected override void Free(IntPtr h)
        {
            paca_native.engine_free(new SWIGTYPE_p_paca_engine(h, false));
            model.DangerousRelease();
        }
        public SWIGTYPE_p_paca_engine Ptr => new SWIGTYPE_p_paca_engine(DangerousGetHandle(), false);
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
        public float MinP { get; set; } = 0f;
        public float RepeatPenalty { get; set; } = 1f;
        public float FrequencyPenalty { get; set; } = 0f;
        public float PresencePenalty { get; set; } = 0f;
        /// <summary>Penalty window in tokens; -1 the whole sequence, 0 off (default 64).</summary>
        public int RepeatLastN { get; set; } = 64;
        /// <summary>Alternatives reported with each token's log-probability (0..20).</summary>
        public int TopLogprobs { get; set; } = 0;
        /// <summary>A Generation records each token's log-probabilities (Generation.Logprobs).</summary>
        public bool Logprobs { get; set; } = false;
        /// <summary>A Generation renders control tokens as their text.</summary>
        public bool Special { get; set; } = false;
        /// <summary>GBNF grammar the text must follow (null: none).</summary>
        public string Grammar { get; set; }
        /// <summary>JSON Schema the text must follow (null: none); at most one of Grammar and JsonSchema.</summary>
        public string JsonSchema { get; set; }
        /// <summary>Stop strings: generation ends before one, which is not returned.</summary>
        public List<string> Stop { get; } = new List<string>();
        /// <summary>Token ids that stop the generation.</summary>
        public List<int> StopIds { get; } = new List<int>();

        // The native settings (the caller disposes them).
        internal GenerateParams ToNative()
        {
            var p = new GenerateParams();
            try
            {
                p.temperature = Temperature;
                p.seed = Seed;
                p.top_k = TopK;
                p.top_p = TopP;
                p.min_p = MinP;
                p.repeat_penalty = RepeatPenalty;
                p.frequency_penalty = FrequencyPenalty;
                p.presence_penalty = PresencePenalty;
                p.repeat_last_n = RepeatLastN;
                p.n_top_logprobs = TopLogprobs;
                p.max_new_tokens = MaxTokens;
                p.ignore_eos = IgnoreEos;
                p.logprobs = Logprobs;
                p.special = Special;
                p.grammar = Library.Optional(Grammar);
                p.json_schema = Library.Optional(JsonSchema);
                foreach (var stop in Stop) p.add_stop(Library.Bytes(stop));
                foreach (var id in StopIds) p.add_stop_id(id);
            }
            catch { p.Dispose(); throw; }
            return p;
        }
    }

    /// <summary>A finished generation. StopReason: "eos", "stop_token", "stop_string", "length" or "context_full".</summary>
    public sealed class Completion
    {
        public string Text { get; internal set; }
        public int[] Tokens { get; internal set; }
        public string StopReason { get; internal set; }
    }

    /// <summary>
    /// A loaded model; may be shared by threads. Dispose twice is harmless. An open Engine on it
    /// holds its native model until the engine is released (paca.h: a model outlives its engines).
    /// </summary>
    public sealed partial class Model : IDisposable
    {
        readonly ModelHandle h;
        internal ModelHandle Handle
        {
            get { if (h.IsClosed) throw new ObjectDisposedException("Model"); return h; }
        }

        public Model(string path, int threads = 0) : this(path, new ModelOptions { Threads = threads }) {}

        /// <summary>Loads with options (null: the defaults).</summary>
        public Model(string path, ModelOptions options)
        {
            SWIGTYPE_p_paca_model p;
            using (var mp = (options ?? new ModelOptions()).ToNative()) p = paca_native.model_load_with(Library.Bytes(path), mp);
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

        /// <summary>The text of ids; special renders control tokens, keepLeadingSpace keeps a Llama 2 first space.</summary>
        public string Detokenize(int[] ids, bool special = false, bool keepLeadingSpace = false)
        {
            var s = Library.Text(paca_native.detokenize(Ptr, Library.Ids(ids), (special ? 1 : 0) | (keepLeadingSpace ? 2 : 0)));
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
    public sealed partial class Session : IDisposable
    {
        readonly SessionHandle h;

        internal Session(Model model, int contextSize)
        {
            var p = paca_native.session_create(model.Ptr, contextSize);
            Library.Check();
            h = new SessionHandle(SWIGTYPE_p_paca_session.getCPtr(p).Handle);
        }

        // Takes a session the library made (a fork, a loaded snapshot).
        internal Session(SWIGTYPE_p_paca_session p) { h = new SessionHandle(SWIGTYPE_p_paca_session.getCPtr(p).Handle); }

        internal SWIGTYPE_p_paca_session Ptr
        {
            get { if (h.IsClosed) throw new ObjectDisposedException("Session"); return h.Ptr; }
        }

        public void Prefill(int[] tokens) { paca_native.session_prefill(Ptr, Library.Ids(tokens)); Library.Check(); }
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
        readonly List<TokenLogprobs> logprobs;  // null unless GenerateOptions.Logprobs
        bool started;

        public string StopReason { get; private set; }
        public int[] Tokens => tokens.ToArray();
        /// <summary>Tokens generated so far, as the native generator counts them (paca_generator_n_generated).</summary>
        public long NGenerated => h.IsClosed ? tokens.Count : paca_native.generator_n_generated(h.Ptr);

        /// <summary>
        /// The log-probabilities of each token generated so far (GenerateOptions.Logprobs);
        /// PacaException State when the options did not ask for them.
        /// </summary>
        public IList<TokenLogprobs> Logprobs
        {
            get
            {
                if (logprobs == null) throw new PacaException(PacaException.State, "the generation was not asked for logprobs");
                return logprobs.AsReadOnly();
            }
        }

        internal static string Reason(int r) { return r > 0 && r < Reasons.Length ? Reasons[r] : null; }

        internal Generation(Session s, int[] prompt, GenerateOptions o, bool ownsSession)
        {
            var ids = Library.Ids(prompt);
            var p = o.ToNative();
            var g = paca_native.generator_create(s.Ptr, ids, p);
            p.Dispose();
            Library.Check();
            h = new GeneratorHandle(Generator.getCPtr(g).Handle);
            session = s;
            this.ownsSession = ownsSession;
            if (o.Logprobs) logprobs = new List<TokenLogprobs>();
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
            if (tok >= 0 && logprobs != null)
            {
                using (var lp = new Paca.Native.TokenLogprobs())
                {
                    paca_native.generator_logprobs(h.Ptr, lp);
                    Library.Check();
                    logprobs.Add(new TokenLogprobs(lp));
                }
            }
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

    /// <summary>
    /// Settings of an Engine (paca_engine_params): requests stepped together, tokens in one step,
    /// requests that may wait (a Submit beyond throws PacaException Busy), each request's context
    /// (0: the model's), the shared prefix cache, and manual stepping (no thread: call Engine.Step).
    /// </summary>
    public sealed class EngineOptions
    {
        public int MaxRunning { get; set; } = 64;
        public int MaxStepTokens { get; set; } = 512;
        public int MaxQueued { get; set; } = 1024;
        public int ContextSize { get; set; } = 0;
        public bool PrefixCache { get; set; } = true;
        public bool ManualStep { get; set; } = false;

        internal EngineParams ToNative()
        {
            var p = new EngineParams();
            p.max_running = MaxRunning;
            p.max_step_tokens = MaxStepTokens;
            p.max_queued = MaxQueued;
            p.n_ctx = ContextSize;
            p.prefix_cache = PrefixCache;
            p.manual_step = ManualStep;
            return p;
        }
    }

    /// <summary>
    /// What an engine request adds to its GenerateOptions: Priority (higher starts first and is
    /// preempted last), Logprobs (each event carries its token's log-probability), Special
    /// (control tokens appear as their text).
    /// </summary>
    public sealed class RequestOptions
    {
        public int Priority { get; set; } = 0;
        public bool Logprobs { get; set; } = false;
        public bool Special { get; set; } = false;
        /// <summary>
        /// The request's logit bias: LogitBiasValues[i] is added to the logit of
        /// LogitBiasTokens[i] (-Infinity bans it); checked at Submit (PacaException InvalidArgument).
        /// </summary>
        public int[] LogitBiasTokens { get; set; } = new int[0];
        public float[] LogitBiasValues { get; set; } = new float[0];

        internal RequestParams ToNative()
        {
            var p = new RequestParams();
            p.priority = Priority;
            p.logprobs = Logprobs;
            p.special = Special;
            p.logit_bias_tokens = Library.Ids(LogitBiasTokens);
            p.logit_bias_values = Library.Floats(LogitBiasValues);
            return p;
        }
    }

    /// <summary>
    /// What a request's last event reports: prompt tokens, those whose KV came from the prefix
    /// cache, tokens generated, times preempted (and recomputed), and milliseconds from submit to
    /// its first step, its first token and its end.
    /// </summary>
    public sealed class RequestStats
    {
        public int PromptTokens { get; internal set; }
        public int CachedTokens { get; internal set; }
        public int GeneratedTokens { get; internal set; }
        public int Preemptions { get; internal set; }
        public double QueueMs { get; internal set; }
        public double FirstTokenMs { get; internal set; }
        public double TotalMs { get; internal set; }
    }

    /// <summary>
    /// One event of an engine request: a generated token and the text it completes (possibly
    /// empty), or the request's end. Token is -1 in an end event that carries none; Logprob is
    /// the token's log-probability when the request asked for it (else 0); StopReason is null
    /// while the request goes on; the last event has Stats.
    /// </summary>
    public sealed class RequestEvent
    {
        internal static readonly string[] Reasons = { null, "eos", "stop_token", "stop_string", "length", "context_full" };
        public int Token { get; }
        public string Text { get; }
        public float Logprob { get; }
        public string StopReason { get; }
        public bool Last { get; }
        public RequestStats Stats { get; }
        internal int Status { get; }
        internal string Error { get; }

        internal RequestEvent(EngineEvent e)
        {
            Token = e.token;
            Text = Library.Text(e.text);
            Logprob = e.logprob;
            StopReason = e.stop_reason >= 0 && e.stop_reason < Reasons.Length ? Reasons[e.stop_reason] : "unknown";
            Last = e.last;
            Status = e.status;
            Error = e.error;
            if (Last)
                Stats = new RequestStats
                {
                    PromptTokens = e.n_prompt, CachedTokens = e.n_cached, GeneratedTokens = e.n_generated,
                    Preemptions = e.n_preempted, QueueMs = e.queue_ms, FirstTokenMs = e.first_token_ms,
                    TotalMs = e.total_ms
                };
        }
    }

    /// <summary>
    /// An engine's counters so far (paca_engine_stats): requests waiting and running, submitted
    /// and finished, forward steps, tokens prefilled (recomputation included), generated and taken
    /// from the prefix cache, preemptions, and the KV pool (blocks in use, held by the prefix
    /// cache, in all: 0 for an unbounded pool; positions per block).
    /// </summary>
    public sealed class EngineStats
    {
        public long Queued, Running, Submitted, Finished, Steps, PrefillTokens, GeneratedTokens, CachedTokens,
                    Preemptions, KvBlocksUsed, KvBlocksCached, KvBlocksTotal, KvBlockTokens;
    }

    /// <summary>
    /// Many requests on one model at once (paca_engine): a native scheduler thread runs each step
    /// over every running request together (continuous batching), prompts sharing a prefix share
    /// its KV cache, and a request gets the tokens Model.Complete gives the same prompt and options
    /// (seed included), whatever else runs beside it. Thread-safe. Dispose cancels whatever still
    /// runs; a thread waiting on one of its requests then gets ObjectDisposedException. Dispose
    /// twice is harmless.
    /// </summary>
    public sealed class Engine : IDisposable
    {
        // How long one native wait lasts at most, so that Dispose is noticed.
        internal const int SliceMs = 100;
        readonly Model model;
        readonly EngineHandle h;
        // requests disposed before their end: cancelled, their remaining events taken at later submits
        readonly ConcurrentQueue<long> abandoned = new ConcurrentQueue<long>();

        /// <summary>Throws PacaException (InvalidArgument, naming the setting) for settings out of range.</summary>
        public Engine(Model model, EngineOptions options = null)
        {
            var mh = model.Handle;
            bool added = false;
            try
            {
                mh.DangerousAddRef(ref added);
                SWIGTYPE_p_paca_engine e;
                using (var p = (options ?? new EngineOptions()).ToNative()) e = paca_native.engine_create(mh.Ptr, p);
                Library.Check();
                h = new EngineHandle(SWIGTYPE_p_paca_engine.getCPtr(e).Handle, mh);
            }
            catch
            {
                if (added) mh.DangerousRelease();
                throw;
            }
            this.model = model;
        }

        // Runs f on the native engine, which Dispose does not free meanwhile.
        T Call<T>(Func<SWIGTYPE_p_paca_engine, T> f)
        {
            bool added = false;
            try
            {
                h.DangerousAddRef(ref added);
                return f(h.Ptr);
            }
            finally
            {
                if (added) h.DangerousRelease();
            }
        }

        internal bool IsClosed => h.IsClosed;

        /// <summary>Queues a request for the continuation of prompt (tokenized with BOS).</summary>
        public Request Submit(string prompt, GenerateOptions options = null, RequestOptions request = null)
        {
            return Submit(model.Tokenize(prompt), options, request);
        }

        /// <summary>
        /// Queues a request: generate after the prompt's ids with options (sampling and stop
        /// settings, as Model.Complete) and request (priority, logprobs). Throws PacaException:
        /// InvalidArgument (a bad id or setting, named), ContextFull (the prompt does not fit), Busy
        /// (MaxQueued requests wait).
        /// </summary>
        public Request Submit(int[] prompt, GenerateOptions options = null, RequestOptions request = null)
        {
            Reap();
            request = request ?? new RequestOptions();
            long id;
            using (var gp = (options ?? new GenerateOptions()).ToNative())
            using (var rp = request.ToNative())
            using (var ids = Library.Ids(prompt))
            {
                id = Call(e =>
                {
                    long r = paca_native.engine_submit(e, ids, gp, rp);
                    Library.Check();
                    return r;
                });
            }
            return new Request(this, id, request.Logprobs);
        }

        /// <summary>With ManualStep: runs one scheduling step on this thread; the requests running or waiting after it.</summary>
        public long Step()
        {
            return Call(e =>
            {
                long n = paca_native.engine_step(e);
                Library.Check();
                return n;
            });
        }

        /// <summary>The engine's counters so far.</summary>
        public EngineStats Stats()
        {
            using (var c = new EngineCounters())
            {
                Call(e =>
                {
                    paca_native.engine_stats(e, c);
                    Library.Check();
                    return 0;
                });
                return new EngineStats
                {
                    Queued = c.n_queued, Running = c.n_running, Submitted = c.n_submitted, Finished = c.n_finished,
                    Steps = c.n_steps, PrefillTokens = c.n_prefill_tokens, GeneratedTokens = c.n_generated_tokens,
                    CachedTokens = c.n_cached_tokens, Preemptions = c.n_preemptions, KvBlocksUsed = c.kv_blocks_used,
                    KvBlocksCached = c.kv_blocks_cached, KvBlocksTotal = c.kv_blocks_total,
                    KvBlockTokens = c.kv_block_tokens
                };
            }
        }

        internal void Cancel(long id)
        {
            Call(e =>
            {
                paca_native.engine_cancel(e, id);
                Library.Check();
                return 0;
            });
        }

        // One native poll of request id for at most timeoutMs: the event, or null on timeout.
        internal RequestEvent PollOnce(long id, int timeoutMs)
        {
            using (var ev = new EngineEvent())
            {
                return Call(e =>
                {
                    int s = paca_native.engine_poll(e, id, timeoutMs, ev);
                    if (s == PacaException.Timeout) return null;
                    Library.Check();
                    return new RequestEvent(ev);
                });
            }
        }

        internal void Abandon(long id) { abandoned.Enqueue(id); }

        // Takes, without waiting, the events of requests disposed before their end, so that the
        // engine forgets them; each id is taken by one thread at a time (one poller per request).
        void Reap()
        {
            for (int n = abandoned.Count; n > 0; --n)
            {
                long id;
                if (!abandoned.TryDequeue(out id)) return;
                try
                {
                    RequestEvent ev;
                    while ((ev = PollOnce(id, 0)) != null && !ev.Last) {}
                    if (ev == null) abandoned.Enqueue(id);
                }
                catch (PacaException) {}  // already forgotten
                catch (ObjectDisposedException) {}
            }
        }

        public void Dispose() { h.Dispose(); }
    }

    /// <summary>
    /// A request submitted to an Engine: enumerate it for its RequestEvents as they come (each
    /// wait a native poll), up to and including its last event. A request that was cancelled or
    /// failed throws its PacaException (Status Cancelled after Cancel()) in place of its last
    /// event. Used by one thread at a time. Disposing it before its end cancels it.
    /// </summary>
    public sealed class Request : IEnumerable<RequestEvent>, IDisposable
    {
        readonly Engine engine;
        readonly bool logprobs;
        readonly object sync = new object();
        readonly List<int> tokens = new List<int>();
        readonly List<float> logprobValues = new List<float>();
        readonly StringBuilder text = new StringBuilder();
        volatile bool ended;

        public long Id { get; }
        /// <summary>Why the request ended (null while it goes on).</summary>
        public string StopReason { get; private set; }
        /// <summary>The last event's statistics (null before it).</summary>
        public RequestStats Stats { get; private set; }
        /// <summary>Whether its last event has been taken.</summary>
        public bool Done => ended;
        public int[] Tokens { get { lock (sync) return tokens.ToArray(); } }
        /// <summary>Log-probabilities of the tokens so far (empty unless asked for).</summary>
        public float[] Logprobs { get { lock (sync) return logprobValues.ToArray(); } }

        internal Request(Engine engine, long id, bool logprobs)
        {
            this.engine = engine;
            Id = id;
            this.logprobs = logprobs;
        }

        /// <summary>Asks the engine to end the request at its next step (harmless once it has ended).</summary>
        public void Cancel() { engine.Cancel(Id); }

        /// <summary>
        /// The next event, waiting up to timeoutMs (0: not at all; negative: as long as it takes);
        /// null when none came in time or the request has ended.
        /// </summary>
        public RequestEvent Poll(int timeoutMs)
        {
            lock (sync)
            {
                var clock = Stopwatch.StartNew();
                while (!ended)
                {
                    int slice = Engine.SliceMs;
                    if (timeoutMs >= 0) slice = (int)Math.Max(0, Math.Min(slice, timeoutMs - clock.ElapsedMilliseconds));
                    var e = engine.PollOnce(Id, slice);
                    if (e != null) return Take(e);
                    if (timeoutMs >= 0 && clock.ElapsedMilliseconds >= timeoutMs) return null;
                }
                return null;
            }
        }

        RequestEvent Take(RequestEvent e)
        {
            if (e.Token >= 0)
            {
                tokens.Add(e.Token);
                if (logprobs) logprobValues.Add(e.Logprob);
            }
            text.Append(e.Text);
            if (e.Last)
            {
                ended = true;
                StopReason = e.StopReason;
                Stats = e.Stats;
                if (e.Status != 0) throw new PacaException(e.Status, e.Error);
            }
            return e;
        }

        public IEnumerator<RequestEvent> GetEnumerator()
        {
            RequestEvent e;
            while ((e = Poll(-1)) != null) yield return e;
        }

        IEnumerator IEnumerable.GetEnumerator() { return GetEnumerator(); }

        /// <summary>Waits for the rest of the request: its whole text, tokens and stop reason.</summary>
        public Completion Complete()
        {
            lock (sync)
            {
                foreach (var e in this) {}
                return new Completion { Text = text.ToString(), Tokens = tokens.ToArray(), StopReason = StopReason };
            }
        }

        /// <summary>Cancels the request unless it has ended; the engine then drops its remaining events.</summary>
        public void Dispose()
        {
            if (ended || engine.IsClosed) return;
            try { engine.Cancel(Id); }  // first: a thread waiting on the request then gets its end
            catch (ObjectDisposedException) { return; }
            lock (sync)
            {
                if (ended) return;
                ended = true;
            }
            engine.Abandon(Id);
        }
    }
}
