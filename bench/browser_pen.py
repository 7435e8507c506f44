"""The app in a real browser: recorded pen digits replayed on the drawing pad, the answers read off
the page.

    python -m bench.browser_pen [--every 17] [--url http://127.0.0.1:7860/] [--paced] [--server]

Replays recorded pen trajectories (TINYVISION_PEN_DIGITS; evaluation only) as the pointer events of
mouse drags on the Draw tab's pad in headless Debian Chromium (Playwright, /usr/bin/chromium; every
request outside the app blocked), alternating the recorded layout (small, off-centre) and
big/centred, reads the label the pad shows once it has answered the last drawing, clears, and
prints the accuracy and the requests the page sent while drawing. `--paced` moves the pen once a
frame, as a hand does, and prints the time from a pointer event to its answer on screen (p50/p95,
preparation and inference apart); `--server` blocks the in-page runtime, so that the pad answers
through the server. Without --url the app is served in this process on a free port.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import pendigits  # noqa: E402
from bench.serving import ARTIFACTS, chromium, serve_app  # noqa: E402
from core.strokes import CANVAS, layout_strokes  # noqa: E402

# The runtime's files: blocked, they leave the page to answer through the server.
RUNTIME_FILES = re.compile(r".*/(ort\.wasm\.bundle\.min\.mjs|ort-wasm-simd-threaded\.wasm)$")


class Network:
    """Counts the page's requests (queue joins, uploads, file fetches; not the long-lived event
    stream)."""

    IGNORED = ("/queue/data", "/heartbeat")

    def __init__(self, page):
        self.sent: list[str] = []
        self.in_flight = 0
        self.last = time.monotonic()
        page.on("request", self._start)
        page.on("requestfinished", self._end)
        page.on("requestfailed", self._end)

    def _watched(self, request) -> bool:
        return not any(w in request.url for w in self.IGNORED)

    def _start(self, request):
        if self._watched(request):
            self.sent.append(request.url)
            self.in_flight += 1
            self.last = time.monotonic()

    def _end(self, request):
        if self._watched(request):
            self.in_flight -= 1
            self.last = time.monotonic()

    def quiet_for(self) -> float:
        return 0.0 if self.in_flight > 0 else time.monotonic() - self.last


def open_app(page, url: str, server: bool = False) -> None:
    """Open the app; with `server`, its in-page runtime blocked. Waits for the Draw tab's pad."""
    if server:
        page.route(RUNTIME_FILES, lambda route: route.abort())
    page.goto(url)
    page.wait_for_function("window.tvPads && window.tvPads.sketch", timeout=60_000)


def pad_ready(page, pad: str = "sketch") -> bool:
    """Whether the pad answers in the page (its runtime and model loaded), once it knows."""
    return page.evaluate(f"window.tvPads[{pad!r}].ready()")


def canvas_geometry(page, pad: str = "sketch") -> tuple[float, float, float]:
    """(left, top, screen pixels per canvas pixel) of a pad's drawing area."""
    box = page.locator(f"#{pad} .tv-canvas").bounding_box()
    return box["x"], box["y"], box["width"] / CANVAS


def to_screen(strokes, geometry):
    left, top, zoom = geometry
    return [[(left + x * zoom, top + y * zoom) for x, y in s] for s in strokes]


# The pointer events a mouse drag produces, dispatched on the pad's canvas. `paced`: one move per
# frame, as a hand moves; else every move of a stroke at once (the pad answers the newest only).
POINTER_REPLAY = """async ([strokes, paced]) => {
  const frame = () => new Promise(resolve => requestAnimationFrame(() => resolve()));
  let target = null;  // whatever a real mouse would hit at the stroke's first point
  const fire = (type, p, buttons) => target.dispatchEvent(new PointerEvent(type, {
      clientX: p[0], clientY: p[1], bubbles: true, cancelable: true, composed: true, pointerId: 1,
      pointerType: 'mouse', isPrimary: true, button: 0, buttons: buttons, view: window}));
  for (const s of strokes) {
    target = document.elementFromPoint(s[0][0], s[0][1]);
    fire('pointerover', s[0], 0);
    fire('pointerdown', s[0], 1);
    for (const p of s.slice(1)) {
      fire('pointermove', p, 1);
      if (paced) await frame();
    }
    fire('pointerup', s[s.length - 1], 0);
    await frame();
  }
}"""


def draw(page, strokes, geometry, paced: bool = False) -> None:
    page.evaluate(POINTER_REPLAY, [to_screen(strokes, geometry), paced])


def subsample(strokes, max_points: int = 12):
    """At most about `max_points` points a stroke (first and last kept): fewer mouse moves."""
    return [s[:: max(1, len(s) // max_points)] + [s[-1]] for s in strokes]


def drag(page, strokes, geometry, max_points: int = 12) -> None:
    """Draw with Playwright's real mouse: press, move through (a subsample of) the points,
    release."""
    for points in to_screen(subsample(strokes, max_points), geometry):
        page.mouse.move(*points[0])
        page.mouse.down()
        for p in points[1:]:
            page.mouse.move(*p)
        page.mouse.up()


def answer(page, pad: str = "sketch", timeout: float = 30) -> str:
    """The label a pad shows once it has answered every drawing so far ("" for none)."""
    page.wait_for_function(f"window.tvPads[{pad!r}].idle()", timeout=timeout * 1000)
    return page.evaluate(f"window.tvPads[{pad!r}].label")


def gradio_label(page, selector: str, timeout: float = 30) -> str:
    """The text a gr.Label shows once its event has finished (the photo tab's answer)."""
    value = page.locator(f"{selector} [data-testid='label-output-value']")
    value.first.wait_for(timeout=timeout * 1000)
    busy = f"{selector} [data-testid='status-tracker']:not(.hide)"
    page.wait_for_function(f"() => !document.querySelector({busy!r})", timeout=timeout * 1000)
    return value.first.inner_text()


def clear(page, pad: str = "sketch") -> None:
    page.click(f"#{pad} .tv-clear")
    answer(page, pad)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def replay(page, digits: list[dict], paced: bool = False, pad: str = "sketch") -> dict:
    """Draw each digit, read the pad's answer, clear; returns the summary (accuracy, errors, the
    requests sent while drawing, the path that answered and, per answer, its latency)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    geometry = canvas_geometry(page, pad)
    network = Network(page)
    first = len(page.evaluate(f"window.tvPads[{pad!r}].latencies()"))
    results = []
    t0 = time.monotonic()
    for i, d in enumerate(digits):
        layout = "recorded" if i % 2 == 0 else "big"
        draw(page, layout_strokes(d["strokes"], CANVAS, layout), geometry, paced)
        predicted = answer(page, pad)
        results.append({"label": d["label"], "writer": d["writer"], "layout": layout,
                        "predicted": predicted})
        if predicted != str(d["label"]):
            page.screenshot(path=str(ARTIFACTS / f"draw-{i:03d}-{d['label']}-as-{predicted}.png"))
        clear(page, pad)
    lat = page.evaluate(f"window.tvPads[{pad!r}].latencies()")[first:]
    correct = sum(r["predicted"] == str(r["label"]) for r in results)
    total, prep, infer = ([row[k] for row in lat] for k in range(3))
    return {"digits": len(results), "correct": correct, "accuracy": correct / len(results),
            "seconds": round(time.monotonic() - t0, 1), "requests": network.sent,
            "path": page.evaluate(f"window.tvPads[{pad!r}].path"), "answers": len(lat),
            "latency_ms": {name: {"p50": round(statistics.median(v), 2) if v else None,
                                  "p95": round(percentile(v, 0.95), 2)}
                           for name, v in (("total", total), ("preparation", prep),
                                           ("inference", infer))},
            "errors": [r for r in results if r["predicted"] != str(r["label"])]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--every", type=int, default=17,
                   help="every n-th recorded digit (17: 103 digits)")
    p.add_argument("--url", default=None, help="a running app (default: serve one here)")
    p.add_argument("--paced", action="store_true", help="one pen move per frame, as a hand moves")
    p.add_argument("--server", action="store_true", help="block the in-page runtime")
    args = p.parse_args(argv)
    digits = pendigits.load()[:: args.every]
    with (nullcontext(args.url) if args.url else serve_app()) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        open_app(page, url, server=args.server)
        ready = pad_ready(page)
        summary = replay(page, digits, paced=args.paced)
    (ARTIFACTS / "browser-pen-digits.json").write_text(json.dumps(summary, indent=1))
    lat = summary["latency_ms"]
    print(f"browser replay ({summary['path']} path, runtime ready: {ready}): "
          f"{summary['correct']}/{summary['digits']} = {summary['accuracy']:.1%} in "
          f"{summary['seconds']:.0f} s; {len(summary['requests'])} requests while drawing")
    print(f"{summary['answers']} answers in the page: pointer event -> answer on screen p50 "
          f"{lat['total']['p50']} ms, p95 {lat['total']['p95']} ms (preparation p50 "
          f"{lat['preparation']['p50']} ms, inference p50 {lat['inference']['p50']} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
