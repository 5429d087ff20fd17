"""BlockingServer: a Server for programs without asyncio, callable from any thread.

May import: the standard library, raftpy.server (like __init__, this module is
outside the shell: it only drives a Server), raftpy.core (values),
raftpy.errors, raftpy.metrics, and uvloop if it is installed.

What lives here: ``BlockingServer`` owns one event loop (uvloop if available,
else asyncio's) running in a daemon thread of its own, and one ``Server`` on
it.  Every operation of Server is a blocking method here, with a timeout.

Rules kept:

- Every call but the properties crosses to the loop thread and waits at most
  ``timeout_s`` (default ``default_timeout_s``); past it, ``TimeoutError``
  names the operation and the time.  A request that timed out may still take
  effect (an apply may yet be committed and applied): the caller only stops
  waiting, as with libraft's callbacks that never came.
- ``apply`` from many threads is batched: the commands that threads submit
  while the loop is busy wait in one list, and the loop takes the whole list
  as ONE ``Server.apply_many`` (one ``call_soon_threadsafe`` and one request
  per batch, not per command).  Each caller waits on its batch's Event and
  reads its own result.  While ``max_inflight_batches`` (default 1) batches
  are unanswered the next one keeps filling: threads wake one at a time (the
  GIL), so submitting at once made batches of ~5 where holding makes ~30 with
  64 threads, and cost 30% more CPU per apply (benchmarks/blocking.py).  A
  command that libraft's formats cannot carry is refused in the caller's
  thread, so it cannot fail the others of its batch;
  an error of the whole batch (NotLeaderError, ShutdownError, BusyError) is
  raised in every caller, each with its own copy.  An exception the state
  machine *returns* (rather than raises) is raised too: apply_many cannot
  tell the two apart.
- Calling a blocking method from the loop thread (from the state machine)
  would wait for itself: it raises RuntimeError instead.
- ``close()`` may be called from any thread, any number of times; it closes the
  Server, cancels the tasks still on the loop, stops it and joins its thread.
  Afterwards every operation raises ShutdownError.  The properties (state,
  leader, term, commit_index, last_applied) read the core without crossing
  threads: a moment's view.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from raftpy.core.configuration import Configuration, Role
from raftpy.core.types import State
from raftpy.errors import ShutdownError
from raftpy.metrics import ServerMetrics
from raftpy.server import Server, _command_bytes

__all__ = ["BlockingServer"]

T = TypeVar("T")
_BATCH_MAX = 4096              # commands per apply_many: a bounded Propose


class _Batch:
    """The applies submitted between two loop iterations: one apply_many."""

    __slots__ = ("commands", "results", "error", "done")

    def __init__(self) -> None:
        self.commands: list[bytes] = []
        self.results: list[Any] = []
        self.error: BaseException | None = None
        self.done = threading.Event()


class BlockingServer:
    """A Server on a loop in its own thread (see the module docstring).

    The arguments are Server's; ``loop`` is "uvloop", "asyncio" or "auto"
    (uvloop if installed); ``max_inflight_batches`` bounds the apply batches
    handed to the Server and not yet answered (the module docstring)."""

    def __init__(self, id: int, address: str, data_dir: Any, state_machine: Any,
                 config: Any = None, *, default_timeout_s: float = 10.0, loop: str = "auto",
                 max_inflight_batches: int = 1, **server_kwargs: Any) -> None:
        if max_inflight_batches < 1:
            raise ValueError(f"max_inflight_batches must be >= 1, not {max_inflight_batches}")
        self.default_timeout_s = default_timeout_s
        self._loop = _new_loop(loop)
        self._lock = threading.Lock()
        self._batch: _Batch | None = None       # the batch the next apply joins
        self._inflight: set[_Batch] = set()     # handed to apply_many, not answered
        self._held: deque[_Batch] = deque()     # due, waiting for an in-flight one
        self.max_inflight_batches = max_inflight_batches
        self.batches = 0                        # apply_many calls made for apply()
        self._closed = False
        self._close_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name=f"raftpy-server-{id}", daemon=True)
        self._thread.start()
        try:
            self.server: Server = self._on_loop(
                lambda: Server(id, address, data_dir, state_machine, config,
                               **server_kwargs), self.default_timeout_s, "create")
        except BaseException:
            self._stop_loop()
            raise

    # --------------------------------------------------------------- lifecycle

    def bootstrap(self, configuration: Configuration, timeout_s: float | None = None
                  ) -> None:
        self.call(lambda s: s.bootstrap(configuration), timeout_s, "bootstrap")

    def recover(self, configuration: Configuration, timeout_s: float | None = None) -> int:
        return self.call(lambda s: s.recover(configuration), timeout_s, "recover")

    def start(self, timeout_s: float | None = None) -> None:
        self.call(lambda s: s.start(), timeout_s, "start")

    def close(self, timeout_s: float | None = None) -> None:
        """Close the Server and stop the loop thread (idempotent, any thread)."""
        self._check_thread("close")
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._wait(asyncio.run_coroutine_threadsafe(self._close_on_loop(),
                                                            self._loop), timeout_s, "close")
            finally:
                self._stop_loop()

    async def _close_on_loop(self) -> None:
        """Close the Server, then cancel the tasks left on the loop (what callers
        started with call() and did not wait for), so none is destroyed pending."""
        await self.server.close()
        me = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() if t is not me]
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        await self._loop.shutdown_asyncgens()

    def __enter__(self) -> BlockingServer:
        if self.server.raft is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- requests

    def apply(self, command: bytes, timeout_s: float | None = None) -> Any:
        """Replicate one command; return what the state machine's apply returned.
        Batched with the other threads' applies (the module docstring)."""
        command = _command_bytes(command, self.server.config)
        self._check_thread("apply")
        with self._lock:
            if self._closed:
                raise ShutdownError("apply: the BlockingServer is closed")
            batch = self._batch
            if batch is None or len(batch.commands) >= _BATCH_MAX:
                batch = self._batch = _Batch()
                self._loop.call_soon_threadsafe(self._submit, batch)
            offset = len(batch.commands)
            batch.commands.append(command)
        timeout = self.default_timeout_s if timeout_s is None else timeout_s
        if not batch.done.wait(timeout):
            raise TimeoutError(f"apply: no result within {timeout} s (it may still be "
                               "applied)")
        if batch.error is not None:
            raise copy.copy(batch.error)
        result = batch.results[offset]
        if isinstance(result, BaseException):
            raise result
        return result

    def apply_many(self, commands: Sequence[bytes], timeout_s: float | None = None, *,
                   return_exceptions: bool = False) -> list[Any]:
        commands = list(commands)
        return self.call(lambda s: s.apply_many(commands, return_exceptions=return_exceptions),
                         timeout_s, "apply_many")

    def barrier(self, timeout_s: float | None = None) -> int:
        return self.call(lambda s: s.barrier(), timeout_s, "barrier")

    def add(self, server_id: int, address: str, timeout_s: float | None = None) -> None:
        self.call(lambda s: s.add(server_id, address), timeout_s, "add")

    def assign(self, server_id: int, role: Role | int, timeout_s: float | None = None
               ) -> None:
        self.call(lambda s: s.assign(server_id, role), timeout_s, "assign")

    def remove(self, server_id: int, timeout_s: float | None = None) -> None:
        self.call(lambda s: s.remove(server_id), timeout_s, "remove")

    def transfer(self, server_id: int = 0, timeout_s: float | None = None) -> int:
        return self.call(lambda s: s.transfer(server_id), timeout_s, "transfer")

    def take_snapshot(self, timeout_s: float | None = None) -> int:
        return self.call(lambda s: s.take_snapshot(), timeout_s, "take_snapshot")

    def metrics(self, timeout_s: float | None = None) -> ServerMetrics:
        """Server.metrics(), read on the loop thread (a consistent snapshot)."""
        self._check_usable("metrics")
        return self._on_loop(self.server.metrics, timeout_s, "metrics")

    def call(self, fn: Callable[[Server], Awaitable[T]], timeout_s: float | None = None,
             what: str = "call") -> T:
        """Run the coroutine ``fn(server)`` on the loop and wait for its result."""
        self._check_usable(what)

        async def run() -> T:
            return await fn(self.server)
        coro = run()
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:            # the loop closed since _check_usable
            coro.close()
            raise ShutdownError(f"{what}: the BlockingServer is closed") from None
        return self._wait(future, timeout_s, what)

    # -------------------------------------------------------------- properties

    @property
    def state(self) -> State:
        return self.server.state

    @property
    def leader(self) -> tuple[int, str | None]:
        return self.server.leader

    @property
    def term(self) -> int:
        return self.server.term

    @property
    def commit_index(self) -> int:
        return self.server.commit_index

    @property
    def last_applied(self) -> int:
        return self.server.last_applied

    @property
    def closed(self) -> bool:
        return self._closed

    # ---------------------------------------------------------------- internals

    def _submit(self, batch: _Batch) -> None:
        """On the loop: take the batch (no more joins) and hand it to apply_many."""
        with self._lock:
            if len(self._inflight) >= self.max_inflight_batches:
                self._held.append(batch)
                return
            if self._batch is batch:
                self._batch = None
            self._inflight.add(batch)
            self.batches += 1
        self._loop.create_task(self._apply_batch(batch))

    async def _apply_batch(self, batch: _Batch) -> None:
        try:
            batch.results = await self.server.apply_many(batch.commands,
                                                          return_exceptions=True)
        except BaseException as exc:        # the whole batch failed: every caller hears it
            batch.error = exc
        finally:
            with self._lock:
                self._inflight.discard(batch)
                held = self._held.popleft() if self._held else None
            batch.done.set()
            if held is not None:
                self._submit(held)

    def _on_loop(self, fn: Callable[[], T], timeout_s: float | None, what: str) -> T:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)
        self._check_thread(what)
        try:
            self._loop.call_soon_threadsafe(run)
        except RuntimeError:            # the loop closed meanwhile
            raise ShutdownError(f"{what}: the BlockingServer is closed") from None
        return self._wait(future, timeout_s, what)

    def _wait(self, future: concurrent.futures.Future[T], timeout_s: float | None,
              what: str) -> T:
        timeout = self.default_timeout_s if timeout_s is None else timeout_s
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"{what}: no answer within {timeout} s") from None

    def _check_usable(self, what: str) -> None:
        if self._closed:
            raise ShutdownError(f"{what}: the BlockingServer is closed")
        self._check_thread(what)

    def _check_thread(self, what: str) -> None:
        if threading.get_ident() == self._thread.ident:
            raise RuntimeError(f"{what}: a BlockingServer's blocking call from its own loop "
                               "thread (the state machine?) would wait for itself")

    def _stop_loop(self) -> None:
        # Abandoned batches (their callers timed out or the Server failed) must
        # not hang: a stopped loop never runs their tasks.
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        with self._lock:
            left = list(self._inflight) + list(self._held)
            left += [self._batch] if self._batch is not None else []
            self._batch = None
            self._inflight.clear()
            self._held.clear()
        for batch in left:
            if not batch.done.is_set():
                batch.error = ShutdownError("the BlockingServer is closed")
                batch.done.set()
        self._loop.close()


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind not in ("auto", "uvloop", "asyncio"):
        raise ValueError(f"loop is 'auto', 'uvloop' or 'asyncio', not {kind!r}")
    if kind != "asyncio":
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()
