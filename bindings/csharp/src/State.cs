// State.cs - model settings and state of paca.h in the Paca namespace:
// ModelOptions and ModelInfo, the Sampler (logit bias, log-probabilities, stop reasons), TokenLogprobs, and
// Session's tokens, cancel, fork, snapshots (save / load, with a sampler) and
// prompt cache.
using System;
using Paca.Native;

namespace Paca
{
    /// <summary>
    /// Settings of a model load (paca_model_params); the defaults are the library's. Not here:
    /// load progress and a per-model log sink (callbacks), the multi-process fields (rank,
    /// world_size, rendezvous) and the CUDA kernel switches.
    /// </summary>
    public sealed class ModelOptions
    {
        public const int KvAuto = -1, KvF32 = 0, KvBf16 = 1;
        public const int LoadMmap = 0, LoadRead = 1, LoadAuto = 2;
        public const int WeightsAsStored = 0, WeightsFp8 = 1;

        /// <summary>Compute threads; 0 = all hardware threads.</summary>
        public int Threads { get; set; }
        /// <summary>"cpu" (null), "cuda" or "cuda:N".</summary>
        public string Device { get; set; }
        /// <summary>Comma-separated devices of the ranks, e.g. "cpu,cpu" (null: Device).</summary>
        public string Devices { get; set; }
        /// <summary>KvAuto, KvF32 or KvBf16.</summary>
        public int KvDtype { get; set; }
        /// <summary>Tokens per KV-cache block; 0 = 16.</summary>
        public int KvBlockTokens { get; set; }
        /// <summary>A tokenizer file to use instead of the checkpoint's own.</summary>
        public string TokenizerPath { get; set; }
        /// <summary>WeightsAsStored or WeightsFp8 (quantize at load).</summary>
        public int WeightDtype { get; set; }
        /// <summary>PACA_FP8_* flags for quantizing at load; 0 = Meta's recipe.</summary>
        public int Fp8Targets { get; set; }
        /// <summary>paca_fp8_mode: 0 auto, 1 W8A8, 2 W8A16.</summary>
        public int Fp8Mode { get; set; }
        /// <summary>LoadMmap, LoadRead or LoadAuto.</summary>
        public int LoadMode { get; set; }
        /// <summary>Ranks per layer in this process (0 or 1: none).</summary>
        public int TensorParallel { get; set; }
        /// <summary>Pipeline stages in this process (0 or 1: none).</summary>
        public int PipelineParallel { get; set; }
        /// <summary>0: KV blocks allocated as needed; in (0, 1]: a pool of that fraction of free memory.</summary>
        public float KvMemoryFraction { get; set; }
        /// <summary>CPU kernels: null or "auto", "scalar", "avx2", "avx512".</summary>
        public string CpuIsa { get; set; }

        public ModelOptions()
        {
            using (var d = new ModelParams())
            {
                Threads = d.n_threads;
                KvDtype = d.kv_dtype;
                KvBlockTokens = d.kv_block_tokens;
                WeightDtype = d.weight_dtype;
                Fp8Targets = d.fp8_targets;
                Fp8Mode = d.fp8_mode;
                LoadMode = d.load_mode;
                TensorParallel = d.tensor_parallel;
                PipelineParallel = d.pipeline_parallel;
                KvMemoryFraction = d.kv_memory_fraction;
            }
        }

        internal ModelParams ToNative()
        {
            var p = new ModelParams();
            p.n_threads = Threads;
            p.kv_dtype = KvDtype;
            p.kv_block_tokens = KvBlockTokens;
            p.weight_dtype = WeightDtype;
            p.fp8_targets = Fp8Targets;
            p.fp8_mode = Fp8Mode;
            p.load_mode = LoadMode;
            p.tensor_parallel = TensorParallel;
            p.pipeline_parallel = PipelineParallel;
            p.kv_memory_fraction = KvMemoryFraction;
            p.device = Library.Optional(Device);
            p.devices = Library.Optional(Devices);
            p.tokenizer_path = Library.Optional(TokenizerPath);
            p.cpu_isa = Library.Optional(CpuIsa);
            return p;
        }
    }

    /// <summary>What a loaded model is (paca_model_info).</summary>
    public sealed class ModelInfo
    {
        /// <summary>paca_model_format: 0 Hugging Face safetensors, 1 GGUF, 2 llama2.c.</summary>
        public int Format { get; }
        public int VocabSize { get; }
        public int Dim { get; }
        public int Layers { get; }
        public int Heads { get; }
        public int KvHeads { get; }
        public int HeadDim { get; }
        public int FfnDim { get; }
        public int MaxContext { get; }
        public float RopeTheta { get; }
        public float RopeFactor { get; }
        public float NormEps { get; }
        /// <summary>paca_rope_scaling: 0 none, 1 llama3.</summary>
        public int RopeScaling { get; }
        public bool TiedEmbeddings { get; }
        /// <summary>-1 when none.</summary>
        public int BosId { get; }
        public int[] EosIds { get; }
        public long Params { get; }
        public long WeightBytes { get; }
        public long KvBytesPerToken { get; }
        /// <summary>ModelOptions.LoadRead when every weight file was read into memory, else LoadMmap.</summary>
        public int LoadMode { get; }

        internal ModelInfo(Paca.Native.ModelInfo n)
        {
            Format = n.format;
            VocabSize = n.n_vocab;
            Dim = n.dim;
            Layers = n.n_layers;
            Heads = n.n_heads;
            KvHeads = n.n_kv_heads;
            HeadDim = n.head_dim;
            FfnDim = n.ffn_dim;
            MaxContext = n.max_context;
            RopeTheta = n.rope_theta;
            RopeFactor = n.rope_factor;
            NormEps = n.norm_eps;
            RopeScaling = n.rope_scaling;
            TiedEmbeddings = n.tied_embeddings != 0;
            BosId = n.bos_id;
            EosIds = n.eos_ids.ToArray();
            Params = n.n_params;
            WeightBytes = n.weight_bytes;
            KvBytesPerToken = n.kv_bytes_per_token;
            LoadMode = n.load_mode;
        }
    }

    /// <summary>
    /// Log-probabilities of one sampled token (paca_token_logprobs): those of the adjusted logits
    /// (after logit bias and penalties, before truncation and temperature), natural log.
    /// </summary>
    public sealed class TokenLogprobs
    {
        public int Token { get; }
        public float Logprob { get; }
        /// <summary>The most probable tokens, most probable first (as many as GenerateOptions.TopLogprobs).</summary>
        public int[] TopTokens { get; }
        public float[] TopLogprobs { get; }

        internal TokenLogprobs(Paca.Native.TokenLogprobs n)
        {
            Token = n.token;
            Logprob = n.logprob;
            TopTokens = n.top_tokens.ToArray();
            TopLogprobs = n.top_logprobs.ToArray();
        }
    }

    /// <summary>
    /// A sampler (paca_sampler): turns a session's last logits, or logits you hold, into the next
    /// token with the chain of GenerateOptions (logit bias, penalties, top-k, top-p, min-p,
    /// temperature, seeded draw; greedy at temperature 0). It copies what it needs from the model.
    /// One thread at a time.
    /// </summary>
    public sealed class Sampler : IDisposable
    {
        readonly OwnedHandle<SWIGTYPE_p_paca_sampler> h;

        /// <summary>A sampler for model's vocabulary with options' sampling settings (stop strings ignored).</summary>
        public Sampler(Model model, GenerateOptions options = null)
        {
            using (var p = (options ?? new GenerateOptions()).ToNative())
            {
                var s = paca_native.sampler_create(Library.Require(model, "model").Ptr, p);
                Library.Check();
                h = Own(s);
            }
        }

        // Takes a sampler the library made (a snapshot's).
        internal Sampler(SWIGTYPE_p_paca_sampler s) { h = Own(s); }

        static OwnedHandle<SWIGTYPE_p_paca_sampler> Own(SWIGTYPE_p_paca_sampler s)
        {
            return new OwnedHandle<SWIGTYPE_p_paca_sampler>(SWIGTYPE_p_paca_sampler.getCPtr(s).Handle,
                                                            p => new SWIGTYPE_p_paca_sampler(p, false), paca_native.sampler_free);
        }

        internal SWIGTYPE_p_paca_sampler Ptr => h.Get("Sampler");

        /// <summary>
        /// Replaces the logit bias table: biases[i] is added to the logit of tokens[i]
        /// (-Infinity bans it); empty arrays clear it. Bad ids, NaN or +Infinity: PacaException
        /// InvalidArgument, and the table is unchanged.
        /// </summary>
        public void SetLogitBias(int[] tokens, float[] biases)
        {
            paca_native.sampler_set_logit_bias(Ptr, Library.Ids(tokens), Library.Floats(biases));
            Library.Check();
        }

        /// <summary>The next token from session's last logits (PacaException State when it has none); the session is not changed.</summary>
        public int Sample(Session session)
        {
            int t = paca_native.sampler_sample(Ptr, Library.Require(session, "session").Ptr, null);
            Library.Check();
            return t;
        }

        /// <summary>As Sample, with the token's log-probabilities.</summary>
        public TokenLogprobs SampleWithLogprobs(Session session)
        {
            using (var lp = new Paca.Native.TokenLogprobs())
            {
                paca_native.sampler_sample(Ptr, Library.Require(session, "session").Ptr, lp);
                Library.Check();
                return new TokenLogprobs(lp);
            }
        }

        /// <summary>The next token from logits (the vocabulary's size) after history (its length is the position).</summary>
        public int SampleLogits(float[] logits, int[] history)
        {
            int t = paca_native.sampler_sample_logits(Ptr, Library.Floats(logits), Library.Ids(history), null);
            Library.Check();
            return t;
        }

        /// <summary>Whether to stop after token was generated as number nGenerated (1-based): "eos", "stop_token", "length", or null.</summary>
        public string StopReason(int token, long nGenerated)
        {
            return Generation.Reason(paca_native.sampler_stop_reason(Ptr, token, nGenerated));
        }

        public void Dispose() { h.Dispose(); }
    }

    /// <summary>A session loaded from a snapshot and the sampler stored with it (null when none); Dispose disposes both.</summary>
    public sealed class LoadedSession : IDisposable
    {
        public Session Session { get; }
        public Sampler Sampler { get; }
        internal LoadedSession(Session session, Sampler sampler) { Session = session; Sampler = sampler; }
        public void Dispose()
        {
            Session.Dispose();
            if (Sampler != null) Sampler.Dispose();
        }
    }

    public sealed partial class Model
    {
        /// <summary>What the model is: sizes, special ids, parameter and memory counts.</summary>
        public ModelInfo Info()
        {
            using (var n = new Paca.Native.ModelInfo())
            {
                paca_native.model_info(Ptr, n);
                Library.Check();
                return new ModelInfo(n);
            }
        }

        public Sampler NewSampler(GenerateOptions options = null) { return new Sampler(this, options); }

        /// <summary>Loads a snapshot (Session.Save) into a new session of this model.</summary>
        public Session LoadSession(string path)
        {
            var s = paca_native.session_load(Ptr, Library.Bytes(path));
            Library.Check();
            return new Session(s);
        }

        /// <summary>Loads a snapshot and the sampler stored with it (Session.Save(path, sampler)).</summary>
        public LoadedSession LoadSessionWithSampler(string path)
        {
            using (var r = paca_native.session_load_with_sampler(Ptr, Library.Bytes(path)))
            {
                Library.Check();
                var session = new Session(r.session);
                return new LoadedSession(session, r.sampler == null ? null : new Sampler(r.sampler));
            }
        }
    }

    public sealed partial class Session
    {
        /// <summary>The context size in tokens.</summary>
        public long ContextSize => paca_native.session_context_size(Ptr);

        /// <summary>The sequence's token ids.</summary>
        public int[] Tokens()
        {
            using (var v = paca_native.session_tokens(Ptr))
            {
                Library.Check();
                return v.ToArray();
            }
        }

        /// <summary>
        /// Asks a prefill/decode running on this session (on another thread) to stop: it then throws
        /// PacaException Cancelled and leaves the session as before. Any thread, any time; cleared
        /// when the next step starts. A disposed session: nothing happens.
        /// </summary>
        public void Cancel()
        {
            bool added = false;
            try
            {
                h.DangerousAddRef(ref added);
                paca_native.session_cancel(h.Ptr);
            }
            catch (ObjectDisposedException) {}
            finally { if (added) h.DangerousRelease(); }
        }

        /// <summary>A new session continuing from this one's state (tokens, KV cache shared copy-on-write, logits).</summary>
        public Session Fork()
        {
            var s = paca_native.session_fork(Ptr);
            Library.Check();
            return new Session(s);
        }

        /// <summary>Saves to a snapshot file at path (replacing it, crash-safe), with sampler's settings unless null.</summary>
        public void Save(string path, Sampler sampler = null)
        {
            paca_native.session_save(Ptr, sampler == null ? null : sampler.Ptr, Library.Bytes(path));
            Library.Check();
        }

        /// <summary>
        /// Prompt cache: on an empty session, restores the longest prefix of tokens the snapshot at
        /// cachePath holds and prefills the rest; returns how many tokens came from the cache (a
        /// missing or foreign cache is a miss, 0).
        /// </summary>
        public long PrefillCached(string cachePath, int[] tokens)
        {
            long n = paca_native.session_prefill_cached(Ptr, Library.Bytes(cachePath), Library.Ids(tokens));
            Library.Check();
            return n;
        }
    }
}
