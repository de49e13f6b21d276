"""A `journey worker` whose network to the broker can be cut and healed from outside, as a
partition between one machine and the brokers would: while the file named by
JOURNEY_TEST_CUT_FILE exists, every open connection to a bootstrap port is aborted and every
new one refused. The broker itself keeps running for everyone else (tests must not stop a
shared broker). Run as `python -m tests.support.cut_worker` (WorkerProcess.command)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from journey.cli.main import main

CUT_FILE = Path(os.environ.get("JOURNEY_TEST_CUT_FILE", "/nonexistent-cut-file"))
BROKER_PORTS = {int(hostport.rsplit(":", 1)[1]) for hostport in
                os.environ.get("JOURNEY_KAFKA_BOOTSTRAP", "127.0.0.1:19092").split(",")}
#: open broker connections, each with the loop it belongs to (Faust's consumer runs its own
#: loop in a thread; a transport may only be aborted from its own loop)
_open: weakref.WeakKeyDictionary[asyncio.Transport, asyncio.AbstractEventLoop] = (
    weakref.WeakKeyDictionary())
_lock = threading.Lock()
_create_connection = asyncio.base_events.BaseEventLoop.create_connection


async def _guarded(self: asyncio.base_events.BaseEventLoop, protocol_factory: Any,
                   host: Any = None, port: Any = None, **kwargs: Any) -> Any:
    """The loop's create_connection, refused while the cut lasts for the broker's ports."""
    to_broker = port is not None and int(port) in BROKER_PORTS
    if to_broker and CUT_FILE.exists():
        raise ConnectionRefusedError(f"cut from the broker ({CUT_FILE} exists)")
    transport, protocol = await _create_connection(self, protocol_factory, host, port, **kwargs)
    if to_broker:
        with _lock:
            _open[transport] = self
    return transport, protocol


def _watch() -> None:
    """Abort the open broker connections as soon as the cut begins (from the loop's thread)."""
    while True:
        if CUT_FILE.exists():
            with _lock:
                cut = list(_open.items())
                _open.clear()
            for transport, loop in cut:
                if not loop.is_closed():
                    loop.call_soon_threadsafe(transport.abort)
        time.sleep(0.1)


if __name__ == "__main__":
    asyncio.base_events.BaseEventLoop.create_connection = _guarded  # type: ignore[method-assign]
    threading.Thread(target=_watch, name="cut-watch", daemon=True).start()
    sys.exit(main(["worker"]))
