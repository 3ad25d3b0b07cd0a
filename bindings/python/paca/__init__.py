"""paca: Llama models from Python, over paca's C ABI (paca.h).

    import paca
    with paca.Model("stories260K.bin") as m:
        for piece in m.generate("Once upon a time", max_tokens=64):
            print(piece, end="", flush=True)

Model: load a checkpoint (Hugging Face directory, .gguf, llama2.c .bin);
tokenize / detokenize; generate (streaming text), complete (text, tokens,
logprobs, stop reason), chat (chat template, tool calls as objects).
Session: one sequence you drive yourself (prefill, step, rewind, logits as a
NumPy array; fork, save / load snapshots, a prompt cache). Sampler: paca's
sampling chain on a session's or your own logits; StopMatcher and
Detokenizer: the streaming pieces of the generation loop, for your own loop;
quantize_gguf; set_log_callback. Engine: many requests on one model at once (continuous
batching); submit returns a Request that streams its events. Errors are
paca.Error subclasses carrying status and message. Compute releases the GIL,
so other Python threads run meanwhile; a Model may be shared by threads, a
Session is used by one thread at a time, an Engine by any number.
"""

from __future__ import annotations

import atexit
import collections
import enum
import json
import operator
import os
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Union

from . import _paca
from ._errors import (BusyError, CancelledError, ContextFullError, DeviceError, Error, FileError, FormatError,
                      InternalError, InvalidArgumentError, OutOfMemoryError, StateError, TimeoutError,
                      UnsupportedError, error_class)

__all__ = [
    "Model", "Session", "Completion", "parse_reply", "ChatResponse", "ToolCall", "TokenLogprob", "version",
    "abi_version", "ABI_VERSION", "LogLevel", "set_log_callback", "quantize_gguf", "TokenAttr", "Detokenizer",
    "Sampler", "StopMatcher", "chat_format", "Engine", "Request", "RequestEvent", "RequestStats", "EngineStats",
    "Error", "InvalidArgumentError", "FileError", "FormatError", "UnsupportedError", "OutOfMemoryError",
    "ContextFullError", "CancelledError", "DeviceError", "StateError", "BusyError", "TimeoutError", "InternalError",
]

_STOP_REASONS = {0: None, 1: "eos", 2: "stop_token", 3: "stop_string", 4: "length", 5: "context_full"}

Prompt = Union[str, Sequence[int]]


def version() -> str:
    """The library version, "MAJOR.MINOR.PATCH"."""
    return _paca.version()


ABI_VERSION: int = _paca.ABI_VERSION  # the ABI this binding was compiled against (PACA_ABI_VERSION)


def abi_version() -> int:
    """The ABI version of the loaded libpaca; equals ABI_VERSION for a matching library."""
    return _paca.abi_version()


class LogLevel(enum.IntEnum):
    """paca_log_level: the levels of log messages (a sink gets those up to its max_level)."""
    ERROR = 0
    WARN = 1
    INFO = 2
    DEBUG = 3


def set_log_callback(callback: Optional[Callable[[int, str], None]], max_level: int = LogLevel.WARN) -> None:
    """Sends paca's log lines (of models without a sink of their own) to callback(level, message)
    instead of stderr; messages above max_level are dropped. The library may call it from any
    thread; it runs holding the GIL, and an exception it raises goes to sys.unraisablehook.
    None restores the default sink (stderr, WARN and above)."""
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable or None")
    _paca.set_log_callback(callback, int(max_level))


# the library's threads must not call into an interpreter that is shutting down
atexit.register(_paca.set_log_callback, None, int(LogLevel.WARN))


def quantize_gguf(in_path: Union[str, os.PathLike], out_path: Union[str, os.PathLike], mix: str,
                  threads: Optional[int] = None, progress: Optional[Callable[[float], Any]] = None) -> dict:
    """Writes out_path: the GGUF file in_path with its weights re-encoded as the block-quantization
    mix ("q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k").
    progress(fraction) is called as it goes (holding the GIL); a true result cancels
    (CancelledError) and an exception it raises cancels and propagates. A failure leaves no
    out_path. Returns the summary: {"mix", "tensors", "converted", "bytes_in", "bytes_out",
    "types": {type: count}}. Runs without the GIL."""
    if progress is not None and not callable(progress):
        raise TypeError("progress must be callable or None")
    return json.loads(_paca.quantize_gguf(os.fspath(in_path), os.fspath(out_path), mix, int(threads or 0),
                                          progress))


class TokenAttr(enum.IntFlag):
    """paca_token_attr: what kind of vocabulary entry a token is (Model.token_attributes)."""
    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 4
    USER_DEFINED = 8
    UNUSED = 16
    BYTE = 32
    BOS = 64
    EOG = 128


def _chat_options(tools: Optional[Sequence[dict]] = None, add_generation_prompt: bool = True,
                  date: Optional[str] = None, builtin_tools: Optional[Sequence[str]] = None,
                  extra: Optional[dict] = None, chat_template: Optional[str] = None,
                  special_tokens: Optional[dict] = None, now: Optional[int] = None) -> dict:
    o: dict = {"add_generation_prompt": bool(add_generation_prompt), "date": date, "chat_template": chat_template,
               "tools_json": json.dumps(list(tools)) if tools else None,
               "builtin_tools_json": json.dumps(list(builtin_tools)) if builtin_tools else None,
               "extra_json": json.dumps(dict(extra)) if extra is not None else None,
               "special_tokens_json": json.dumps(dict(special_tokens)) if special_tokens is not None else None}
    if now is not None:
        o["now"] = int(now)
    return o


def chat_format(messages: Sequence[dict], chat_template: str, tools: Optional[Sequence[dict]] = None,
                add_generation_prompt: bool = True, date: Optional[str] = None,
                builtin_tools: Optional[Sequence[str]] = None, extra: Optional[dict] = None,
                special_tokens: Optional[dict] = None, now: Optional[int] = None) -> str:
    """Renders messages with chat_template (Jinja source, or "builtin:llama2" / "builtin:llama3" /
    "builtin:llama3.1") without a model; Model.chat_prompt renders with a model's own template."""
    if not isinstance(chat_template, str):
        raise TypeError("chat_template must be a str")
    return _paca.chat_format(None, json.dumps(list(messages)),
                             _chat_options(tools, add_generation_prompt, date, builtin_tools, extra, chat_template,
                                           special_tokens, now), False)


def _bias_lists(logit_bias: Optional[Any]) -> tuple:
    """The (tokens, biases) lists of an OpenAI-style logit bias {token_id: bias} (keys may be ints
    or strings of ints, as in JSON); None or {} is no bias."""
    if logit_bias is None:
        return [], []
    if not hasattr(logit_bias, "items"):
        raise TypeError("logit_bias must be a dict {token_id: bias}")
    tokens, biases = [], []
    for k, v in logit_bias.items():
        if isinstance(k, bool) or not isinstance(k, (int, str)):
            raise TypeError("logit_bias: a key must be a token id, not %r" % (k,))
        try:
            tokens.append(int(k))
        except ValueError:
            raise ValueError("logit_bias: %r is not a token id" % (k,)) from None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError("logit_bias: the bias of %r must be a number, not %r" % (k, v))
        biases.append(float(v))
    return tokens, biases


@dataclass
class TokenLogprob:
    """A generated token's log-probability and the most probable alternatives."""
    token: int
    logprob: float
    top: List[tuple] = field(default_factory=list)  # [(token, logprob), ...]


@dataclass
class RequestStats:
    """What an engine request's last event reports: prompt tokens, those whose KV came from the
    prefix cache, tokens generated, times preempted (and recomputed), and milliseconds from
    submit to its first step, its first token and its end."""
    n_prompt: int
    n_cached: int
    n_generated: int
    n_preempted: int
    queue_ms: float
    first_token_ms: float
    total_ms: float


@dataclass
class Completion:
    """A finished generation: its text, token ids, log-probabilities (when asked) and stop reason
    ("eos", "stop_token", "stop_string", "length" or "context_full"); stats for an engine request."""
    text: str
    tokens: List[int]
    stop_reason: str
    logprobs: Optional[List[TokenLogprob]] = None
    stats: Optional[RequestStats] = None


@dataclass
class ToolCall:
    """A tool call recovered from a reply: type is "function", "builtin" or "code_interpreter"."""
    name: str
    arguments: Any
    type: str = "function"


@dataclass
class ChatResponse:
    """An assistant reply: content (text that is not a call), tool_calls, the raw text and stop reason."""
    content: str
    tool_calls: List[ToolCall]
    stop_reason: str
    text: str
    awaiting_tool_result: bool = False

    def message(self) -> dict:
        """The reply as a message to append to the conversation."""
        m: dict = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            m["tool_calls"] = [{"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                               for c in self.tool_calls]
        return m


def _sampling(max_tokens: int, temperature: float, top_p: float, top_k: int, min_p: float,
              repeat_penalty: float, seed: int, stop_tokens: Iterable[int], logprobs: int,
              ignore_eos: bool, frequency_penalty: float = 0.0, presence_penalty: float = 0.0,
              repeat_last_n: int = 64, grammar: Optional[str] = None,
              json_schema: Union[str, dict, None] = None) -> dict:
    return {"max_new_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "top_k": top_k,
            "min_p": min_p, "repeat_penalty": repeat_penalty, "seed": seed, "stop_ids": list(stop_tokens),
            "n_top_logprobs": max(logprobs, 0), "ignore_eos": ignore_eos, "frequency_penalty": frequency_penalty,
            "presence_penalty": presence_penalty, "repeat_last_n": repeat_last_n, "grammar": grammar,
            "json_schema": json.dumps(json_schema) if isinstance(json_schema, dict) else json_schema}


def _extra_sampling(frequency_penalty: float, presence_penalty: float, repeat_last_n: int, grammar: Optional[str],
                    json_schema: Union[str, dict, None]) -> dict:
    """The keyword-only sampling settings of generate / complete / submit, passed on as one dict."""
    return {"frequency_penalty": frequency_penalty, "presence_penalty": presence_penalty,
            "repeat_last_n": repeat_last_n, "grammar": grammar, "json_schema": json_schema}


class _Handle:
    """close(), closed and the context manager of a wrapper whose low-level handle is the attribute
    named by _handle; closing twice is harmless."""
    _handle = "_h"

    def close(self) -> None:
        """Frees the handle (idempotent)."""
        getattr(self, self._handle).close()

    @property
    def closed(self) -> bool:
        return getattr(self, self._handle).closed

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_KV_DTYPES = {"auto": -1, "f32": 0, "bf16": 1}
_WEIGHT_DTYPES = {"as_stored": 0, "fp8": 1}
_FP8_MODES = {"auto": 0, "w8a8": 1, "w8a16": 2}
_LOAD_MODES = {"mmap": 0, "read": 1, "auto": 2}
_FP8_TARGETS = {"mlp": 1, "attention": 2, "keep_first_last": 4}


def _choice(what: str, value: Union[str, int], table: dict) -> int:
    if isinstance(value, str):
        if value not in table:
            raise ValueError("%s: %r is not one of %s" % (what, value, ", ".join(table)))
        return table[value]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s must be one of %s" % (what, ", ".join(table)))
    return value


def _model_options(kv_dtype, kv_block_tokens, tokenizer_path, weight_dtype, fp8_targets, fp8_mode, load_mode,
                   tensor_parallel, pipeline_parallel, devices, rank, world_size, rendezvous, comm_timeout_ms,
                   kv_memory_fraction, cpu_isa, cuda_graphs, cuda_fp8_decode_w8a16, cuda_fp8_prefill_w8a8,
                   cuda_fp8_fused_norm) -> dict:
    o: dict = {}
    if kv_dtype is not None:
        o["kv_dtype"] = _choice("kv_dtype", kv_dtype, _KV_DTYPES)
    if weight_dtype is not None:
        o["weight_dtype"] = _choice("weight_dtype", weight_dtype, _WEIGHT_DTYPES)
    if fp8_mode is not None:
        o["fp8_mode"] = _choice("fp8_mode", fp8_mode, _FP8_MODES)
    if load_mode is not None:
        o["load_mode"] = _choice("load_mode", load_mode, _LOAD_MODES)
    if fp8_targets is not None:
        if isinstance(fp8_targets, int) and not isinstance(fp8_targets, bool):
            o["fp8_targets"] = fp8_targets
        else:
            o["fp8_targets"] = sum(_choice("fp8_targets", t, _FP8_TARGETS) for t in fp8_targets)
    if tokenizer_path is not None:
        o["tokenizer_path"] = os.fspath(tokenizer_path)
    for key, value in (("kv_block_tokens", kv_block_tokens), ("tensor_parallel", tensor_parallel),
                       ("pipeline_parallel", pipeline_parallel), ("rank", rank), ("world_size", world_size),
                       ("comm_timeout_ms", comm_timeout_ms)):
        if value is not None:
            o[key] = value
    for key, value in (("devices", devices), ("rendezvous", rendezvous), ("cpu_isa", cpu_isa)):
        if value is not None:
            o[key] = value
    if kv_memory_fraction is not None:
        o["kv_memory_fraction"] = float(kv_memory_fraction)
    for key, value in (("cuda_graphs", cuda_graphs), ("cuda_fp8_decode_w8a16", cuda_fp8_decode_w8a16),
                       ("cuda_fp8_prefill_w8a8", cuda_fp8_prefill_w8a8), ("cuda_fp8_fused_norm", cuda_fp8_fused_norm)):
        if value is not None:
            o[key] = 1 if value else 0
    return o


class Model(_Handle):
    """A loaded model. ``device`` is "cpu"; ``threads`` None uses every hardware thread.

    The other keywords are paca_model_params (None: paca's default): kv_dtype "auto" | "f32" |
    "bf16"; kv_block_tokens; tokenizer_path (a tokenizer file to use instead of the
    checkpoint's); weight_dtype "as_stored" | "fp8" with fp8_targets (flags, or names "mlp",
    "attention", "keep_first_last") and fp8_mode "auto" | "w8a8" | "w8a16"; load_mode "mmap" |
    "read" | "auto"; tensor_parallel, pipeline_parallel, devices, rank, world_size, rendezvous,
    comm_timeout_ms (sharding); kv_memory_fraction (a KV pool reserved at load); cpu_isa; the
    CUDA switches. progress(fraction) is called during the load (holding the GIL); a true result
    cancels it (CancelledError), an exception it raises cancels and propagates. log(level, message)
    is this model's own log sink (its sessions, engines and detokenizers log there too, for as
    long as they live), taking messages up to log_level, instead of the process-wide one of
    set_log_callback; it is called as that one is.

    Raises FileError for a missing path, FormatError / UnsupportedError for files paca cannot run.
    Use as a context manager or call close(); closing twice is harmless. Sessions keep the
    model's memory alive, so closing the model while they run is safe.
    """

    _handle = "_m"

    def __init__(self, path: Union[str, os.PathLike], device: str = "cpu", threads: Optional[int] = None, *,
                 kv_dtype: Union[str, int, None] = None, kv_block_tokens: Optional[int] = None,
                 tokenizer_path: Union[str, os.PathLike, None] = None, weight_dtype: Union[str, int, None] = None,
                 fp8_targets: Union[int, Sequence[str], None] = None, fp8_mode: Union[str, int, None] = None,
                 load_mode: Union[str, int, None] = None, tensor_parallel: Optional[int] = None,
                 pipeline_parallel: Optional[int] = None, devices: Optional[str] = None, rank: Optional[int] = None,
                 world_size: Optional[int] = None, rendezvous: Optional[str] = None,
                 comm_timeout_ms: Optional[int] = None, kv_memory_fraction: Optional[float] = None,
                 cpu_isa: Optional[str] = None, cuda_graphs: Optional[bool] = None,
                 cuda_fp8_decode_w8a16: Optional[bool] = None, cuda_fp8_prefill_w8a8: Optional[bool] = None,
                 cuda_fp8_fused_norm: Optional[bool] = None, progress: Optional[Callable[[float], Any]] = None,
                 log: Optional[Callable[[int, str], None]] = None, log_level: int = LogLevel.WARN):
        options = _model_options(kv_dtype, kv_block_tokens, tokenizer_path, weight_dtype, fp8_targets, fp8_mode,
                                 load_mode, tensor_parallel, pipeline_parallel, devices, rank, world_size, rendezvous,
                                 comm_timeout_ms, kv_memory_fraction, cpu_isa, cuda_graphs, cuda_fp8_decode_w8a16,
                                 cuda_fp8_prefill_w8a8, cuda_fp8_fused_norm)
        if progress is not None and not callable(progress):
            raise TypeError("progress must be callable or None")
        if log is not None and not callable(log):
            raise TypeError("log must be callable or None")
        self._m = _paca.Model(os.fspath(path), device, int(threads or 0), options, progress, log, int(log_level))

    @property
    def info(self) -> dict:
        """Architecture and sizes: n_vocab, dim, n_layers, bos_id, eos_ids, max_context, ..."""
        return self._m.info()

    def describe(self) -> dict:
        """paca_model_describe_json: format, architecture, sizes, dtypes, special tokens, memory and
        the model's fingerprint."""
        return json.loads(self._m.describe_json())

    def token_to_piece(self, token: int, special: bool = False) -> bytes:
        """The raw bytes of one token. A piece may be part of a UTF-8 character, so join pieces
        before decoding them (or use a Detokenizer); control tokens give their text only when
        special. InvalidArgumentError for an id outside the vocabulary."""
        return self._m.token_to_piece(operator.index(token), 1 if special else 0)

    def token_attributes(self, token: int) -> TokenAttr:
        """The TokenAttr flags of a token (UNUSED for padding ids past the tokenizer's vocabulary)."""
        return TokenAttr(self._m.token_attributes(operator.index(token)))

    def detokenizer(self, special: bool = False, keep_leading_space: bool = False) -> "Detokenizer":
        """A streaming Detokenizer for this model's tokenizer."""
        return Detokenizer(self, special, keep_leading_space)

    def sampler(self, **sampling: Any) -> "Sampler":
        """A Sampler for this model (keywords as Sampler's)."""
        return Sampler(self, **sampling)

    def tokenize(self, text: str, bos: bool = True, special: bool = False) -> List[int]:
        """Token ids of text; bos adds the start-of-text token(s), special recognises control-token text."""
        return self._m.tokenize(text, (1 if bos else 0) | (2 if special else 0))

    def detokenize(self, ids: Sequence[int], special: bool = False) -> str:
        """The text of token ids (control tokens as text when special)."""
        return self._m.detokenize(list(ids), 1 if special else 0)

    def session(self, n_ctx: int = 0) -> "Session":
        """A new Session on this model (n_ctx 0: the model's context length)."""
        return Session(self, n_ctx)

    def _prompt(self, prompt: Prompt) -> List[int]:
        return self.tokenize(prompt) if isinstance(prompt, str) else list(prompt)

    def generate(self, prompt: Prompt, max_tokens: int = 128, temperature: float = 0.0, top_p: float = 1.0,
                 top_k: int = 0, min_p: float = 0.0, repeat_penalty: float = 1.0, seed: int = 0,
                 stop: Sequence[str] = (), stop_tokens: Sequence[int] = (), ignore_eos: bool = False,
                 n_ctx: int = 0, *,
                 frequency_penalty: float = 0.0, presence_penalty: float = 0.0, repeat_last_n: int = 64,
                 grammar: Optional[str] = None, json_schema: Union[str, dict, None] = None) -> Iterator[str]:
        """Streams the continuation of prompt (text, tokenized with BOS, or token ids) as text pieces.

        temperature 0 is greedy; seed makes sampling reproducible (the same tokens as paca's C API,
        `paca run` and the other bindings for the same request). Generation ends at the model's end
        token, a stop token id, a stop string (not included in the text) or after max_tokens.
        frequency_penalty, presence_penalty and repeat_last_n are the sampler's penalties; grammar
        (GBNF) or json_schema (a dict or its JSON text) constrains the text.
        """
        with self.session(n_ctx) as s:
            yield from s.generate(self._prompt(prompt), max_tokens=max_tokens, temperature=temperature,
                                  top_p=top_p, top_k=top_k, min_p=min_p, repeat_penalty=repeat_penalty,
                                  seed=seed, stop=stop, stop_tokens=stop_tokens, ignore_eos=ignore_eos,
                                  **_extra_sampling(frequency_penalty, presence_penalty, repeat_last_n, grammar,
                                                    json_schema))

    def complete(self, prompt: Prompt, max_tokens: int = 128, temperature: float = 0.0, top_p: float = 1.0,
                 top_k: int = 0, min_p: float = 0.0, repeat_penalty: float = 1.0, seed: int = 0,
                 stop: Sequence[str] = (), stop_tokens: Sequence[int] = (), ignore_eos: bool = False,
                 logprobs: Optional[int] = None, n_ctx: int = 0, *,
                 frequency_penalty: float = 0.0, presence_penalty: float = 0.0, repeat_last_n: int = 64,
                 grammar: Optional[str] = None, json_schema: Union[str, dict, None] = None) -> Completion:
        """As generate, but returns the whole Completion; logprobs=N adds each token's
        log-probability and N alternatives (0..20)."""
        with self.session(n_ctx) as s:
            return s.complete(self._prompt(prompt), max_tokens=max_tokens, temperature=temperature,
                              top_p=top_p, top_k=top_k, min_p=min_p, repeat_penalty=repeat_penalty, seed=seed,
                              stop=stop, stop_tokens=stop_tokens, ignore_eos=ignore_eos, logprobs=logprobs,
                              **_extra_sampling(frequency_penalty, presence_penalty, repeat_last_n, grammar,
                                                json_schema))

    def complete_batch(self, prompts: Sequence[Prompt], max_tokens: int = 128, temperature: float = 0.0,
                       top_p: float = 1.0, top_k: int = 0, min_p: float = 0.0, repeat_penalty: float = 1.0,
                       seed: Union[int, Sequence[int]] = 0, stop: Sequence[str] = (),
                       stop_tokens: Sequence[int] = (), ignore_eos: bool = False,
                       logprobs: Optional[int] = None, n_ctx: int = 0, *, frequency_penalty: float = 0.0,
                       presence_penalty: float = 0.0, repeat_last_n: int = 64, grammar: Optional[str] = None,
                       json_schema: Union[str, dict, None] = None) -> List[Completion]:
        """complete() for several prompts at once: each decode step runs every unfinished prompt
        through the model together (each weight is read once per step for all of them), and each
        prompt gets exactly the Completion complete() gives it alone. seed is one seed for all
        prompts or one per prompt."""
        seeds = [seed] * len(prompts) if isinstance(seed, int) else list(seed)
        if len(seeds) != len(prompts):
            raise ValueError("seed: %d seeds for %d prompts" % (len(seeds), len(prompts)))
        extra = _extra_sampling(frequency_penalty, presence_penalty, repeat_last_n, grammar, json_schema)
        sessions = [self.session(n_ctx) for _ in prompts]
        gens: List[Any] = []
        try:
            for s, p, sd in zip(sessions, prompts, seeds):
                gens.append(s._generator(self._prompt(p), max_tokens, temperature, top_p, top_k, min_p,
                                         repeat_penalty, sd, stop, stop_tokens, ignore_eos, logprobs, extra))
            pieces: List[List[str]] = [[] for _ in prompts]
            tokens: List[List[int]] = [[] for _ in prompts]
            lps: List[Optional[List[TokenLogprob]]] = [[] if logprobs is not None else None for _ in prompts]
            active = list(range(len(prompts)))
            while active:
                steps = _paca.next_batch([gens[i] for i in active])
                still = []
                for i, step in zip(active, steps):
                    if step is None:
                        continue
                    still.append(i)
                    tokens[i].append(step[0])
                    pieces[i].append(step[1])
                    if lps[i] is not None:
                        tok, lp, top = gens[i].logprobs()
                        lps[i].append(TokenLogprob(tok, lp, list(top)))
                active = still
            return [Completion("".join(pieces[i]), tokens[i], _STOP_REASONS[gens[i].stop_reason()], lps[i])
                    for i in range(len(prompts))]
        finally:
            for g in gens:
                g.close()
            for s in sessions:
                s.close()

    def chat_prompt(self, messages: Sequence[dict], tools: Optional[Sequence[dict]] = None,
                    add_generation_prompt: bool = True, date: Optional[str] = None, *,
                    builtin_tools: Optional[Sequence[str]] = None, extra: Optional[dict] = None,
                    chat_template: Optional[str] = None, special_tokens: Optional[dict] = None,
                    now: Optional[int] = None) -> str:
        """The conversation rendered by the model's chat template (as transformers renders it).
        builtin_tools: Llama 3.1 built-in tool names; extra: more template variables;
        chat_template: Jinja source (or "builtin:llama3.1", ...) to use instead of the model's;
        special_tokens: {"bos_token": ..., ...} instead of the model's; now: the epoch seconds the
        template's strftime_now sees. Special-token text inside messages stays text here, but
        tokenizing the result with special=True would turn it into control tokens: use
        chat_tokenize to get the model's input."""
        return self._m_chat_format(messages, False, tools, add_generation_prompt, date, builtin_tools, extra,
                                   chat_template, special_tokens, now)

    def chat_format_json(self, messages: Sequence[dict], tools: Optional[Sequence[dict]] = None,
                         add_generation_prompt: bool = True, date: Optional[str] = None, *,
                         builtin_tools: Optional[Sequence[str]] = None, extra: Optional[dict] = None,
                         chat_template: Optional[str] = None, special_tokens: Optional[dict] = None,
                         now: Optional[int] = None) -> dict:
        """As chat_prompt, with the segments of the text: {"text", "segments": [{"offset",
        "length", "user"}], "template"}; offsets and lengths count bytes of the UTF-8 text, and
        "user" marks bytes that came from the messages, tools or other caller data."""
        return json.loads(self._m_chat_format(messages, True, tools, add_generation_prompt, date, builtin_tools,
                                              extra, chat_template, special_tokens, now))

    def _m_chat_format(self, messages, as_json, *options) -> str:
        return _paca.chat_format(self._m, json.dumps(list(messages)), _chat_options(*options), as_json)

    def chat_tokenize(self, messages: Sequence[dict], tools: Optional[Sequence[dict]] = None,
                      add_generation_prompt: bool = True, date: Optional[str] = None, *,
                      builtin_tools: Optional[Sequence[str]] = None, extra: Optional[dict] = None,
                      chat_template: Optional[str] = None, special_tokens: Optional[dict] = None,
                      now: Optional[int] = None) -> List[int]:
        """The token ids of the rendered conversation (paca_chat_tokenize): special-token text is
        a control token only where the template wrote it; the same text inside a message stays
        ordinary text. No BOS is added beyond the template's."""
        return self._m.chat_tokenize(json.dumps(list(messages)),
                                     _chat_options(tools, add_generation_prompt, date, builtin_tools, extra,
                                                   chat_template, special_tokens, now))

    def chat_template(self) -> dict:
        """The model's chat format: {"origin", "style", "bos_token", "eos_token", "unk_token",
        "pad_token", "source"}."""
        return json.loads(self._m.chat_template_json())

    def chat(self, messages: Sequence[dict], tools: Optional[Sequence[dict]] = None, max_tokens: int = 256,
             temperature: float = 0.0, top_p: float = 1.0, seed: int = 0, date: Optional[str] = None,
             n_ctx: int = 0) -> ChatResponse:
        """Generates the assistant's reply to messages ([{"role": ..., "content": ...}, ...]) with
        the model's chat template; tools are JSON-schema function definitions. The prompt is
        tokenized by chat_tokenize, so special-token text a user writes stays text. Tool calls in
        the reply come back as ToolCall objects; run them, append response.message() and one
        {"role": "tool", "content": ...} per result, and call chat again."""
        ids = self.chat_tokenize(messages, tools, True, date)
        with self.session(n_ctx) as s:
            g = _paca.Generator(s._s, ids, _sampling(max_tokens, temperature, top_p, 0, 0.0, 1.0, seed, (), 0,
                                                     False), [], False, True)
            try:
                pieces = []
                while (step := g.next()) is not None:
                    pieces.append(step[1])
                reason = _STOP_REASONS[g.stop_reason()]
            finally:
                g.close()
        return parse_reply("".join(pieces), reason)


def parse_reply(text: str, stop_reason: str = "eos") -> ChatResponse:
    """Splits a generated reply (with special tokens as text, e.g. "<|python_tag|>...<|eom_id|>")
    into content and ToolCall objects (built-in calls, code_interpreter, JSON, <function=...>,
    pythonic lists). A call that does not parse stays in content."""
    parsed = json.loads(_paca.parse_tool_calls(text, 0))
    calls = [ToolCall(c.get("name", ""), c.get("arguments"), c.get("type", "function"))
             for c in parsed.get("tool_calls", [])]
    return ChatResponse(parsed.get("content", ""), calls, stop_reason, text,
                        bool(parsed.get("awaiting_tool_result", False)))


class Session(_Handle):
    """One sequence on a model: its tokens, KV cache and last logits. Used by one thread at a time.

    prefill(tokens) runs a prompt, step(token) appends one token, rewind(n) truncates, logits is
    a read-only NumPy view of the last position's logits (no copy; it changes with the session,
    so copy it to keep it). Context manager; close() twice is harmless.
    """

    _handle = "_s"

    def __init__(self, model: Model, n_ctx: int = 0):
        self._s = _paca.Session(model._m, int(n_ctx))

    @classmethod
    def _wrap(cls, raw: Any) -> "Session":
        s = cls.__new__(cls)
        s._s = raw
        return s

    def fork(self) -> "Session":
        """A new session that continues from this one's state (tokens, KV cache shared
        copy-on-write, logits); the two are independent afterwards."""
        return Session._wrap(self._s.fork())

    def save(self, path: Union[str, os.PathLike], sampler: Optional["Sampler"] = None) -> None:
        """Writes a snapshot of the session (and the settings of sampler, when given) to path,
        replacing it crash-safely (a temporary file renamed over it)."""
        if sampler is not None and not isinstance(sampler, Sampler):
            raise TypeError("sampler must be a paca.Sampler or None")
        self._s.save(os.fspath(path), sampler._h if sampler is not None else None)

    @classmethod
    def load(cls, model: Model, path: Union[str, os.PathLike]) -> "Session":
        """A new session of model from the snapshot at path: its next logits and tokens are bit for
        bit those the saved session would have produced. FileError (unreadable), FormatError (not
        a snapshot, truncated, corrupt), UnsupportedError (newer library or other KV dtype),
        InvalidArgumentError (saved from a different model)."""
        return cls._wrap(_paca.Session.load(model._m, os.fspath(path)))

    @classmethod
    def load_with_sampler(cls, model: Model, path: Union[str, os.PathLike]) -> "tuple":
        """As load, and also the Sampler stored in the snapshot: (session, sampler or None)."""
        raw, smp = _paca.Session.load_with_sampler(model._m, os.fspath(path))
        return cls._wrap(raw), (Sampler._wrap(smp) if smp is not None else None)

    def prefill_cached(self, cache_path: Union[str, os.PathLike], tokens: Sequence[int]) -> int:
        """Prompt cache: on an empty session, restores from the snapshot at cache_path the longest
        prefix it shares with tokens and prefills the rest; returns how many tokens came from the
        cache. A missing or unusable cache file is a miss (a warning in the log), not an error.
        Save the extended state with save(cache_path) afterwards."""
        return self._s.prefill_cached(os.fspath(cache_path), list(tokens))

    def __len__(self) -> int:
        return self._s.length()

    @property
    def context_size(self) -> int:
        return self._s.context_size()

    @property
    def tokens(self) -> List[int]:
        return self._s.tokens()

    def prefill(self, tokens: Sequence[int]) -> None:
        """Appends tokens and computes the logits of the last one (ContextFullError if they do not fit)."""
        self._s.prefill(list(tokens))

    def step(self, token: int) -> None:
        """Appends one token and computes its logits."""
        self._s.decode(int(token))

    def rewind(self, n_tokens: int) -> None:
        """Keeps the first n_tokens tokens; the logits are unavailable until the next prefill/step."""
        self._s.rewind(int(n_tokens))

    def cancel(self) -> None:
        """Asks a running prefill/step on this session (in another thread) to stop: it raises CancelledError."""
        self._s.cancel()

    @property
    def logits(self):
        """The last position's logits, a read-only float32 NumPy array of n_vocab (no copy)."""
        return self._s.logits()

    def _generator(self, prompt: Sequence[int], max_tokens: int, temperature: float, top_p: float, top_k: int,
                   min_p: float, repeat_penalty: float, seed: int, stop: Sequence[str], stop_tokens: Sequence[int],
                   ignore_eos: bool, logprobs: Optional[int], extra: dict):
        return _paca.Generator(self._s, list(prompt),
                               _sampling(max_tokens, temperature, top_p, top_k, min_p, repeat_penalty, seed,
                                         stop_tokens, logprobs or 0, ignore_eos, **extra),
                               list(stop), logprobs is not None, False)

    def generate(self, prompt: Sequence[int] = (), max_tokens: int = 128, temperature: float = 0.0,
                 top_p: float = 1.0, top_k: int = 0, min_p: float = 0.0, repeat_penalty: float = 1.0,
                 seed: int = 0, stop: Sequence[str] = (), stop_tokens: Sequence[int] = (),
                 ignore_eos: bool = False, *,
                 frequency_penalty: float = 0.0, presence_penalty: float = 0.0, repeat_last_n: int = 64,
                 grammar: Optional[str] = None, json_schema: Union[str, dict, None] = None) -> Iterator[str]:
        """Prefills prompt (token ids; empty: continue from the current logits) and streams the
        generated text pieces. See Model.generate."""
        extra = _extra_sampling(frequency_penalty, presence_penalty, repeat_last_n, grammar, json_schema)
        g = self._generator(prompt, max_tokens, temperature, top_p, top_k, min_p, repeat_penalty, seed, stop,
                            stop_tokens, ignore_eos, None, extra)
        try:
            while (step := g.next()) is not None:
                if step[1]:
                    yield step[1]
        finally:
            g.close()

    def complete(self, prompt: Sequence[int] = (), max_tokens: int = 128, temperature: float = 0.0,
                 top_p: float = 1.0, top_k: int = 0, min_p: float = 0.0, repeat_penalty: float = 1.0,
                 seed: int = 0, stop: Sequence[str] = (), stop_tokens: Sequence[int] = (),
                 ignore_eos: bool = False, logprobs: Optional[int] = None, *,
                 frequency_penalty: float = 0.0, presence_penalty: float = 0.0, repeat_last_n: int = 64,
                 grammar: Optional[str] = None, json_schema: Union[str, dict, None] = None) -> Completion:
        """As generate, but returns the whole Completion (see Model.complete)."""
        extra = _extra_sampling(frequency_penalty, presence_penalty, repeat_last_n, grammar, json_schema)
        g = self._generator(prompt, max_tokens, temperature, top_p, top_k, min_p, repeat_penalty, seed, stop,
                            stop_tokens, ignore_eos, logprobs, extra)
        try:
            pieces: List[str] = []
            tokens: List[int] = []
            lps: Optional[List[TokenLogprob]] = [] if logprobs is not None else None
            while (step := g.next()) is not None:
                tokens.append(step[0])
                pieces.append(step[1])
                if lps is not None:
                    tok, lp, top = g.logprobs()
                    lps.append(TokenLogprob(tok, lp, list(top)))
            return Completion("".join(pieces), tokens, _STOP_REASONS[g.stop_reason()], lps)
        finally:
            g.close()


class Detokenizer(_Handle):
    """Streaming detokenizer: push(token) returns the text that token completes (often ""), never
    ending inside a UTF-8 character (bytes are held back until their character is whole);
    flush() returns what is still held (an unfinished character becomes U+FFFD) and starts a new
    text. special renders control tokens as their text; keep_leading_space keeps the Llama 2
    leading space of the first token (for ids that continue an earlier text). It keeps its
    model's tokenizer alive. Context manager; close() twice is harmless."""

    def __init__(self, model: Model, special: bool = False, keep_leading_space: bool = False):
        self._h = _paca.Detokenizer(model._m, (1 if special else 0) | (2 if keep_leading_space else 0))

    def push(self, token: int) -> str:
        """Feeds one id (InvalidArgumentError, changing nothing, for one outside the vocabulary)."""
        return self._h.push(operator.index(token))

    def flush(self) -> str:
        return self._h.flush()


class StopMatcher(_Handle):
    """Finds stop strings in streamed text: feed(piece) returns the part that is safe to show,
    holding back any suffix that could begin a stop string; once a stop string is complete it
    returns the text before it and ``matched`` gives the stop string's index (later feeds return
    nothing). flush() returns the held-back text when the generation ended for another reason;
    reset() starts over. Stops and pieces are str (UTF-8) or bytes; feed and flush return the
    type of the last piece fed (str by default). Context manager; close() twice is harmless."""

    def __init__(self, stops: Sequence[Union[str, bytes]]):
        if isinstance(stops, (str, bytes)):
            raise TypeError("stops must be a sequence of strings, not one string")
        self._h = _paca.StopMatcher([_utf8(x, "a stop string") for x in stops])
        self.matched: Optional[int] = None
        self._as_bytes = False

    def feed(self, text: Union[str, bytes]) -> Union[str, bytes]:
        self._as_bytes = isinstance(text, (bytes, bytearray, memoryview))
        out, index = self._h.feed(_utf8(text, "text"))
        if index >= 0:
            self.matched = index
        return out if self._as_bytes else out.decode("utf-8", "replace")

    def flush(self) -> Union[str, bytes]:
        out = self._h.flush()
        return out if self._as_bytes else out.decode("utf-8", "replace")

    def reset(self) -> None:
        self._h.reset()
        self.matched = None


def _utf8(x: Any, what: str) -> bytes:
    if isinstance(x, str):
        return x.encode("utf-8", "surrogatepass")
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    raise TypeError("%s must be str or bytes, not %s" % (what, type(x).__name__))


class Sampler(_Handle):
    """paca's sampling chain (logit bias, penalties, top-k, top-p, min-p, temperature, a draw
    keyed by (seed, position)) for a model's vocabulary, to drive your own loop. temperature 0 is
    greedy. grammar (GBNF) or json_schema constrains the text; each sample() then advances the
    grammar by the token it returns. logit_bias is {token_id: bias} (-inf bans a token).
    stop_reason(token, n) applies the end-token, stop_tokens and max_tokens rules.
    InvalidArgumentError names a bad setting. Context manager; close() twice is harmless."""

    def __init__(self, model: Model, temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0,
                 min_p: float = 0.0, repeat_penalty: float = 1.0, frequency_penalty: float = 0.0,
                 presence_penalty: float = 0.0, repeat_last_n: int = 64, seed: int = 0, max_tokens: int = 0,
                 stop_tokens: Sequence[int] = (), ignore_eos: bool = False, logprobs: int = 0,
                 grammar: Optional[str] = None, json_schema: Union[str, dict, None] = None,
                 logit_bias: Optional[dict] = None):
        sp = _sampling(max_tokens, temperature, top_p, top_k, min_p, repeat_penalty, seed, stop_tokens, logprobs,
                       ignore_eos, frequency_penalty, presence_penalty, repeat_last_n, grammar, json_schema)
        self._h = _paca.Sampler(model._m, sp)
        if logit_bias:
            self.set_logit_bias(logit_bias)

    @classmethod
    def _wrap(cls, raw: Any) -> "Sampler":
        s = cls.__new__(cls)
        s._h = raw
        return s

    def set_logit_bias(self, logit_bias: Optional[dict]) -> None:
        """Replaces the bias table with {token_id: bias} (None or {} clears it). On a bad entry
        (an id outside the vocabulary, NaN or +inf) InvalidArgumentError and the table is kept."""
        self._h.set_logit_bias(*_bias_lists(logit_bias))

    def sample(self, session: Session, logprobs: bool = False) -> Union[int, TokenLogprob]:
        """The next token from session's last logits (StateError when it has none), or its
        TokenLogprob when logprobs. The session is not changed: append the token with step()."""
        if not isinstance(session, Session):
            raise TypeError("session must be a paca.Session")
        return self._result(self._h.sample(session._s, bool(logprobs)), logprobs)

    def sample_logits(self, logits: Any, history: Sequence[int] = (),
                      logprobs: bool = False) -> Union[int, TokenLogprob]:
        """The same chain on logits you hold (n_vocab floats), with history the sequence so far
        (its length is the position of the draw)."""
        return self._result(self._h.sample_logits(logits, list(history), bool(logprobs)), logprobs)

    @staticmethod
    def _result(r: Any, logprobs: bool) -> Union[int, TokenLogprob]:
        if not logprobs:
            return r
        tok, lp, top = r
        return TokenLogprob(tok, lp, list(top))

    def stop_reason(self, token: int, n_generated: int) -> Optional[str]:
        """Why to stop after token was generated as token number n_generated (1-based): "eos",
        "stop_token", "length", or None to go on."""
        if n_generated < 0:
            raise ValueError("n_generated must be >= 0")
        return _STOP_REASONS[self._h.stop_reason(operator.index(token), operator.index(n_generated))]


@dataclass
class RequestEvent:
    """One event of an engine request: a generated token and the text it completes (possibly ""),
    or the request's end. token is None in an end event that carries none; logprob is the
    token's log-probability when the request asked for logprobs; stop_reason is None while the
    request goes on. The last event has stats, and error (the paca.Error, e.g. CancelledError)
    when the request failed or was cancelled; only callbacks see such an event, iteration raises
    the error instead."""
    token: Optional[int]
    text: str
    logprob: Optional[float] = None
    stop_reason: Optional[str] = None
    stats: Optional[RequestStats] = None
    error: Optional[Error] = None

    @property
    def last(self) -> bool:
        """Whether the request ended with this event."""
        return self.stats is not None


@dataclass
class EngineStats:
    """An engine's counters so far (paca_engine_stats): requests waiting and running, submitted
    and finished, forward steps, tokens prefilled (recomputation included), generated and taken
    from the prefix cache, preemptions, and the KV pool (blocks in use, held by the prefix cache,
    in all: 0 for an unbounded pool; positions per block)."""
    n_queued: int
    n_running: int
    n_submitted: int
    n_finished: int
    n_steps: int
    n_prefill_tokens: int
    n_generated_tokens: int
    n_cached_tokens: int
    n_preemptions: int
    kv_blocks_used: int
    kv_blocks_cached: int
    kv_blocks_total: int
    kv_block_tokens: int


def _event(raw: tuple, logprobs: bool) -> RequestEvent:
    token, text, logprob, stop, status, message, stats = raw
    return RequestEvent(token if token >= 0 else None, text, logprob if logprobs and token >= 0 else None,
                        _STOP_REASONS.get(stop), RequestStats(*stats) if stats is not None else None,
                        error_class(status)(message, status) if status != 0 else None)


class Engine:
    """Serves many requests on one model at once (paca_engine): a scheduler thread runs each
    step over every running request together (continuous batching), prompts sharing a prefix
    share its KV cache, and a request's tokens are those Model.complete gives the same prompt
    and sampling (seed included), whatever else runs beside it.

    max_running requests are stepped together, max_step_tokens tokens go into one step, and
    submit raises BusyError while max_queued requests wait; n_ctx is each request's context (0:
    the model's); manual_step=True runs no thread: call step(). Thread-safe. Use as a context
    manager or call close(), which cancels whatever still runs; closing twice is harmless. The
    engine keeps its model's memory alive.
    """

    def __init__(self, model: Model, max_running: int = 64, max_step_tokens: int = 512, max_queued: int = 1024,
                 n_ctx: int = 0, prefix_cache: bool = True, manual_step: bool = False):
        self._model = model
        self._e = _paca.Engine(model._m, int(max_running), int(max_step_tokens), int(max_queued), int(n_ctx),
                               bool(prefix_cache), bool(manual_step))
        # ids of polled requests dropped before their end: cancelled, and their remaining events
        # taken (without waiting) at later submits, so that the engine forgets them
        self._abandoned: collections.deque = collections.deque()
        # closes at interpreter exit too, while callbacks can still take the GIL
        self._close = weakref.finalize(self, self._e.close)

    def close(self) -> None:
        """Cancels every request still running and frees the engine (idempotent). A thread
        iterating a Request of it gets ValueError."""
        self._close()

    @property
    def closed(self) -> bool:
        return self._e.closed

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def submit(self, prompt: Prompt, max_tokens: int = 128, temperature: float = 0.0, top_p: float = 1.0,
               top_k: int = 0, min_p: float = 0.0, repeat_penalty: float = 1.0, seed: int = 0,
               stop: Sequence[str] = (), stop_tokens: Sequence[int] = (), ignore_eos: bool = False,
               logprobs: bool = False, priority: int = 0, special: bool = False,
               callback: Optional[Callable[[RequestEvent], None]] = None,
               logit_bias: Optional[dict] = None, *, frequency_penalty: float = 0.0, presence_penalty: float = 0.0,
               repeat_last_n: int = 64, grammar: Optional[str] = None,
               json_schema: Union[str, dict, None] = None) -> "Request":
        """Queues a request: generate after prompt (text, tokenized with BOS, or token ids) with
        the sampling and stop settings of Model.generate. logprobs adds each token's
        log-probability to its event; priority: higher starts first and is preempted last;
        special renders control tokens as text; logit_bias is the OpenAI-style {token_id: bias}
        added to the logits before sampling (-100 all but bans a token, +100 all but forces it).

        Without callback, iterate the Request for its events. With one, the engine's thread calls
        callback(event) for each event, holding the GIL (keep it short; its exceptions go to
        sys.unraisablehook), and the Request only cancels. Raises InvalidArgumentError for a bad
        id or setting, ContextFullError for a prompt longer than n_ctx, BusyError when
        max_queued requests wait."""
        self._reap()
        ids = self._model._prompt(prompt)
        sampling = _sampling(max_tokens, temperature, top_p, top_k, min_p, repeat_penalty, seed, stop_tokens, 0,
                             ignore_eos, **_extra_sampling(frequency_penalty, presence_penalty, repeat_last_n, grammar,
                                                           json_schema))
        on_event = None
        if callback is not None:
            def on_event(raw: tuple) -> None:
                callback(_event(raw, logprobs))
        bias_tokens, bias_values = _bias_lists(logit_bias)
        rid = self._e.submit(ids, sampling, list(stop), int(priority), bool(logprobs), bool(special), on_event,
                             bias_tokens, bias_values)
        return Request(self, rid, callback is None, logprobs)

    def step(self) -> int:
        """With manual_step: runs one scheduling step on this thread (callbacks run in it) and
        returns the number of requests running or waiting after it. StateError otherwise."""
        return self._e.step()

    def stats(self) -> EngineStats:
        """The engine's counters so far."""
        return EngineStats(**self._e.stats())

    def _reap(self) -> None:
        # each abandoned id is popped by one thread at a time (the C API's one poller per request)
        for _ in range(len(self._abandoned)):
            try:
                rid = self._abandoned.popleft()
            except IndexError:
                return
            try:
                while (raw := self._e.poll(rid, 0)) is not None:
                    if raw[6] is not None:  # its last event: the engine forgot it
                        break
                else:
                    self._abandoned.append(rid)
            except (InvalidArgumentError, ValueError):
                pass  # already forgotten, or the engine is closed


class Request:
    """A request submitted to an Engine. Iterate it for its RequestEvents as they come (waiting
    without the GIL); text() streams just the text, complete() waits for the whole Completion.
    Iterating a request that was cancelled or failed raises its error (CancelledError after
    cancel()) at its end. One thread iterates a request at a time (others wait their turn).
    Closing it (or leaving its with block) before its end cancels it."""

    def __init__(self, engine: Engine, rid: int, polled: bool, logprobs: bool):
        self._engine = engine
        self.id = rid
        self._polled = polled
        self._logprobs = logprobs
        self._lock = threading.Lock()
        self._ended = False
        self.stop_reason: Optional[str] = None  # why it ended, once it has
        self.stats: Optional[RequestStats] = None  # filled by its last event

    @property
    def done(self) -> bool:
        """Whether its last event has been taken."""
        return self._ended

    def cancel(self) -> None:
        """Asks the engine to end the request at its next step (harmless once it has ended)."""
        self._engine._e.cancel(self.id)

    def poll(self, timeout: Optional[float] = 0.0) -> Optional[RequestEvent]:
        """The next event, waiting up to timeout seconds (None: as long as it takes); None when
        none came in time or the request has ended. Raises its error in place of a failing last
        event."""
        if not self._polled:
            raise TypeError("this request delivers its events to its callback")
        with self._lock:
            if self._ended:
                return None
            ms = -1 if timeout is None else max(0, int(timeout * 1000))
            raw = self._engine._e.poll(self.id, ms)
            if raw is None:
                return None
            ev = _event(raw, self._logprobs)
            if ev.last:
                self._ended = True
                self.stop_reason = ev.stop_reason
                self.stats = ev.stats
                if ev.error is not None:
                    raise ev.error
            return ev

    def __iter__(self) -> Iterator[RequestEvent]:
        while (ev := self.poll(None)) is not None:
            yield ev

    def text(self) -> Iterator[str]:
        """The generated text, piece by piece (empty pieces left out)."""
        for ev in self:
            if ev.text:
                yield ev.text

    def complete(self) -> Completion:
        """Waits for the rest of the request: its text, tokens, stop reason, logprobs (when asked:
        each token's, without alternatives) and stats."""
        pieces: List[str] = []
        tokens: List[int] = []
        lps: Optional[List[TokenLogprob]] = [] if self._logprobs else None
        for ev in self:
            pieces.append(ev.text)
            if ev.token is not None:
                tokens.append(ev.token)
                if lps is not None:
                    lps.append(TokenLogprob(ev.token, ev.logprob if ev.logprob is not None else 0.0, []))
        return Completion("".join(pieces), tokens, self.stop_reason or "", lps, self.stats)

    def close(self) -> None:
        """Cancels the request unless it has ended; the engine then drops its events."""
        if not self._polled or self._ended or self._engine.closed:
            return
        self._engine._e.cancel(self.id)
        # a thread iterating it meanwhile takes the cancelled end itself
        if self._lock.acquire(blocking=False):
            try:
                if not self._ended:
                    self._ended = True
                    self._engine._abandoned.append(self.id)
            finally:
                self._lock.release()

    def __enter__(self) -> "Request":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # the engine is gone, or the interpreter is shutting down
            pass
