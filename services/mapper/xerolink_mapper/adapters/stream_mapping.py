"""StreamMapTransactions on wire bytes, optionally spread over worker processes.

Mapping is pure Python, so one process maps on one core at a time (the GIL). The stream handler
takes each message as bytes and hands it to `map_stream_message`, either in the handler's own
thread (the default) or in a pool of worker processes (`--stream-processes`), keeping the order of
responses. Only bytes cross the process boundary, so a worker needs nothing but this package.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from google.protobuf.message import DecodeError
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.errors import FieldViolation, invalid_argument, unavailable
from xerolink_common.reasons import Reason
from xerolink_common.request_decoding import mistyped_field

from xerolink_mapper.adapters.mapping_calls import map_many

log = logging.getLogger(__name__)


def map_stream_message(raw: bytes) -> bytes | None:
    """One StreamMapTransactionsRequest in wire form -> its response in wire form; None when the
    bytes are not such a message (the caller turns that into INVALID_ARGUMENT)."""
    try:
        message = mapper_pb2.StreamMapTransactionsRequest.FromString(raw)
    except DecodeError:
        return None
    if mistyped_field(message) is not None:  # a field of another type: another message, not this one
        return None
    response = mapper_pb2.StreamMapTransactionsResponse()
    map_many(message.requests, message.context if message.HasField("context") else None, response.results)
    return response.SerializeToString()


def _checked(result: bytes | None) -> bytes:
    if result is None:
        raise invalid_argument(
            Reason.MALFORMED_MESSAGE,
            "a stream message is not a StreamMapTransactionsRequest; send messages generated from the "
            "xerolink.mapper.v1 contract",
            [FieldViolation("requests", "could not be decoded")],
        )
    return result


def _worker_died() -> Exception:
    return unavailable(Reason.MAPPER_WORKERS_UNAVAILABLE, "a mapping worker process died; retry the stream")


class StreamMapper:
    """Maps the messages of one stream after another, in this thread or in worker processes."""

    def __init__(self, processes: int = 0) -> None:
        self.processes = processes
        self._lock = threading.Lock()
        self._pool = self._new_pool() if processes > 0 else None

    def _new_pool(self) -> ProcessPoolExecutor:
        # Spawned, not forked: a forked child of a process running gRPC threads is unsafe.
        pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"))
        # Start the workers now (importing the mapper takes a moment), not on the first request.
        for started in [pool.submit(map_stream_message, b"") for _ in range(self.processes)]:
            started.result()
        return pool

    def _replace_broken(self, broken: ProcessPoolExecutor) -> None:
        """A dead worker breaks its pool for good: the next stream gets a fresh one."""
        with self._lock:
            if self._pool is broken:
                log.warning("a stream worker process died; starting a new pool")
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def responses(self, messages: Iterator[bytes]) -> Iterator[bytes]:
        pool = self._pool
        if pool is None:
            for raw in messages:
                yield _checked(map_stream_message(raw))
            return
        try:
            yield from self._pooled(messages, pool)
        except BrokenProcessPool as exc:
            self._replace_broken(pool)
            raise _worker_died() from exc

    def _pooled(self, messages: Iterator[bytes], pool: ProcessPoolExecutor) -> Iterator[bytes]:
        # A reader thread submits messages as they arrive, so a client that waits for each answer
        # before sending the next is never blocked on; the bounded queue is the backpressure.
        pending: queue.Queue[Future[bytes | None] | BaseException | None] = queue.Queue(maxsize=2 * self.processes)
        finished = threading.Event()

        def put(item: Future[bytes | None] | BaseException | None) -> bool:
            # Never block for good: the consumer stops reading when the call ends early.
            while not finished.is_set():
                try:
                    pending.put(item, timeout=0.2)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
            try:
                for raw in messages:
                    if not put(pool.submit(map_stream_message, raw)):
                        return
            except BaseException as exc:  # the call was cancelled, or the pool is broken
                put(exc)
            finally:
                put(None)

        threading.Thread(target=read, name="stream-reader", daemon=True).start()
        try:
            while (item := pending.get()) is not None:
                if isinstance(item, BrokenProcessPool):
                    raise item
                if isinstance(item, BaseException):
                    log.info("stream ended early: %s", item)
                    return
                yield _checked(item.result())
        finally:
            finished.set()


__all__ = ["StreamMapper", "map_stream_message"]
