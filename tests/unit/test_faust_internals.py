"""Every private name of faust-streaming, mode and aiokafka the worker uses
(journey/stream/faust_internals.py) is still there, with the shape it is used with. An
upgrade that renames, removes or reshapes one fails here, before the worker misbehaves.
The libraries are pinned in pyproject.toml; the first test keeps the pins and the
environment in step."""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp.web
import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer
from mode.services import Service

from journey.stream.faust_internals import (
    BatchingTransport,
    FencingTableManager,
    add_web_middleware,
)

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
PINNED = ("faust-streaming", "mode-streaming", "aiokafka", "kafka-python")


def _params(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def _source(function: Any) -> str:
    return inspect.getsource(function)


@pytest.mark.parametrize("package", PINNED)
def test_the_installed_library_is_the_version_pinned_in_pyproject(package: str) -> None:
    pins = dict(re.findall(r'"([a-z-]+)(?:\[[a-z,]+\])?==([^"]+)"', PYPROJECT.read_text()))
    assert pins.get(package) == version(package)


def test_faust_consumer_fetch_loop_and_its_bookkeeping_are_as_batching_consumer_uses_them(
) -> None:
    assert _params(Consumer._drain_messages) == ["self", "fetcher"]
    assert _params(Consumer._add_gap) == ["self", "tp", "offset_from", "offset_to"]
    import faust.transport.consumer as module

    source = inspect.getsource(module)
    for name in ("_read_offset", "_n_acked", "_commit_every", "suspend_flow", "callback",
                 "consumer_stopped_errors"):
        assert f"self.{name} " in source or f"self.{name}:" in source, name
    assert issubclass(BatchingTransport.Consumer, Consumer)


def test_the_consumer_thread_builds_the_aiokafka_consumer_that_reads_our_two_settings() -> None:
    assert _params(AIOKafkaConsumerThread._create_worker_consumer) == ["self", "transport"]
    start = _source(AIOKafkaConsumer.start)
    # set after construction, read when the consumer starts
    assert "self._fetch_max_wait_ms" in start and "self._isolation_level" in start


def test_recovery_builds_highwaters_in_the_method_changelog_end_recovery_extends() -> None:
    assert _params(Recovery._build_highwaters) == ["self", "consumer", "tps", "destination",
                                                   "title"]
    import faust.tables.recovery as module

    assert "T(self._build_highwaters)(" in inspect.getsource(module)
    assert _params(Recovery.__init__)[:3] == ["self", "app", "tables"]


def test_recovery_reads_the_active_persisted_offsets_in_the_method_the_bulk_restore_precedes(
) -> None:
    # The bulk restore runs first in _build_offsets(..., "active"): after the rebalance
    # callback (Faust's recovery is its own service) and before the offsets are read.
    assert _params(Recovery._build_offsets) == ["self", "consumer", "tps", "destination",
                                                "title"]
    import faust.tables.recovery as module

    source = inspect.getsource(module)
    first = source.index("T(self._build_offsets)(")
    assert '"active"' in source[first:first + 200]
    # The offsets it starts from were read from the stores at the assignment, per table:
    # the override takes what the bulk restore wrote since.
    add = _source(Recovery._add)
    assert "self.tp_to_table[tp] = table" in add and "table.persisted_offset(tp)" in add


def test_the_table_manager_creates_its_recovery_lazily_in_the_property_we_replace() -> None:
    assert "_recovery" in _source(TableManager.recovery.fget)  # type: ignore[attr-defined]
    assert _params(TableManager.on_rebalance) == ["self", "assigned", "revoked",
                                                  "newly_assigned", "generation_id"]
    assert issubclass(FencingTableManager, TableManager)


def test_the_table_manager_start_is_the_sleep_fencing_table_manager_leaves_out_and_two_calls(
) -> None:
    source = _source(TableManager.on_start)
    body = [line.strip() for line in source.splitlines()[2:] if line.strip()]
    assert body == ["await self.sleep(1.0)", "if not self.should_stop:",
                    "await self._update_channels()", "await self.recovery.start()"]
    assert _params(TableManager._update_channels) == ["self"]


def test_the_aiokafka_producer_partitioner_and_metadata_wait_are_as_record_batches_use_them(
) -> None:
    assert _params(AIOKafkaProducer._partition) == [
        "self", "topic", "partition", "key", "value", "serialized_key", "serialized_value"]
    assert _params(AIOKafkaClient._wait_on_metadata) == ["self", "topic"]


def test_the_rocksdb_store_reads_one_partition_database_as_store_view_does() -> None:
    assert _params(RocksDBStore._db_for_partition) == ["self", "partition"]
    assert _params(RocksDBStore._visible_items) == ["self", "db"]


def test_the_rocksdb_store_keeps_its_driver_and_offsets_as_the_index_family_writes_them(
) -> None:
    # journey/stream/indexfamily.py writes the persisted offset in its own batch, as this
    # method would, and opens no database of its own (Faust's open keeps extra families).
    assert RocksDBStore.offset_key == b"__faust\0offset__"
    assert "str(offset).encode()" in _source(RocksDBStore.set_persisted_offset)
    assert "self.use_rocksdict" in _source(RocksDBStore.apply_changelog_batch)
    assert "column_families" not in _source(RocksDBStore.__init__)


def test_the_worker_signal_and_crash_handlers_are_the_ones_hooked_worker_wraps() -> None:
    assert _params(faust.Worker._on_sigterm) == ["self"]
    assert _params(faust.Worker._on_sigint) == ["self"]
    assert _params(Service._crash) == ["self", "reason"]


def test_a_transactional_producer_put_in_its_fatal_state_by_a_fence_tells_the_cause() -> None:
    import asyncio

    from aiokafka.errors import ProducerFenced

    from journey.stream.faust_internals import transaction_failure

    async def run() -> tuple[BaseException | None, BaseException | None]:
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", transactional_id="t-1")
        manager = producer._txn_manager
        manager.set_pid_and_epoch(1, 0)  # what starting the producer does
        manager.begin_transaction()
        before = transaction_failure(producer)
        # what aiokafka's background sender does when the broker answers ProducerFenced
        manager.fatal_error(ProducerFenced())
        after = transaction_failure(producer)
        await producer.stop()
        return before, after

    before, after = asyncio.run(run())
    assert before is None
    assert isinstance(after, ProducerFenced)


def test_faust_s_aiohttp_web_server_keeps_an_aiohttp_application_that_takes_middlewares(
) -> None:
    app = faust.App("t-web", broker="memory://", store="memory://")
    assert isinstance(app.web.web_app, aiohttp.web.Application)  # type: ignore[attr-defined]
    add_web_middleware(app, _passing)
    assert app.web.web_app.middlewares[-1] is _passing  # type: ignore[attr-defined]


@aiohttp.web.middleware
async def _passing(request: aiohttp.web.Request, handler: Any) -> Any:
    return await handler(request)
