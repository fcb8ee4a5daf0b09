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

from xerolink_mapper.adapters.mapping_calls import map_many

log = logging.getLogger(__name__)


def map_stream_message(raw: bytes) -> bytes | None:
    """One StreamMapTransactionsRequest in wire form -> its response in wire form; None when the
    bytes are not such a message (the caller turns that into INVALID_ARGUMENT)."""
    try:
        message = mapper_pb2.StreamMapTransactionsRequest.FromString(raw)
    except DecodeError:
        return None
    response = mapper_pb2.StreamMapTransactionsResponse()
    map_many(message.requests, message.context if message.HasField("context") else None, response.results)
    return response.SerializeToString()


def _checked(result: bytes | None) -> bytes:
    if result is None:
        raise invalid_argument(
            "MALFORMED_MESSAGE",
            "a stream message is not a StreamMapTransactionsRequest; send messages generated from the "
            "xerolink.mapper.v1 contract",
            [FieldViolation("requests", "could not be decoded")],
        )
    return result


class StreamMapper:
    """Maps the messages of one stream after another, in this thread or in worker processes."""

    def __init__(self, processes: int = 0) -> None:
        self.processes = processes
        # Spawned, not forked: a forked child of a process running gRPC threads is unsafe.
        self._pool = (
            ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) if processes > 0 else None
        )
        if self._pool is not None:
            # Start the workers now (importing the mapper takes a moment), not on the first request.
            for done in [self._pool.submit(map_stream_message, b"") for _ in range(processes)]:
                done.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def responses(self, messages: Iterator[bytes]) -> Iterator[bytes]:
        if self._pool is None:
            for raw in messages:
                yield _checked(map_stream_message(raw))
            return
        yield from self._pooled(messages, self._pool)

    def _pooled(self, messages: Iterator[bytes], pool: ProcessPoolExecutor) -> Iterator[bytes]:
        # A reader thread submits messages as they arrive, so a client that waits for each answer
        # before sending the next is never blocked on; the bounded queue is the backpressure.
        pending: queue.Queue[Future[bytes | None] | BaseException | None] = queue.Queue(maxsize=2 * self.processes)

        def read() -> None:
            try:
                for raw in messages:
                    pending.put(pool.submit(map_stream_message, raw))
            except BaseException as exc:  # the call was cancelled or the pool is broken
                pending.put(exc)
            finally:
                pending.put(None)

        reader = threading.Thread(target=read, name="stream-reader", daemon=True)
        reader.start()
        while (item := pending.get()) is not None:
            if isinstance(item, BrokenProcessPool):
                raise unavailable("MAPPER_WORKERS_UNAVAILABLE", "a mapping worker process died; retry the stream")
            if isinstance(item, BaseException):
                log.info("stream ended early: %s", item)
                return
            try:
                result = item.result()
            except BrokenProcessPool as exc:
                raise unavailable(
                    "MAPPER_WORKERS_UNAVAILABLE", "a mapping worker process died; retry the stream"
                ) from exc
            yield _checked(result)


__all__ = ["StreamMapper", "map_stream_message"]
