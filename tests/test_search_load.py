"""200 concurrent requests against the real server on loopback: all answered, none an error.

The server is uvicorn on 127.0.0.1 on a free port, in a thread of this process (as in
test_browser.py); the requests are a mix of searches, health checks and gallery images, all
in flight at once from an asyncio httpx client. Latency percentiles are recorded, not asserted:
shared machines are too noisy for a timed check; only correctness and completion in a bound are.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fashion_search.search.live import served_on_loopback
from test_search_index import build_search_project

from fashion_search.search import commands
from fashion_search.search.app import MAX_RESULTS
from fashion_search.search.engine import SearchEngine

pytestmark = pytest.mark.slow

REQUESTS = 200
TOTAL_TIMEOUT_S = 120  # a bound on the whole burst, not a timing check
REQUEST_TIMEOUT_S = 60
QUERIES = ["a red dress", "denim shorts", "black leather jacket", "white cotton t-shirt with a print",
           "robe rouge à fleurs", "красное платье", "連衣裙", "👗✨", "striped polo shirt for men",
           "tank top"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_search_project(tmp_path_factory.mktemp("load"))


@pytest.fixture(scope="module")
def engine(project: Path) -> SearchEngine:
    return SearchEngine.open(project / "models/index", root=project)


@pytest.fixture(scope="module")
def server(engine: SearchEngine) -> Iterator[tuple[str, int]]:
    """(host, port) of the app served by uvicorn from a thread, on a port the OS chose."""
    with served_on_loopback(engine) as address:
        yield address


def test_serve_binds_to_localhost_unless_told_otherwise() -> None:
    parser = argparse.ArgumentParser()
    commands.add_search_commands(parser.add_subparsers())
    assert commands.DEFAULT_HOST == "127.0.0.1"
    assert parser.parse_args(["serve"]).host == "127.0.0.1"
    assert parser.parse_args(["serve", "--host", "0.0.0.0"]).host == "0.0.0.0"  # only when asked


def planned_requests(engine: SearchEngine) -> list[tuple[str, dict]]:
    """REQUESTS (path, params): three searches in five, one health check, one image, interleaved."""
    plan = []
    for n in range(REQUESTS):
        if n % 5 in (0, 2, 4):
            plan.append(("/search", {"q": f"{QUERIES[n % len(QUERIES)]} {n}", "k": [1, 5, 10, 50, 1000][n % 5]}))
        elif n % 5 == 1:
            plan.append(("/health", {}))
        else:
            plan.append(("/images/" + engine.index.ids[n % engine.gallery_size], {}))
    return plan


async def fire(base_url: str, plan: list[tuple[str, dict]]) -> list[tuple[httpx.Response | BaseException, float]]:
    """Every request in flight at once (one connection each); (response or error, seconds) in plan order."""
    limits = httpx.Limits(max_connections=len(plan), max_keepalive_connections=len(plan))
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
        start_together = asyncio.Event()

        async def one(path: str, params: dict) -> tuple[httpx.Response | BaseException, float]:
            await start_together.wait()
            began = time.perf_counter()
            try:
                response = await client.get(path, params=params)
            except httpx.HTTPError as error:
                return error, time.perf_counter() - began
            return response, time.perf_counter() - began

        tasks = [asyncio.create_task(one(path, params)) for path, params in plan]
        await asyncio.sleep(0)
        start_together.set()
        return await asyncio.wait_for(asyncio.gather(*tasks), TOTAL_TIMEOUT_S)


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49] * 1000, 1), "p95_ms": round(cuts[94] * 1000, 1),
            "p99_ms": round(cuts[98] * 1000, 1), "max_ms": round(max(seconds) * 1000, 1)}


def test_200_concurrent_requests_on_loopback_all_succeed(server: tuple[str, int], engine: SearchEngine,
                                                         project: Path, record_property,
                                                         capsys: pytest.CaptureFixture) -> None:
    host, port = server
    assert host == "127.0.0.1"
    plan = planned_requests(engine)
    began = time.perf_counter()
    outcomes = asyncio.run(fire(f"http://{host}:{port}", plan))
    wall_s = time.perf_counter() - began

    errors = [f"{path} {params}: {outcome!r}" for (path, params), (outcome, _) in zip(plan, outcomes)
              if not isinstance(outcome, httpx.Response) or outcome.status_code != 200]
    assert not errors, f"{len(errors)} of {REQUESTS} failed: {errors[:5]}"
    for (path, params), (response, _) in zip(plan, outcomes):
        assert response.headers["x-content-type-options"] == "nosniff"
        if path == "/search":
            body = response.json()
            assert body["query"] == params["q"]
            assert len(body["results"]) == min(params["k"], engine.gallery_size, MAX_RESULTS)
        elif path == "/health":
            assert response.json()["status"] == "ok"
        else:
            image_id = path.removeprefix("/images/")
            assert response.content == (project / engine.index.paths[engine.index.ids.index(image_id)]).read_bytes()

    latency = {"requests": REQUESTS, "wall_s": round(wall_s, 2), **percentiles_ms([s for _, s in outcomes])}
    record_property("latency", json.dumps(latency))
    with capsys.disabled():  # on the terminal with or without -s
        print("\nsearch load latency:", json.dumps(latency))
