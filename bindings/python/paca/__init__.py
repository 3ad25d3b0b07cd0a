"""paca: Llama models from Python, over paca's C ABI (paca.h).

    import paca
    with paca.Model("stories260K.bin") as m:
        for piece in m.generate("Once upon a time", max_tokens=64):
            print(piece, end="", flush=True)

Model: load a checkpoint (Hugging Face directory, .gguf, llama2.c .bin);
tokenize / detokenize; generate (streaming text), complete (text, tokens,
logprobs, stop reason), chat (chat template, tool calls as objects).
Session: one sequence you drive yourself (prefill, step, rewind, logits as a
NumPy array). Engine: many requests on one model at once (continuous
batching); submit returns a Request that streams its events. Errors are
paca.Error subclasses carrying status and message. Compute releases the GIL,
so other Python threads run meanwhile; a Model may be shared by threads, a
Session is used by one thread at a time, an Engine by any number.
"""

from __future__ import annotations

import collections
import json
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
    "Engine", "Request", "RequestEvent", "RequestStats", "EngineStats",
    "Error", "InvalidArgumentError", "FileError", "FormatError", "UnsupportedError", "OutOfMemoryError",
    "ContextFullError", "CancelledError", "DeviceError", "StateError", "BusyError", "TimeoutError", "InternalError",
]

_STOP_REASONS = {0: None, 1: "eos", 2: "stop_token", 3: "stop_string", 4: "length", 5: "context_full"}

Prompt = Union[str, Sequence[int]]


def version() -> str:
    """The library version, "MAJOR.MINOR.PATCH"."""
    return _paca.version()


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
              ignore_eos: bool) -> dict:
    return {"max_new_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "top_k": top_k,
            "min_p": min_p, "repeat_penalty": repeat_penalty, "seed": seed, "stop_ids": list(stop_tokens),
            "n_top_logprobs": max(logprobs, 0), "ignore_eos": ignore_eos}


class Model:
    """A loaded model. ``device`` is "cpu"; ``threads`` None uses every hardware thread.

    Raises FileError for a missing path, FormatError / UnsupportedError for files paca cannot run.
    Use as a context manager or call close(); closing twice is harmless. Sessions keep the
    model's memory alive, so closing the model while they run is safe.
    """

    def __init__(self, path: Union[str, os.PathLike], device: str = "cpu", threads: Optional[int] = None):
        self._m = _paca.Model(os.fspath(path), device, int(threads or 0))

    def close(self) -> None:
        """Frees the model handle (idempotent)."""
        self._m.close()

    @property
    def closed(self) -> bool:
        return self._m.closed

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def info(self) -> dict:
        """Architecture and sizes: n_vocab, dim, n_layers, bos_id, eos_ids, max_context, ..."""
        return self._m.info()

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
                 n_ctx: int = 0) -> Iterator[str]:
        """Streams the continuation of prompt (text, tokenized with BOS, or token ids) as text pieces.

        temperature 0 is greedy; seed makes sampling reproducible (the same tokens as paca's C API,
        `paca run` and the other bindings for the same request). Generation ends at the model's end
        token, a stop token id, a stop string (not included in the text) or after max_tokens.
        """
        with self.session(n_ctx) as s:
            yield from s.generate(self._prompt(prompt), max_tokens=max_tokens, temperature=temperature,
                                  top_p=top_p, top_k=top_k, min_p=min_p, repeat_penalty=repeat_penalty,
                                  seed=seed, stop=stop, stop_tokens=stop_tokens, ignore_eos=ignore_eos)

    def complete(self, prompt: Prompt, max_tokens: int = 128, temperature: float = 0.0, top_p: float = 1.0,
                 top_k: int = 0, min_p: float = 0.0, repeat_penalty: float = 1.0, seed: int = 0,
                 stop: Sequence[str] = (), stop_tokens: Sequence[int] = (), ignore_eos: bool = False,
                 logprobs: Optional[int] = None, n_ctx: int = 0) -> Completion:
        """As generate, but returns the whole Completion; logprobs=N adds each token's
        log-probability and N alternatives (0..20)."""
        with self.session(n_ctx) as s:
            return s.complete(self._prompt(prompt), max_tokens=max_tokens, temperature=temperature,
                              top_p=top_p, top_k=top_k, min_p=min_p, repeat_penalty=repeat_penalty, seed=seed,
                              stop=stop, stop_tokens=stop_tokens, ignore_eos=ignore_eos, logprobs=logprobs)

    def complete_batch(self, prompts: Sequence[Prompt], max_tokens: int = 128, temperature: float = 0.0,
                       top_p: float = 1.0, top_k: int = 0, min_p: float = 0.0, repeat_penalty: float = 1.0,
                       seed: Union[int, Sequence[int]] = 0, stop: Sequence[str] = (),
                       stop_tokens: Sequence[int] = (), ignore_eos: bool = False,
                       logprobs: Optional[int] = None, n_ctx: int = 0) -> List[Completion]:
        """complete() for several prompts at once: each decode step runs every unfinished prompt
        through the model together (each weight is read once per step for all of them), and each
        prompt gets exactly the Completion complete() gives it alone. seed is one seed for all
        prompts or one per prompt."""
        seeds = [seed] * len(prompts) if isinstance(seed, int) else list(seed)
        if len(seeds) != len(prompts):
            raise ValueError("seed: %d seeds for %d prompts" % (len(seeds), len(prompts)))
        sessions = [self.session(n_ctx) for _ in prompts]
        gens: List[Any] = []
        try:
            for s, p, sd in zip(sessions, prompts, seeds):
                gens.append(s._generator(self._prompt(p), max_tokens, temperature, top_p, top_k, min_p,
                                         repeat_penalty, sd, stop, stop_tokens, ignore_eos, logprobs))
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
                    add_generation_prompt: bool = True, date: Optional[str] = None) -> str:
        """The conversation rendered by the model's chat template (as transformers renders it)."""
        return self._m.chat_format(json.dumps(list(messages)), json.dumps(list(tools)) if tools else None,
                                   add_generation_prompt, date)

    def chat(self, messages: Sequence[dict], tools: Optional[Sequence[dict]] = None, max_tokens: int = 256,
             temperature: float = 0.0, top_p: float = 1.0, seed: int = 0, date: Optional[str] = None,
             n_ctx: int = 0) -> ChatResponse:
        """Generates the assistant's reply to messages ([{"role": ..., "content": ...}, ...]) with
        the model's chat template; tools are JSON-schema function definitions. Tool calls in the
        reply come back as ToolCall objects; run them, append response.message() and one
        {"role": "tool", "content": ...} per result, and call chat again."""
        text = self.chat_prompt(messages, tools, True, date)
        ids = self.tokenize(text, bos=False, special=True)
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


class Session:
    """One sequence on a model: its tokens, KV cache and last logits. Used by one thread at a time.

    prefill(tokens) runs a prompt, step(token) appends one token, rewind(n) truncates, logits is
    a read-only NumPy view of the last position's logits (no copy; it changes with the session,
    so copy it to keep it). Context manager; close() twice is harmless.
    """

    def __init__(self, model: Model, n_ctx: int = 0):
        self._s = _paca.Session(model._m, int(n_ctx))

    def close(self) -> None:
        """Frees the session (idempotent)."""
        self._s.close()

    @property
    def closed(self) -> bool:
        return self._s.closed

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

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
                   ignore_eos: bool, logprobs: Optional[int]):
        return _paca.Generator(self._s, list(prompt),
                               _sampling(max_tokens, temperature, top_p, top_k, min_p, repeat_penalty, seed,
                                         stop_tokens, logprobs or 0, ignore_eos),
                               list(stop), logprobs is not None, False)

    def generate(self, prompt: Sequence[int] = (), max_tokens: int = 128, temperature: float = 0.0,
                 top_p: float = 1.0, top_k: int = 0, min_p: float = 0.0, repeat_penalty: float = 1.0,
                 seed: int = 0, stop: Sequence[str] = (), stop_tokens: Sequence[int] = (),
                 ignore_eos: bool = False) -> Iterator[str]:
        """Prefills prompt (token ids; empty: continue from the current logits) and streams the
        generated text pieces. See Model.generate."""
        g = self._generator(prompt, max_tokens, temperature, top_p, top_k, min_p, repeat_penalty, seed, stop,
                            stop_tokens, ignore_eos, None)
        try:
            while (step := g.next()) is not None:
                if step[1]:
                    yield step[1]
        finally:
            g.close()

    def complete(self, prompt: Sequence[int] = (), max_tokens: int = 128, temperature: float = 0.0,
                 top_p: float = 1.0, top_k: int = 0, min_p: float = 0.0, repeat_penalty: float = 1.0,
                 seed: int = 0, stop: Sequence[str] = (), stop_tokens: Sequence[int] = (),
                 ignore_eos: bool = False, logprobs: Optional[int] = None) -> Completion:
        """As generate, but returns the whole Completion (see Model.complete)."""
        g = self._generator(prompt, max_tokens, temperature, top_p, top_k, min_p, repeat_penalty, seed, stop,
                            stop_tokens, ignore_eos, logprobs)
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
               callback: Optional[Callable[[RequestEvent], None]] = None) -> "Request":
        """Queues a request: generate after prompt (text, tokenized with BOS, or token ids) with
        the sampling and stop settings of Model.generate. logprobs adds each token's
        log-probability to its event; priority: higher starts first and is preempted last;
        special renders control tokens as text.

        Without callback, iterate the Request for its events. With one, the engine's thread calls
        callback(event) for each event, holding the GIL (keep it short; its exceptions go to
        sys.unraisablehook), and the Request only cancels. Raises InvalidArgumentError for a bad
        id or setting, ContextFullError for a prompt longer than n_ctx, BusyError when
        max_queued requests wait."""
        self._reap()
        ids = self._model._prompt(prompt)
        sampling = _sampling(max_tokens, temperature, top_p, top_k, min_p, repeat_penalty, seed, stop_tokens, 0,
                             ignore_eos)
        on_event = None
        if callback is not None:
            def on_event(raw: tuple) -> None:
                callback(_event(raw, logprobs))
        rid = self._e.submit(ids, sampling, list(stop), int(priority), bool(logprobs), bool(special), on_event)
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
