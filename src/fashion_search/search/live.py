"""A live search server on loopback, in a thread: for the browser and load tests and the page screenshots."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from fashion_search.search.app import create_app
from fashion_search.search.engine import SearchEngine

START_WAIT_S = 60


@contextmanager
def served_on_loopback(engine: SearchEngine) -> Iterator[tuple[str, int]]:
    """(host, port) of the app served by uvicorn from a thread, on 127.0.0.1 and a port the OS chose."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(engine), log_level="warning", backlog=1024))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_WAIT_S
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    try:
        yield listener.getsockname()
    finally:
        server.should_exit = True
        thread.join()
        listener.close()
