"""CPU per call of the executor's HTTP client, next to the two libraries it could be built on,
measured in the same run against the same server.

    python -m tests.benchmarks.http_client [--quick] [--calls N] [--repeats N]

The server is ``KeepAliveServer`` (the fakes' keep-alive HTTP/1.1 server) in a child process, so
its work is not in the figures, answering a small JSON body. Each client makes ``--calls``
sequential GETs with a query string on one keep-alive connection; the figure is the calling
thread's CPU time per call (``time.thread_time``), median of the repetitions:

* ``JsonHttpClient``: the executor's client (urllib3 underneath, bounded body, JSON decoding);
* ``urllib3 pool``: a bare ``HTTPConnectionPool.request``, the floor the client is built on;
* ``httpx.Client``: the client the adapters used before (bare ``get``, no body bound or decoding).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import urllib3

from executor.adapters.http import JsonHttpClient
from tests.benchmarks.harness import median, note, spread, table

SERVER = """
import sys
from tests.benchmarks.harness import KeepAliveServer

def app(environ, start_response):
    body = b'{"hasAccess": true}'
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]

server = KeepAliveServer(app)
print(server.port, flush=True)
server.serve_forever()
"""


def cpu_ms_per_call(call: Callable[[], object], calls: int) -> float:
    for _ in range(min(200, calls)):  # warm-up: connection open, caches filled
        call()
    started = time.thread_time()
    for _ in range(calls):
        call()
    return (time.thread_time() - started) / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1,000 calls, 3 repetitions")
    args = parser.parse_args()
    calls, repeats = (1000, 3) if args.quick else (args.calls, args.repeats)

    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        base = f"http://127.0.0.1:{port}"
        ours = JsonHttpClient(base, headers={"forest-secret-key": "ab" * 32}, timeout_s=10)
        pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=1)
        before = httpx.Client(base_url=base)
        clients: dict[str, Callable[[], object]] = {
            "JsonHttpClient (the executor's)": lambda: ours.request(
                "GET", "/run/1/access-check", operation="bench", params={"userId": "7"}
            ),
            "urllib3 pool (its floor)": lambda: pool.request("GET", "/run/1/access-check?userId=7"),
            "httpx.Client (used before)": lambda: before.get(
                "/run/1/access-check", params={"userId": "7"}
            ),
        }
        figures: dict[str, list[float]] = {name: [] for name in clients}
        for repeat in range(repeats):
            note(f"repetition {repeat + 1}/{repeats}")
            for name, call in clients.items():  # interleaved: noise hits all three alike
                figures[name].append(cpu_ms_per_call(call, calls))
        reference = median(figures["JsonHttpClient (the executor's)"])
        rows = [
            [name, median(values), spread(values), median(values) / reference]
            for name, values in figures.items()
        ]
        print(
            table(
                f"HTTP client CPU per call ({calls} keep-alive GETs, medians of {repeats})",
                ["client", "CPU ms/call", "min-max", "x JsonHttpClient"],
                rows,
            )
        )
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
