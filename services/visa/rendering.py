"""E-visa PDFs rendered in worker processes, the most recent kept in memory.

A document takes reportlab 50 to 100 ms of CPU, all of it holding the GIL: in a thread it would
still take the interpreter from the event loop, so that health checks and every other call
wait behind a few downloads. In a separate process it takes nothing from the loop but the
pickling of a small dataclass and of the PDF. The workers are started with `spawn`, never
forked from a process that runs gRPC's threads, and on first use, so that a replica that serves
no document starts none. (`spawn` imports the parent's main module again in each worker, unless
it runs as `python -m package`, as the services do: a script started by path must guard its
start under `if __name__ == "__main__"`.)

The cache is keyed by the whole `EVisaDocument` (visa number, verification code with its key id
and signature, and every other printed fact): a download hits it only when the page would come
out byte for byte the same. Concurrent downloads of one e-visa wait for one rendering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from services.runtime.config import ConfigError, env_int
from services.visa.document import EVisaDocument, render_pdf

log = logging.getLogger("asan.visa.rendering")

WORKER_NICENESS = 10


class DocumentRenderer:
    """`await renderer.pdf(document)`; `hold_until_shutdown` is a background loop of the server
    that stops the workers when the server stops."""

    def __init__(self, workers: int = 1, cache_size: int = 64) -> None:
        if workers < 1 or cache_size < 0:
            raise ConfigError("the e-visa renderer needs at least one worker and a cache size of 0 or more")
        self.workers = workers
        self.cache_size = cache_size
        self._cache: OrderedDict[EVisaDocument, bytes] = OrderedDict()
        self._rendering: dict[EVisaDocument, asyncio.Future[bytes]] = {}
        self._pool: ProcessPoolExecutor | None = None

    @classmethod
    def from_env(cls) -> DocumentRenderer:
        """VISA_DOCUMENT_WORKERS processes (default 1: a replica's limit is one core, which its
        event loop shares; a worker takes about 55 MB) and VISA_DOCUMENT_CACHE_SIZE documents
        kept (default 64, under 100 KB each)."""
        return cls(env_int("VISA_DOCUMENT_WORKERS", 1), env_int("VISA_DOCUMENT_CACHE_SIZE", 64))

    async def pdf(self, document: EVisaDocument) -> bytes:
        cached = self._cache.get(document)
        if cached is not None:
            self._cache.move_to_end(document)
            return cached
        rendering = self._rendering.get(document)
        if rendering is None:
            rendering = asyncio.ensure_future(self._render(document))
            self._rendering[document] = rendering
            rendering.add_done_callback(lambda _: self._rendering.pop(document, None))
        # A caller that goes away (a client's deadline) leaves the rendering to the others.
        return await asyncio.shield(rendering)

    async def _render(self, document: EVisaDocument) -> bytes:
        loop = asyncio.get_running_loop()
        pool = self._executor()
        try:
            data = await loop.run_in_executor(pool, render_pdf, document)
        except BrokenProcessPool:
            # A worker died (killed for memory, say): that pool is unusable, a new one is not.
            log.warning("an e-visa rendering process died; starting new ones")
            if self._pool is pool:
                self._discard_pool()
            data = await loop.run_in_executor(self._executor(), render_pdf, document)
        self._remember(document, data)
        return data

    def _remember(self, document: EVisaDocument, data: bytes) -> None:
        if self.cache_size == 0:
            return
        self._cache[document] = data
        self._cache.move_to_end(document)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
            )
        return self._pool

    def _discard_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def hold_until_shutdown(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            pool, self._pool = self._pool, None
            if pool is not None:
                # A rendering under way ends within a second; waiting for it keeps no orphans.
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


def _start_worker() -> None:
    # Below the server in the scheduler's eyes: where the two share a core (a pod's CPU limit,
    # a busy node) the event loop runs first, and a rendering takes the time left over.
    os.nice(WORKER_NICENESS)
    # Ctrl-C in a terminal reaches the whole process group: the server stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
