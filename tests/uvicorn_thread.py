"""An ASGI app served by uvicorn from a background thread on a free 127.0.0.1 port, for tests
that need a real HTTP server in their own process (the feedback receiver, the counting sandbox)."""
from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


class UvicornThread:
    """A context manager: `.url` is the base URL; the server has started when `with` enters and
    has stopped (and released its port) when it leaves."""

    def __init__(self, app: Any, lifespan: str = "off", name: str = "server"):
        self.name = name
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(app, interface="asgi3", log_level="warning", access_log=False,
                                                     lifespan=lifespan))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> "UvicornThread":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {self.name} did not start within 10 s; see uvicorn's log above")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
