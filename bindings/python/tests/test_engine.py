# The Python Engine (paca_engine) against lone generations: several requests at
# once give Model.complete's tokens, text, stop reasons and logprobs for the
# same seeds, stop strings, cancel, statistics and the prefix cache, callbacks
# on the engine's thread, manual steps, bad arguments raising paca.Error
# subclasses, and closing the engine while another thread waits on a request.
import gc
import sys
import threading
import time

import pytest

import paca

PROMPTS = ["Once upon a time", "The little dog", "Lily liked to", "One day", "Tom and Sue"]


@pytest.fixture
def model(stories):
    with paca.Model(stories, threads=1) as m:
        yield m


def test_requests_at_once_give_a_lone_generations_tokens(model):
    kw = dict(max_tokens=40, temperature=0.9, top_p=0.95, stop=["."])
    alone = [model.complete(p, seed=s, logprobs=0, **kw) for s, p in enumerate(PROMPTS)]
    assert len({tuple(a.tokens) for a in alone}) == len(PROMPTS)
    assert any(a.stop_reason == "stop_string" for a in alone)
    with paca.Engine(model, max_step_tokens=8) as e:  # prompts prefilled in chunks beside decodes
        reqs = [e.submit(p, seed=s, logprobs=True, **kw) for s, p in enumerate(PROMPTS)]
        got = [r.complete() for r in reversed(reqs)][::-1]  # drained in another order
    for a, g in zip(alone, got):
        assert g.tokens == a.tokens
        assert g.text == a.text
        assert g.stop_reason == a.stop_reason
        assert g.logprobs == a.logprobs  # exact floats, no alternatives
        assert g.stats.n_generated == len(g.tokens) and g.stats.total_ms > 0


def test_events_stream_text_and_a_stop_string(model):
    want = model.complete("Once upon a time", max_tokens=60, stop=["Lily"])
    assert want.stop_reason == "stop_string" and "Lily" not in want.text
    with paca.Engine(model) as e:
        r = e.submit("Once upon a time", max_tokens=60, stop=["Lily"])
        events = list(r)
        assert r.done and r.stop_reason == "stop_string"
        assert [ev.token for ev in events if ev.token is not None] == want.tokens
        assert "".join(ev.text for ev in events) == want.text
        assert all(not ev.last for ev in events[:-1]) and events[-1].last
        assert events[-1].stop_reason == "stop_string" and events[-1].stats.n_prompt == 5
        assert all(ev.logprob is None for ev in events)  # not asked for
        assert r.poll() is None and list(r) == []  # ended: nothing more
        pieces = list(e.submit(model.tokenize("Once upon a time"), max_tokens=60, stop=["Lily"]).text())
        assert len(pieces) > 3 and "".join(pieces) == want.text


def test_cancel_ends_a_request_with_cancelled_error(model):
    with paca.Engine(model) as e:
        r = e.submit("Once upon a time", max_tokens=0, ignore_eos=True)  # would run to the context's end
        other = e.submit("One day", max_tokens=12)
        first = r.poll(timeout=None)
        assert first.token is not None
        r.cancel()
        with pytest.raises(paca.CancelledError) as err:
            for _ in r:
                pass
        assert err.value.status == 7 and r.done and r.stats is not None
        assert r.stats.n_generated < 400
        r.cancel()  # ended: harmless
        assert other.complete().tokens == model.complete("One day", max_tokens=12).tokens
        st = e.stats()
        assert st.n_submitted == 2 and st.n_finished == 2 and st.n_running == 0 and st.n_queued == 0


def test_stats_and_the_shared_prefix(model):
    prefix = model.tokenize("Once upon a time, there was a little girl named Lily. She loved to play " * 2)
    assert len(prefix) >= 32
    with paca.Engine(model) as e:
        first = e.submit(prefix + [403], max_tokens=8).complete()
        second = e.submit(prefix + [500], max_tokens=8, seed=1, temperature=0.7).complete()
        assert first.stats.n_cached == 0
        assert second.stats.n_cached >= 16 and second.stats.n_cached % 16 == 0
        assert second.tokens == model.complete(prefix + [500], max_tokens=8, seed=1, temperature=0.7).tokens
        st = e.stats()
        assert isinstance(st, paca.EngineStats)
        assert st.n_submitted == 2 and st.n_finished == 2 and st.n_steps > 0
        assert st.n_generated_tokens == 16 and st.n_cached_tokens == second.stats.n_cached
        assert st.kv_block_tokens == 16 and st.kv_blocks_cached > 0


def test_callbacks_run_on_the_engine_thread_with_the_gil(model, monkeypatch):
    want = [model.complete(p, max_tokens=16, temperature=0.8, seed=3) for p in PROMPTS[:3]]
    seen = {}
    ended = threading.Event()
    threads = set()
    lock = threading.Lock()

    def collect(i):
        def on_event(ev):
            threads.add(threading.get_ident())
            with lock:
                seen.setdefault(i, []).append(ev)
                if sum(1 for evs in seen.values() if evs[-1].last) == 3:
                    ended.set()
        return on_event

    with paca.Engine(model) as e:
        reqs = [e.submit(p, max_tokens=16, temperature=0.8, seed=3, callback=collect(i))
                for i, p in enumerate(PROMPTS[:3])]
        assert ended.wait(60)
        with pytest.raises(TypeError):
            reqs[0].poll()
        reqs[0].cancel()  # ended: harmless
        # an exception in a callback is reported, and the engine goes on
        caught = []
        monkeypatch.setattr(sys, "unraisablehook", lambda u: caught.append(u.exc_value))
        done = threading.Event()

        def boom(ev):
            if ev.last:
                done.set()
            raise RuntimeError("from the callback")

        e.submit("One day", max_tokens=3, callback=boom)
        assert done.wait(60)
        assert e.submit("One day", max_tokens=3).complete().tokens == model.complete("One day", max_tokens=3).tokens
    assert threading.get_ident() not in threads
    assert caught and all(isinstance(x, RuntimeError) for x in caught)
    for i, w in enumerate(want):
        assert [ev.token for ev in seen[i] if ev.token is not None] == w.tokens
        assert "".join(ev.text for ev in seen[i]) == w.text
        assert seen[i][-1].stop_reason == "length" and seen[i][-1].error is None


def test_closing_the_engine_cancels_callback_requests(model):
    ends = []
    e = paca.Engine(model)
    for i in range(2):
        e.submit("Once upon a time", max_tokens=0, ignore_eos=True, seed=i, temperature=1.0,
                 callback=lambda ev: ends.append(ev) if ev.last else None)
    time.sleep(0.05)
    e.close()  # returns once every request had its end event
    e.close()
    assert e.closed and len(ends) == 2
    assert all(isinstance(ev.error, paca.CancelledError) or ev.stop_reason == "context_full" for ev in ends)
    with pytest.raises(ValueError):
        e.submit("One day")


def test_manual_steps(model):
    with paca.Engine(model, manual_step=True, max_queued=1) as e:
        r = e.submit("Once upon a time", max_tokens=6)
        with pytest.raises(paca.BusyError) as busy:
            e.submit("One day")  # max_queued 1: one request already waits
        assert busy.value.status == 11
        assert r.poll(timeout=0.01) is None  # nothing runs until a step
        steps = 0
        while e.step() > 0:
            steps += 1
        assert steps >= 6
        assert r.complete().tokens == model.complete("Once upon a time", max_tokens=6).tokens
    with paca.Engine(model) as e:
        with pytest.raises(paca.StateError):
            e.step()  # it has its own thread


def test_bad_arguments_raise_paca_errors(model):
    with pytest.raises(paca.InvalidArgumentError) as err:
        paca.Engine(model, max_running=0)
    assert isinstance(err.value, ValueError) and "max_running" in err.value.message
    with pytest.raises(paca.InvalidArgumentError):
        paca.Engine(model, max_step_tokens=-1)
    with paca.Engine(model, n_ctx=16) as e:
        with pytest.raises(paca.InvalidArgumentError) as err:
            e.submit([1, 10**6])
        assert "vocabulary" in err.value.message
        with pytest.raises(paca.InvalidArgumentError) as err:
            e.submit("Once", top_p=2.0)
        assert "top_p" in err.value.message
        with pytest.raises(paca.InvalidArgumentError):
            e.submit([])
        with pytest.raises(paca.InvalidArgumentError):
            e.submit("Once", stop=[""])
        with pytest.raises(paca.ContextFullError):
            e.submit(list(range(1, 40)))
        assert e.stats().n_submitted == 0


def test_waiting_releases_the_gil_and_close_wakes_the_waiter(model):
    with paca.Engine(model, manual_step=True) as e:  # no steps: the waiter waits until close()
        r = e.submit("Once upon a time", max_tokens=4)
        outcome = []

        def wait():
            try:
                for _ in r:
                    pass
            except BaseException as x:  # noqa: B902
                outcome.append(x)

        t = threading.Thread(target=wait)
        t.start()
        ticks = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.3:
            ticks += 1
        assert ticks > 1000 and t.is_alive()
        e.close()
        t.join(10)
        assert not t.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], (ValueError, paca.CancelledError))


def test_a_dropped_request_is_cancelled_and_forgotten(model):
    with paca.Engine(model) as e:
        r = e.submit("Once upon a time", max_tokens=0, ignore_eos=True)
        rid = r.id
        assert r.poll(timeout=None) is not None
        del r
        gc.collect()
        deadline = time.monotonic() + 30
        while e.stats().n_finished < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        e.submit("One day", max_tokens=2).complete()  # takes the dropped request's events
        with pytest.raises(paca.InvalidArgumentError):
            e._e.poll(rid, 0)  # the engine forgot it
        with e.submit("One day", max_tokens=0, ignore_eos=True) as early:
            assert early.poll(timeout=None) is not None
        assert early.done
        assert e.stats().n_running + e.stats().n_queued <= 1
