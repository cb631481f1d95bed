"""tools/async_to_sync.py: the sync modules are generated from the async ones, and stay so."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("async_to_sync", ROOT / "tools/async_to_sync.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


def sync(source: str) -> str:
    return str(tool.async_to_sync(textwrap.dedent(source)))


# --- the checked-in files ---------------------------------------------------------------------


@pytest.mark.parametrize("target", tool.TARGETS, ids=lambda t: t.output)
def test_the_generated_file_is_what_the_generator_makes_now(target: object) -> None:
    fresh = tool.generate(target)
    assert (ROOT / target.output).read_text() == fresh, (  # type: ignore[attr-defined]
        f"{target.output} is stale: run `python tools/async_to_sync.py`"  # type: ignore[attr-defined]
    )


@pytest.mark.parametrize("target", tool.TARGETS, ids=lambda t: t.output)
def test_the_generated_file_says_so_and_has_nothing_async_left(target: object) -> None:
    text = (ROOT / target.output).read_text()  # type: ignore[attr-defined]
    source = Path(target.source).name  # type: ignore[attr-defined]
    assert text.startswith(f"# WARNING: generated from {source} by tools/async_to_sync.py")
    assert "DO NOT EDIT" in text.splitlines()[0]
    for node in ast.walk(ast.parse(text)):
        assert not isinstance(node, ast.AsyncFunctionDef | ast.AsyncWith | ast.AsyncFor | ast.Await)
        name = getattr(node, "id", None) or getattr(node, "attr", None) or getattr(node, "name", "")
        assert name not in tool.NAMES, name
        assert "asyncio" not in (name or ""), name


def test_check_names_a_stale_file_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(ROOT / "pyproject.toml", tmp_path)  # ruff's configuration
    for target in tool.TARGETS:
        for name in (target.source, target.output):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    assert tool.main(["--check"]) == 0
    stale = tool.TARGETS[0]
    source = tmp_path / stale.source
    source.write_text(source.read_text().replace("Every method is one round trip.", "Hello."))
    assert tool.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert stale.output in err and "stale" in err
    assert "Hello." not in (tmp_path / stale.output).read_text(), "--check writes nothing"
    assert tool.main([]) == 0  # regenerates...
    assert "Hello." in (tmp_path / stale.output).read_text()
    assert tool.main(["--check"]) == 0  # ...and then it is fresh


# --- the rules, on small snippets ---------------------------------------------------------------


def test_async_def_becomes_def() -> None:
    assert sync("async def f(x):\n    return x\n") == "def f(x):\n    return x\n"


def test_decorated_async_def_keeps_its_decorators() -> None:
    out = sync("""\
        @asynccontextmanager
        async def cm() -> AsyncIterator[int]:
            yield 1
        """)
    assert out == "@contextmanager\ndef cm() -> Iterator[int]:\n    yield 1\n"


def test_await_is_dropped() -> None:
    assert sync("async def f():\n    y = await g(1)\n") == "def f():\n    y = g(1)\n"


def test_await_inside_a_call_keeps_the_call_parentheses() -> None:
    assert sync("async def f():\n    h(await g(), 2)\n") == "def f():\n    h(g(), 2)\n"


def test_an_awaited_operand_loses_its_grouping_parentheses() -> None:
    out = sync("async def f():\n    row = await (await conn.execute(q)).fetchone()\n")
    assert out == "def f():\n    row = conn.execute(q).fetchone()\n"
    out = sync("async def f():\n    x = (await rows())[0]\n")
    assert out == "def f():\n    x = rows()[0]\n"


def test_async_with_and_async_for_lose_async() -> None:
    out = sync("""\
        async def f(pool):
            async with pool.connection() as conn:
                async for note in conn.notifies():
                    yield note
        """)
    assert out == textwrap.dedent("""\
        def f(pool):
            with pool.connection() as conn:
                for note in conn.notifies():
                    yield note
        """)


def test_async_with_await_connect_becomes_a_plain_with() -> None:
    out = sync("""\
        async def f(dsn):
            async with await psycopg.AsyncConnection.connect(dsn) as conn:
                pass
        """)
    assert "    with psycopg.Connection.connect(dsn) as conn:\n" in out


def test_names_are_mapped_everywhere_they_occur() -> None:
    out = sync("""\
        from psycopg_pool import AsyncConnectionPool
        from ._events_async import follow_events_async

        class AsyncDatabase:
            def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
                self.conn: psycopg.AsyncConnection[Any] | None = None

            async def __aenter__(self) -> AsyncDatabase:
                return self

        async def connect_async(connect_async=None) -> AsyncDatabase:
            return AsyncDatabase(AsyncConnectionPool(connect_async=connect_async))
        """)
    assert out == textwrap.dedent("""\
        from psycopg_pool import ConnectionPool
        from ._events import follow_events

        class Database:
            def __init__(self, pool: ConnectionPool[Any]) -> None:
                self.conn: psycopg.Connection[Any] | None = None

            def __enter__(self) -> Database:
                return self

        def connect(connect=None) -> Database:
            return Database(ConnectionPool(connect=connect))
        """)


def test_unmapped_names_are_left_alone() -> None:
    source = "def async_thing(AsyncOther):\n    return Asynchronous.x\n"
    assert sync(source) == source


def test_asyncio_sleep_becomes_time_sleep() -> None:
    out = sync("""\
        import asyncio

        async def f():
            await asyncio.sleep(0.2)
        """)
    assert out == "import time\n\ndef f():\n    time.sleep(0.2)\n"


@pytest.mark.parametrize(
    "source",
    [
        "async def f():\n    await asyncio.gather(a(), b())\n",
        "x = asyncio\n",
        "async def f(xs):\n    return [x async for x in xs]\n",
    ],
)
def test_what_has_no_sync_twin_is_an_error(source: str) -> None:
    with pytest.raises(tool.UnsupportedAsync):
        sync(source)


def test_docstrings_read_right_both_ways_but_other_strings_and_comments_are_kept() -> None:
    out = sync('''\
        async def f():
            """Use ``async with`` on an :class:`AsyncDatabase`, then await it."""
            # async with AsyncDatabase: a comment stays as written
            return "async with AsyncDatabase"  # and so does a plain string
        ''')
    assert out == textwrap.dedent('''\
        def f():
            """Use ``with`` on an :class:`Database`, then it."""
            # async with AsyncDatabase: a comment stays as written
            return "async with AsyncDatabase"  # and so does a plain string
        ''')


def test_module_and_class_docstrings_are_converted() -> None:
    out = sync('''\
        """The async driver: ``await ad.connect_async(dsn)``."""

        class AsyncCaller:
            """Obtained from :meth:`AsyncDatabase.as_user`."""
        ''')
    assert out.startswith('"""The driver: ``ad.connect(dsn)``."""')
    assert '"""Obtained from :meth:`Database.as_user`."""' in out


def test_columns_after_non_ascii_text_are_right() -> None:
    out = sync('async def f():\n    s = "café ☕"; t = await g(s)\n')
    assert out == 'def f():\n    s = "café ☕"; t = g(s)\n'


def test_layout_and_comments_survive_and_the_output_compiles() -> None:
    source = (ROOT / tool.TARGETS[0].source).read_text()
    out = tool.async_to_sync(source)
    compile(out, "client.py", "exec")
    assert "# Pipelined: BEGIN and the caller's claims travel with the first query" in out
    assert len(out.splitlines()) == len(source.splitlines())
