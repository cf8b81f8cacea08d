"""Consuming a stream in a worker thread while the calling thread makes it.

Used by :mod:`onepair.stream`: the network makes bands on the calling thread
(oneDNN keeps its prepared kernels per thread, so it stays there) while a worker
quantises, compresses and writes the previous one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

_END, _ABORT = object(), object()


def behind(consume: Callable[[Iterator[Any]], None], items: Iterator[Any]) -> None:
    """``consume(items)`` with the consuming (here quantising, compressing and writing)
    in a worker thread, one item behind this thread's making them (reading and the
    network, which stays on this thread: oneDNN keeps its prepared kernels per thread).
    An exception on either side, an interrupt included, stops both and is raised here.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=1)
    failed: list[BaseException] = []

    def received() -> Iterator[Any]:
        while (item := handoff.get()) is not _END:
            if item is _ABORT:
                raise RuntimeError("stopped: making the next item failed")
            yield item

    def work() -> None:
        try:
            consume(received())
        except BaseException as error:  # noqa: BLE001 - raised on the calling thread
            failed.append(error)

    worker = threading.Thread(target=work, name="onepair-stream", daemon=True)
    worker.start()

    def hand(item: Any) -> None:
        while worker.is_alive():
            try:
                handoff.put(item, timeout=0.1)
                return
            except queue.Full:
                pass

    try:
        for item in items:
            if not worker.is_alive():  # the consumer failed: stop making items
                break
            hand(item)
        hand(_END)
    except BaseException:
        hand(_ABORT)
        raise
    finally:
        worker.join()
    if failed:
        raise failed[0]
