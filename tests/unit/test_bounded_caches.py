"""Per-process caches stay within a count and a byte bound (issue 13, finding 6): 30 calls with new
function names and 2 MB instructions used to add 169 MiB for good."""

from __future__ import annotations

import asyncio
import gc
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import BuiltinFunctionType, FunctionType, ModuleType

import pytest_asyncio
from starlette.requests import Request

from taskgate.engine.functions import FunctionService
from taskgate.engine.task import Task
from taskgate.lru import ENTRY_OVERHEAD, BoundedLRU
from taskgate.server.auth import Authenticator
from taskgate.store import SqlStore, open_store

MB = 1024 * 1024


def retained_bytes(root: object, *outside: object) -> int:
    """The bytes of every object reachable from `root`, except `outside` objects (and what only they
    reach) and shared code (types, modules, functions)."""
    seen = {id(obj) for obj in (*outside, asyncio.get_running_loop())}
    stack, total = [root], 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | ModuleType | FunctionType | BuiltinFunctionType):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
        if isinstance(obj, dict):
            stack.extend(obj)  # the collector does not visit a dict's string keys: they make no cycles
    return total


def _length(key: str, value: str) -> int:
    return len(key) + len(value)


def test_the_lru_forgets_the_least_recently_used_beyond_its_count() -> None:
    cache: BoundedLRU[str, str] = BoundedLRU(2, MB, _length)
    cache.put("a", "1")
    cache.put("b", "2")
    assert cache.get("a") == "1"  # now b is the least recently used
    cache.put("c", "3")
    assert "b" not in cache and cache.peek("a") == "1" and cache.peek("c") == "3"
    assert len(cache) == 2


def _key_length(key: str, _: int) -> int:
    return len(key)


def test_replacing_a_counter_marks_it_used_keeps_its_size_and_adds_nothing_absent() -> None:
    cache: BoundedLRU[str, int] = BoundedLRU(2, MB, _key_length)
    cache.put("a", 1)
    cache.put("b", 1)
    size = cache.size_bytes
    cache.replace("a", 2)  # now b is the least recently used, as after put("a", 2)
    cache.replace("absent", 1)
    assert "absent" not in cache and cache.size_bytes == size and len(cache) == 2
    cache.put("c", 1)
    assert "b" not in cache and cache.peek("a") == 2 and cache.peek("c") == 1


def test_the_lru_forgets_beyond_its_bytes_and_never_keeps_an_entry_larger_than_all_of_them() -> None:
    entry = 1000 + ENTRY_OVERHEAD + 1
    cache: BoundedLRU[str, str] = BoundedLRU(100, 3 * entry, _length)
    for key in "abcd":
        cache.put(key, "x" * 1000)
    assert list(key for key in "abcd" if key in cache) == ["b", "c", "d"]
    assert cache.size_bytes == 3 * entry
    cache.put("huge", "x" * (4 * entry))
    assert "huge" not in cache and cache.size_bytes == 3 * entry
    cache.put("b", "small")  # replacing an entry gives its bytes back
    assert cache.size_bytes == 2 * entry + len("b") + len("small") + ENTRY_OVERHEAD
    assert cache.pop("b") == "small" and cache.size_bytes == 2 * entry
    assert cache.drain() == [("c", "x" * 1000), ("d", "x" * 1000)] and cache.size_bytes == 0


@pytest_asyncio.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    store = await open_store(f"sqlite:///{tmp_path / 'book.db'}")
    assert isinstance(store, SqlStore)
    yield store
    await store.close()


async def test_the_function_book_stays_within_its_bytes_with_many_big_functions(sqlite_store: SqlStore) -> None:
    project = await sqlite_store.ensure_project("book")
    book = FunctionService(sqlite_store, max_entries=1000, max_bytes=4 * MB)
    instructions = "Follow these rules. " * (MB // 20)  # a 1 MB prompt, as a caller may send
    for n in range(24):  # 24 MB of prompts under new names
        record, existed = await book.ensure(Task(project, f"big-{n}", instructions=instructions + str(n)))
        assert record.name == f"big-{n}" and not existed
        assert MB < book.known_bytes <= 4 * MB  # the prompts are counted, and kept within the bound
    retained = retained_bytes(book, sqlite_store)
    assert retained < 5 * MB, f"{retained / MB:.1f} MB held by a book bounded to 4 MB"
    # A forgotten function costs its next call a trip to the store, and gets no new revision.
    record, existed = await book.ensure(Task(project, "big-0", instructions=instructions + "0"))
    assert existed and record.revision_number == 1
    assert await book.current(project, "big-0") is record


async def test_the_function_book_counts_hits_for_a_bounded_number_of_names(sqlite_store: SqlStore) -> None:
    project = await sqlite_store.ensure_project("hits")
    book = FunctionService(sqlite_store)
    for _ in range(3):
        await book.ensure(Task(project, "popular"))
    await book.flush_hits()
    record = await sqlite_store.get_function(project, "popular")
    assert record is not None and record.hit_count == 3


def _request(key: str) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/v2/call", "headers": [
        (b"authorization", f"Bearer {key}".encode())]})


async def test_keys_presented_in_endless_forms_do_not_grow_memory(sqlite_store: SqlStore) -> None:
    """A valid key with different trailing spaces is the same key, but each form used to be
    remembered (up to 10,000 of them, each as long as a header)."""
    key = f"key-{uuid.uuid4().hex}"
    auth = Authenticator(sqlite_store)
    await auth.bootstrap([key])
    for n in range(1500):  # 45 MB of distinct presented forms
        assert await auth.project_for(_request(key + " " * (30_000 + n)))
    retained = retained_bytes(auth, sqlite_store)
    assert retained < 5 * MB, f"{retained / MB:.1f} MB held for one valid key"
    assert await auth.project_for(_request(key))  # the plain form still resolves


def test_the_price_book_remembers_a_bounded_number_of_model_names() -> None:
    from taskgate.engine.cost import PRICE_ENTRIES, PriceBook
    from taskgate.providers.base import Usage

    book = PriceBook()
    usage = Usage(input_tokens=1000, output_tokens=1000)
    priced = book.cost("openai", "gpt-4o-mini", usage)
    for position in range(PRICE_ENTRIES + 500):  # names a caller made up: no price, each looked up once
        assert book.cost("openai", f"made-up-{position}-" + "x" * 200, usage) is None
    assert len(book._entries) == PRICE_ENTRIES
    assert book.cost("openai", "gpt-4o-mini", usage) == priced  # forgotten, then found again


async def test_the_example_selector_remembers_a_bounded_number_of_empty_functions(sqlite_store: SqlStore) -> None:
    from taskgate.engine.fewshot import ExampleSelector

    selector = ExampleSelector(sqlite_store, remembered=20)
    project = await sqlite_store.ensure_project("p")
    for position in range(30):
        assert await selector.select(project, f"function-{position}", "x", 3) == []
    assert len(selector._empty_until) == 20
    assert "function-29" in selector._empty_until and "function-0" not in selector._empty_until
