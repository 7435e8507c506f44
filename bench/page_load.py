"""What opening the page costs: bytes and time in a browser, and the server's work for many
visitors.

    python -m bench.page_load [--visitors 200] [--concurrency 32] [--rounds 3] [--url URL]

The app runs as `python app.py` (bench.serving.start_app) unless --url names one. In headless
Chromium (every request outside the app blocked), each round opens the page in a fresh browser
profile (a first visit) and reloads it (a revisit): the bytes that crossed the network (compressed)
and their size unpacked, by kind of file, and the time from the start of the page's load to the
Draw tab's first answer in the page. Then `--visitors` simulated first visits (the same-origin GETs
the browser made, `--concurrency` visitors at a time, each fetching six files at once as a browser
does): requests/s, request latency p50/p99, and the app's CPU time per visitor (a revisit
asks only the app's config, about 30 KB). Drawing costs the server nothing in the page path
(tests/test_browser_app.py counts the requests), so a visitor's cost is this.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.browser_pen import open_app, pad_ready, percentile  # noqa: E402
from bench.load import cpu_seconds  # noqa: E402
from bench.serving import app_at, chromium  # noqa: E402

RESOURCES = """() => performance.getEntriesByType('resource').map(e => ({
    url: e.name, transfer: e.transferSize, encoded: e.encodedBodySize, decoded: e.decodedBodySize}))
"""


def kind_of(url: str) -> str:
    path = urlsplit(url).path
    if "/gradio_api/tv/" in path:
        if path.endswith(".wasm") or path.endswith(".mjs"):
            return "in-page runtime"
        return "digit model" if path.endswith((".onnx", ".json")) else "page's own"
    if path.startswith("/gradio_api/") or path in ("/config", "/"):
        return "app (config, API)"
    return "Gradio's page (scripts, styles, fonts)"


def visit(page, url: str, reload: bool = False) -> dict:
    """Open (or reload) the page, wait for the pad to answer in the page; the resources fetched and
    the time from the load's start to the pad's first answer (its warm-up)."""
    if reload:
        page.reload()
        page.wait_for_function("window.tvPads && window.tvPads.sketch", timeout=60_000)
    else:
        open_app(page, url)
    assert pad_ready(page), "the pad answers in the page"
    ready = page.evaluate("window.tvPads.sketch.timings.readyAt")
    document = page.evaluate("performance.getEntriesByType('navigation')[0].transferSize")
    files = page.evaluate(RESOURCES)
    files.append({"url": url, "transfer": document, "encoded": document, "decoded": document})
    return {"ready_ms": ready, "files": files}


def in_browser(url: str, rounds: int) -> tuple[list[dict], list[dict], list[str]]:
    """First visits and revisits, and the same-origin GETs of a first visit."""
    firsts, revisits, gets = [], [], []
    with chromium() as browser:
        for _ in range(rounds):
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            requests: list = []

            def sent(request, requests=requests) -> None:
                requests.append(request)

            page.on("request", sent)
            firsts.append(visit(page, url))
            gets = [r.url for r in requests if r.method == "GET" and r.url.startswith(url)
                    and "/queue/data" not in r.url and "/heartbeat" not in r.url]
            revisits.append(visit(page, url, reload=True))
            context.close()
    return firsts, revisits, gets


def table(visits: list[dict], title: str) -> None:
    kinds = sorted({kind_of(f["url"]) for v in visits for f in v["files"]})
    print(f"\n{title}: median over {len(visits)} rounds\n")
    print("| files | over the network (compressed) | unpacked |")
    print("|---|---:|---:|")
    def total(v: dict, key: str, kind: str) -> int:
        return sum(f[key] for f in v["files"] if kind in ("all", kind_of(f["url"])))

    for kind in kinds + ["all"]:
        sent = statistics.median(total(v, "transfer", kind) for v in visits)
        unpacked = statistics.median(total(v, "decoded", kind) for v in visits)
        print(f"| {kind} | {sent / 1024:,.0f} KB | {unpacked / 1024:,.0f} KB |")
    ready = statistics.median(v["ready_ms"] for v in visits)
    print(f"\nfrom the start of the page's load to its first answer in the page: {ready:,.0f} ms")


def visitors(url: str, gets: list[str], n: int, concurrency: int, pid: int | None) -> dict:
    """`n` simulated visits: each GETs `gets`, six at a time, as a browser would."""
    import httpx

    latencies: list[float] = []
    failed = 0

    def one_visit(_: int) -> None:
        nonlocal failed
        with httpx.Client(headers={"Accept-Encoding": "br, gzip"}, timeout=120) as client:
            def fetch(u: str) -> None:
                nonlocal failed
                t0 = time.perf_counter()
                if client.get(u).status_code >= 400:
                    failed += 1
                latencies.append(time.perf_counter() - t0)
            with ThreadPoolExecutor(6) as files:
                list(files.map(fetch, gets))

    cpu0 = cpu_seconds(pid) if pid else float("nan")
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one_visit, range(n)))
    wall = time.perf_counter() - t0
    cpu = (cpu_seconds(pid) - cpu0) if pid else float("nan")
    return {"requests": len(latencies), "failed": failed, "seconds": wall,
            "rps": len(latencies) / wall, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * percentile(latencies, 0.99), "cpu_per_visitor_ms": 1000 * cpu / n}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--visitors", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=32, help="visitors at a time")
    p.add_argument("--rounds", type=int, default=3, help="browser visits (fresh profiles)")
    p.add_argument("--url", default=None, help="a running app (default: start one)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, \
            app_at(args.url, None, Path(tmp)) as (proc, url):
        firsts, revisits, gets = in_browser(url, args.rounds)
        table(firsts, "A first visit")
        table(revisits, "A revisit (the same browser, its cache kept)")
        print(f"\n{args.visitors} simulated first visits ({len(gets)} GETs each, "
              f"{args.concurrency} visitors at a time); the app's CPU on this 2-core machine:\n")
        print("| requests | failed | seconds | requests/s | p50 ms | p99 ms "
              "| app CPU per visitor |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        r = visitors(url, gets, args.visitors, args.concurrency, proc.pid if proc else None)
        print(f"| {r['requests']} | {r['failed']} | {r['seconds']:.1f} | {r['rps']:.0f} | "
              f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['cpu_per_visitor_ms']:.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
