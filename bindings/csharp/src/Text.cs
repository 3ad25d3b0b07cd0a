// Text.cs - the text side of paca.h in the Paca namespace: token pieces and
// attributes, the streaming Detokenizer, the StopMatcher, chat templates
// (ChatOptions, Model.ChatFormat / ChatFormatJson / ChatTokenize /
// ChatTemplateJson) and tool-call parsing, quantization and the log queue.
// JSON crosses as strings, as paca.h defines it.
using System;
using System.Collections.Generic;
using System.Text;
using Paca.Native;

namespace Paca
{
    /// <summary>Bits of Model.TokenAttributes (paca_token_attr; values pinned).</summary>
    [Flags]
    public enum TokenAttr
    {
        None = 0, Normal = 1, Unknown = 2, Control = 4, UserDefined = 8, Unused = 16, Byte = 32, Bos = 64,
        /// <summary>Ends generation (EOS, EOT, EOM).</summary>
        Eog = 128
    }

    /// <summary>How a reply ended, for ParseToolCalls (paca_reply_end).</summary>
    public enum ReplyEnd { None = 0, Eot = 1, Eom = 2, Eos = 3 }

    /// <summary>Log levels (paca_log_level).</summary>
    public enum LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 }

    /// <summary>One line of the library's log.</summary>
    public sealed class LogLine
    {
        public LogLevel Level { get; internal set; }
        public string Message { get; internal set; }
        public override string ToString() { return Level + " " + Message; }
    }

    public static partial class Library
    {
        /// <summary>The ABI version of the loaded library (the shared library's SOVERSION).</summary>
        public static long AbiVersion => paca_native.abi_version();

        /// <summary>
        /// Recovers tool calls from a generated reply (special tokens as their text); end: how
        /// generation stopped when the text does not say. JSON: {"content", "tool_calls": [{"type",
        /// "name", "arguments"}], "python_tag", "malformed", "end", "awaiting_tool_result"}.
        /// </summary>
        public static string ParseToolCalls(string reply, ReplyEnd end = ReplyEnd.None)
        {
            var s = Text(paca_native.chat_parse_tool_calls(Bytes(reply), (int)end));
            Check();
            return s;
        }

        /// <summary>Renders messagesJson with options.Template (Jinja source or "builtin:..."), no model needed.</summary>
        public static string ChatFormat(string messagesJson, ChatOptions options)
        {
            return Chat.Format(null, messagesJson, options);
        }

        /// <summary>
        /// Writes outPath: the GGUF file inPath re-encoded as the quantization mix ("q4_0", "q8_0",
        /// "q4_k_m", ...); threads &lt;= 0 uses every core. Returns the JSON summary {"mix", "tensors",
        /// "converted", "bytes_in", "bytes_out", "types"}. (No progress callback: it would need a
        /// callback across SWIG.)
        /// </summary>
        public static string QuantizeGguf(string inPath, string outPath, string mix, int threads = 0)
        {
            var s = Text(paca_native.quantize_gguf(Bytes(inPath), Bytes(outPath), Bytes(mix), threads));
            Check();
            return s;
        }

        /// <summary>
        /// Sends the process-wide log (where a model has no sink of its own) to a queue that TakeLog
        /// drains, keeping lines up to maxLevel (at most 10000 wait).
        /// </summary>
        public static void CaptureLog(LogLevel maxLevel) { paca_native.set_log_capture(true, (int)maxLevel); }

        /// <summary>Restores the default log (stderr) with maxLevel (Warn is the library's default).</summary>
        public static void LogToStderr(LogLevel maxLevel = LogLevel.Warn) { paca_native.set_log_capture(false, (int)maxLevel); }

        /// <summary>The queued log lines, oldest first, removed from the queue.</summary>
        public static IList<LogLine> TakeLog()
        {
            var result = new List<LogLine>();
            using (var lines = paca_native.log_take())
            {
                foreach (var v in lines)
                {
                    var s = Encoding.UTF8.GetString(v.ToArray());
                    result.Add(new LogLine { Level = (LogLevel)(s[0] - '0'), Message = s.Substring(2) });
                }
            }
            return result;
        }
    }

    /// <summary>Settings of a chat rendering (paca_chat_params); null texts are unset. JSON as paca.h describes it.</summary>
    public sealed class ChatOptions
    {
        /// <summary>End with the assistant header (default true).</summary>
        public bool AddGenerationPrompt { get; set; } = true;
        /// <summary>A JSON array of tool definitions.</summary>
        public string Tools { get; set; }
        /// <summary>A JSON array of Llama 3.1 built-in tool names.</summary>
        public string BuiltinTools { get; set; }
        /// <summary>The "Today Date" text, e.g. "05 Mar 2025".</summary>
        public string Date { get; set; }
        /// <summary>A JSON object of more template variables.</summary>
        public string Extra { get; set; }
        /// <summary>Jinja source instead of the model's, or "builtin:llama2" / "builtin:llama3" / "builtin:llama3.1".</summary>
        public string Template { get; set; }
        /// <summary>{"bos_token": ..., "eos_token": ...} instead of the model's.</summary>
        public string SpecialTokens { get; set; }
        /// <summary>Seconds since the epoch for the template's strftime_now (0: the clock).</summary>
        public long Now { get; set; }

        internal ChatParams ToNative()
        {
            var p = new ChatParams();
            p.add_generation_prompt = AddGenerationPrompt;
            p.tools_json = Library.Optional(Tools);
            p.builtin_tools_json = Library.Optional(BuiltinTools);
            p.date = Library.Optional(Date);
            p.extra_json = Library.Optional(Extra);
            p.chat_template = Library.Optional(Template);
            p.special_tokens_json = Library.Optional(SpecialTokens);
            p.now = Now;
            return p;
        }
    }

    // The chat calls behind Model.ChatFormat / ChatFormatJson / ChatTokenize and Library.ChatFormat.
    static class Chat
    {
        internal static string Format(SWIGTYPE_p_paca_model m, string messagesJson, ChatOptions o)
        {
            using (var p = (o ?? new ChatOptions()).ToNative())
            {
                var s = Library.Text(paca_native.chat_format(m, Library.Bytes(messagesJson), p));
                Library.Check();
                return s;
            }
        }

        internal static string FormatJson(SWIGTYPE_p_paca_model m, string messagesJson, ChatOptions o)
        {
            using (var p = (o ?? new ChatOptions()).ToNative())
            {
                var s = Library.Text(paca_native.chat_format_json(m, Library.Bytes(messagesJson), p));
                Library.Check();
                return s;
            }
        }

        internal static int[] Tokenize(SWIGTYPE_p_paca_model m, string messagesJson, ChatOptions o)
        {
            using (var p = (o ?? new ChatOptions()).ToNative())
            using (var v = paca_native.chat_tokenize(m, Library.Bytes(messagesJson), p))
            {
                Library.Check();
                return v.ToArray();
            }
        }
    }

    public sealed partial class Model
    {
        /// <summary>
        /// The raw UTF-8 bytes of one token (possibly part of a character: join pieces before
        /// decoding, or use a Detokenizer); control tokens give their text only with special.
        /// </summary>
        public byte[] TokenToPiece(int id, bool special = false)
        {
            using (var v = paca_native.token_to_piece(Ptr, id, special ? 1 : 0))
            {
                Library.Check();
                return v.ToArray();
            }
        }

        /// <summary>The attribute bits of id.</summary>
        public TokenAttr TokenAttributes(int id)
        {
            long a = paca_native.token_attributes(Ptr, id);
            Library.Check();
            return (TokenAttr)a;
        }

        /// <summary>A JSON description of the model (format, architecture, sizes, dtypes, special tokens, memory, fingerprint).</summary>
        public string DescribeJson()
        {
            var s = Library.Text(paca_native.model_describe_json(Ptr));
            Library.Check();
            return s;
        }

        /// <summary>messagesJson rendered as prompt text by the model's chat format (options null: defaults).</summary>
        public string ChatFormat(string messagesJson, ChatOptions options = null) { return Chat.Format(Ptr, messagesJson, options); }

        /// <summary>As ChatFormat, as JSON {"text", "segments": [{"offset", "length", "user"}], "template"}.</summary>
        public string ChatFormatJson(string messagesJson, ChatOptions options = null)
        {
            return Chat.FormatJson(Ptr, messagesJson, options);
        }

        /// <summary>The rendered conversation's token ids; special-token text inside messages stays text.</summary>
        public int[] ChatTokenize(string messagesJson, ChatOptions options = null) { return Chat.Tokenize(Ptr, messagesJson, options); }

        /// <summary>The model's chat format as JSON: {"origin", "style", "bos_token", "eos_token", ..., "source"}.</summary>
        public string ChatTemplateJson()
        {
            var s = Library.Text(paca_native.chat_template_json(Ptr));
            Library.Check();
            return s;
        }

        /// <summary>Library.ParseToolCalls, here for convenience.</summary>
        public string ParseToolCalls(string reply, ReplyEnd end = ReplyEnd.None) { return Library.ParseToolCalls(reply, end); }

        public Detokenizer NewDetokenizer(bool special = false, bool keepLeadingSpace = false)
        {
            return new Detokenizer(this, special, keepLeadingSpace);
        }
    }

    /// <summary>
    /// Streaming detokenizer (paca_detokenizer): push a generation's ids one at a time and get the
    /// text each completes; the bytes of a character split across tokens are held back until it is
    /// whole. One text and one thread at a time; it may outlive its Model.
    /// </summary>
    public sealed class Detokenizer : IDisposable
    {
        readonly OwnedHandle<SWIGTYPE_p_paca_detokenizer> h;

        /// <summary>special: control tokens give their text; keepLeadingSpace: the ids continue an earlier text (Llama 2).</summary>
        public Detokenizer(Model model, bool special = false, bool keepLeadingSpace = false)
        {
            var p = paca_native.detokenizer_create(Library.Require(model, "model").Ptr, (special ? 1 : 0) | (keepLeadingSpace ? 2 : 0));
            Library.Check();
            h = new OwnedHandle<SWIGTYPE_p_paca_detokenizer>(
                SWIGTYPE_p_paca_detokenizer.getCPtr(p).Handle, x => new SWIGTYPE_p_paca_detokenizer(x, false), paca_native.detokenizer_free);
        }

        SWIGTYPE_p_paca_detokenizer Ptr => h.Get("Detokenizer");

        /// <summary>The text id completes (often ""); an id outside the vocabulary is PacaException InvalidArgument.</summary>
        public string Push(int id)
        {
            var s = Library.Text(paca_native.detokenizer_push(Ptr, id));
            Library.Check();
            return s;
        }

        /// <summary>Ends the text: what is still held back (an unfinished character as U+FFFD).</summary>
        public string Flush()
        {
            var s = Library.Text(paca_native.detokenizer_flush(Ptr));
            Library.Check();
            return s;
        }

        public void Dispose() { h.Dispose(); }
    }

    /// <summary>
    /// Finds stop strings in streamed text (paca_stop_matcher): Feed returns what is safe to show,
    /// holding back a suffix that could start a stop string; after the first complete stop string
    /// it returns nothing more. One thread at a time.
    /// </summary>
    public sealed class StopMatcher : IDisposable
    {
        readonly OwnedHandle<SWIGTYPE_p_paca_stop_matcher> h;

        /// <summary>The index of the stop string that matched, or -1.</summary>
        public int StopIndex { get; private set; } = -1;

        /// <summary>A matcher for stops (none: text passes through); an empty stop string is PacaException InvalidArgument.</summary>
        public StopMatcher(params string[] stops)
        {
            if (stops == null) throw new PacaException(PacaException.InvalidArgument, "stops is null");
            using (var list = new ByteVectorList())
            {
                foreach (var s in stops) list.Add(Library.Bytes(s));
                var p = paca_native.stop_matcher_create(list);
                Library.Check();
                h = new OwnedHandle<SWIGTYPE_p_paca_stop_matcher>(
                    SWIGTYPE_p_paca_stop_matcher.getCPtr(p).Handle, x => new SWIGTYPE_p_paca_stop_matcher(x, false), paca_native.stop_matcher_free);
            }
        }

        SWIGTYPE_p_paca_stop_matcher Ptr => h.Get("StopMatcher");

        /// <summary>Feeds a piece of text; returns the text to show now (possibly "").</summary>
        public string Feed(string text)
        {
            using (var f = paca_native.stop_matcher_feed(Ptr, Library.Bytes(text)))
            {
                Library.Check();
                StopIndex = f.stop_index;
                return Encoding.UTF8.GetString(f.text.ToArray());
            }
        }

        /// <summary>Ends a generation that stopped for another reason: the held-back text ("" after a match).</summary>
        public string Flush()
        {
            var s = Library.Text(paca_native.stop_matcher_flush(Ptr));
            Library.Check();
            return s;
        }

        /// <summary>Forgets held text and any match, for a new generation.</summary>
        public void Reset()
        {
            paca_native.stop_matcher_reset(Ptr);
            StopIndex = -1;
        }

        public void Dispose() { h.Dispose(); }
    }
}
