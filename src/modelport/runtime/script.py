"""The user's entry script: loading it, ``init()`` once, and calling ``run()``.

``run`` is called in worker threads so the event loop stays free for liveness
probes.  A call past the scoring timeout gets an exception raised inside its
thread (as v1's SIGALRM did), which interrupts Python code at its next bytecode.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import importlib.util
import inspect
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from modelport.batching import settings_of

PLAIN, SCHEMA, RAW = "plain", "schema", "raw"


class ScriptError(Exception):
    """The entry script cannot be loaded or has no usable init()/run()."""


class ScoringTimeout(Exception):
    pass


def add_import_folders(path: Path, source_dir: Path | None) -> None:
    """Put the source directory and the script's folder first on ``sys.path``, as v1 does."""
    for folder in (source_dir, path.parent):
        if folder is not None and str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


class EntryScript:
    def __init__(self, path: Path, source_dir: Path | None) -> None:
        self.path = path
        add_import_folders(path, source_dir)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ScriptError(f"cannot import the entry script {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        self.module = module
        self.init: Callable[[], Any] | None = getattr(module, "init", None)
        run = getattr(module, "run", None)
        if not callable(run):
            raise ScriptError(f"the entry script {path.name} defines no run() function")
        self.run: Callable[..., Any] = run
        self.mode, signature_fn, self.schema_fn = _inspect_run(run)
        self.params = _param_names(signature_fn)
        self.required = {
            p.name
            for p in inspect.signature(signature_fn).parameters.values()
            if p.default is p.empty and p.name != "request_headers"
        }
        self.wants_headers = "request_headers" in self.params
        inputs = [p for p in self.params if p != "request_headers"]
        if not inputs:  # as v1, refused at load rather than at each request
            raise ScriptError("run() needs to accept an argument for input data.")
        self.input_param = inputs[0]  # what an undecorated or @rawhttp run() is given
        self.batch = settings_of(run)  # @batched: run() takes a list of inputs
        if self.batch is not None and (self.mode != PLAIN or self.wants_headers):
            raise ScriptError(
                "a @batched run() takes a list of request bodies: it cannot be "
                "@rawhttp, schema-decorated or take request_headers"
            )

    def call_init(self) -> None:
        if callable(self.init):
            self.init()


def _inspect_run(
    run: Callable[..., Any],
) -> tuple[str, Callable[..., Any], Callable[..., Any] | None]:
    """(input mode, the function whose signature counts, the schema-decorated run)."""
    if getattr(run, "__modelport_rawhttp__", False):
        return RAW, run, None
    try:
        from inference_schema import schema_util
    except ImportError:
        schema_util = None
    if schema_util is not None and schema_util.is_schema_decorated(run):
        return SCHEMA, schema_util._get_decorators(run)[-1], run
    return PLAIN, run, None


def _param_names(func: Callable[..., Any]) -> list[str]:
    params = inspect.signature(func).parameters.values()
    bad = [p.name for p in params if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY)]
    if bad:
        raise ScriptError(
            f"run() may not take *args, **kwargs or positional-only parameters: {bad}"
        )
    return [p.name for p in params]


class Invoker:
    """Runs ``run()`` calls on a fixed set of worker threads, with a timeout."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="run")
        # Raising the timeout and finishing the call are decided under this lock, so
        # the exception is raised only inside run(), never in the pool's own loop
        # (which would silently lose a worker thread).
        self._lock = threading.Lock()

    async def call(self, func: Callable[..., Any], kwargs: dict[str, Any], timeout_s: float) -> Any:
        """Run ``func`` on a worker; one asyncio future, settled by the worker or the timer."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        call = _Call()

        def target() -> Any:
            call.thread = threading.get_ident()
            try:
                return func(**kwargs)
            finally:
                with self._lock:
                    call.done = True
                    if call.fired:  # raised but maybe not delivered yet: take it back
                        _raise_in_thread(call.thread, None)

        def settle(done: Future[Any]) -> None:
            if not waiter.done():
                error = done.exception()
                if error is None:
                    waiter.set_result(done.result())
                else:
                    waiter.set_exception(error)

        def expire() -> None:
            if waiter.done():
                return
            with self._lock:
                if call.thread is not None and not call.done:
                    _raise_in_thread(call.thread, ScoringTimeout)
                    call.fired = True
            waiter.set_exception(ScoringTimeout())

        # The worker runs in this request's context: run() sees its request id.
        work = self._pool.submit(contextvars.copy_context().run, target)
        work.add_done_callback(lambda done: loop.call_soon_threadsafe(settle, done))
        timer = loop.call_later(timeout_s, expire)
        try:
            return await waiter
        finally:
            timer.cancel()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class InlineInvoker:
    """Calls ``run()`` on the event loop's own thread: no hand-off, for one-at-a-time replicas.

    A watchdog thread polls the deadline (no wake-up per call) and raises the timeout
    inside ``run()``; the same lock as in :class:`Invoker` keeps it from landing
    anywhere else.
    """

    POLL_S = 0.01

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target = threading.get_ident()
        self._deadline: float | None = None
        self._seq = 0
        self._fired = -1
        threading.Thread(target=self._watch, name="run-watchdog", daemon=True).start()

    def call(self, func: Callable[..., Any], kwargs: dict[str, Any], timeout_s: float) -> Any:
        with self._lock:
            self._seq += 1
            seq = self._seq
            self._deadline = time.monotonic() + timeout_s
        try:
            return func(**kwargs)
        finally:
            with self._lock:
                self._deadline = None
                if self._fired == seq:  # raised but maybe not delivered yet: take it back
                    _raise_in_thread(self._target, None)

    def _watch(self) -> None:
        while True:
            time.sleep(self.POLL_S)
            with self._lock:
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    _raise_in_thread(self._target, ScoringTimeout)
                    self._fired = self._seq
                    self._deadline = None

    def shutdown(self) -> None:
        pass


class _Call:
    __slots__ = ("done", "fired", "thread")

    def __init__(self) -> None:
        self.thread: int | None = None
        self.done = False
        self.fired = False


def _raise_in_thread(thread_id: int, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in a thread at its next bytecode; None withdraws a pending one."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
    )
