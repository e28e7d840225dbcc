"""The reports' charts (static/reports.js over the vendored ECharts) in real Chromium.

A small threaded HTTP server serves ``ticketing/web/static`` and charts_fixture.html (four JSON
islands with Chinese labels: bars with links, a line with a gap and a target line, stacked bars
with a line on a second axis, a pie) with the desk's own security headers, CSP included. The
page must draw every chart without a console error or a CSP violation (charts_fixture.js, a
file since nothing inline may run, collects them), show its tooltip, and open a bar's tickets
when the bar is clicked. Saves tests/artifacts/charts.png.
"""

from __future__ import annotations

import mimetypes
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Response

from tests.bot.browser import ARTIFACTS, chromium, screenshot_on_failure
from ticketing.web.security import HEADERS

pytestmark = pytest.mark.timeout(60)

HERE = Path(__file__).resolve().parent
STATIC = HERE.parents[2] / "ticketing" / "web" / "static"
FILES = {"/charts.html": HERE / "charts_fixture.html",
         "/charts_fixture.js": HERE / "charts_fixture.js"}
CHARTS = ("channels", "csat", "load", "reasons")
LANDED = b'<!doctype html><title>tickets</title><link rel="icon" href="data:,"><p>tickets'  # no /favicon.ico request


class Handler(BaseHTTPRequestHandler):
    """The fixture, /static/… and, for a clicked link, /reports/tickets; the desk's headers."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        file = FILES.get(path)
        if path.startswith("/static/"):
            candidate = (STATIC / path.removeprefix("/static/")).resolve()
            file = candidate if candidate.is_relative_to(STATIC) and candidate.is_file() else None
        if file is not None:
            body = file.read_bytes()
            kind = "text/javascript" if file.suffix == ".js" else mimetypes.guess_type(file)[0]
        elif path == "/reports/tickets":
            body, kind = LANDED, "text/html"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", f"{kind or 'application/octet-stream'}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in HEADERS.items():
            self.send_header(name.decode(), value.decode())
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


class Watched:
    """A page and what went wrong on it: console errors, uncaught exceptions."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("response", self._response)

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.errors.append(f"HTTP {response.status}: {response.url}")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"console {message.type}: {message.text}")

    def violations(self) -> list[str]:
        return self.page.evaluate("window.kefuViolations")

    def assert_clean(self) -> None:
        assert self.errors == [] and self.violations() == []


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1200, "height": 760})
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    yield pg
    context.close()


def open_charts(page: Page, site: str) -> Watched:
    watched = Watched(page)
    page.goto(f"{site}/charts.html")
    page.wait_for_function(
        "ids => ids.every(id => window.KefuCharts"
        " && KefuCharts.chartOf(document.getElementById(id)))", arg=list(CHARTS))
    return watched


def point_of(page: Page, chart: str, series: int, index: int, value: float) -> dict[str, float]:
    """Page coordinates of (category ``index``, ``value``) in a chart, from ECharts itself."""
    return page.evaluate(
        """([id, series, index, value]) => {
             const el = document.getElementById(id);
             const [x, y] = KefuCharts.chartOf(el).convertToPixel({seriesIndex: series},
                                                                   [index, value]);
             const box = el.getBoundingClientRect();
             return {x: box.left + el.clientLeft + x, y: box.top + el.clientTop + y};
           }""", [chart, series, index, value])


def cursor(page: Page, chart: str) -> str:
    return page.evaluate(
        "id => getComputedStyle(document.querySelector(`#${id} > div`)).cursor", chart)


@screenshot_on_failure
def test_charts_draw_in_chinese_without_csp_violations_and_bars_open_their_tickets(
        *, page: Page, site: str) -> None:
    watched = open_charts(page, site)
    for chart in CHARTS:
        box = page.locator(f"#{chart} canvas").first.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 200, (chart, box)
    assert page.locator("#channels").get_attribute("role") == "img"
    assert page.locator("#channels").get_attribute("aria-label") == "各渠道新工单"
    assert page.evaluate("KefuCharts.language()") == "ZH"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "charts.png"), full_page=True)

    # the tooltip (DOM nodes, no style attributes) on the first bar, and its pointer
    bar = point_of(page, "channels", 0, 0, 21)  # the middle of the 42 bar
    page.mouse.move(bar["x"], bar["y"])
    tip = page.locator("#channels .kefu-tip")
    tip.wait_for(state="visible")
    assert tip.inner_text().split() == ["网页聊天", "工单数", "42"]
    assert cursor(page, "channels") == "pointer"
    page.mouse.move(*point_of(page, "channels", 0, 3, 4).values())  # 电话: no link
    page.locator("#channels .kefu-tip-title", has_text="电话").wait_for()
    assert cursor(page, "channels") == "default"

    page.mouse.move(*point_of(page, "load", 2, 1, 9).values())  # a value of the right axis
    assert page.locator("#load .kefu-tip").inner_text().split() == [
        "11-02", "紧急", "5", "张", "普通", "26", "张", "首次响应", "9", "分钟"]
    watched.assert_clean()

    # the listener does see a violation: a style attribute set from a script
    page.evaluate("document.body.setAttribute('style', 'color: red')")
    page.wait_for_function("window.kefuViolations.length > 0")
    assert "style-src" in watched.violations()[0]

    page.mouse.click(bar["x"], bar["y"])
    page.wait_for_url("**/reports/tickets?channel=web")


@screenshot_on_failure
def test_a_point_of_the_line_opens_its_day_and_htmx_swaps_redraw(*, page: Page, site: str) -> None:
    watched = open_charts(page, site)
    old = page.locator("#channels")
    # an htmx swap: the old chart leaves the page, a new container and island come in
    island = {"title": "新图表", "x": ["甲", "乙"], "series": [{"name": "数", "values": [1, 2]}]}
    page.evaluate(
        """island => {
             window.oldChart = document.getElementById('channels');
             const fresh = document.createElement('section');
             const data = document.createElement('script');
             data.type = 'application/json';
             data.id = 'chart-data-new';
             data.textContent = JSON.stringify(island);
             fresh.append(data);
             fresh.insertAdjacentHTML('beforeend',
               '<div class="kefu-chart" id="fresh" data-chart="chart-data-new"></div>');
             window.oldChart.replaceWith(fresh);
             fresh.dispatchEvent(new CustomEvent('htmx:afterSettle', {bubbles: true}));
           }""", island)
    assert old.count() == 0
    assert page.evaluate("!KefuCharts.chartOf(window.oldChart)"
                         " && !echarts.getInstanceByDom(window.oldChart)")
    assert page.locator("#fresh canvas").count() == 1
    assert page.locator("#fresh").get_attribute("aria-label") == "新图表"

    # the charts follow their boxes' size
    width = page.locator("#csat canvas").first.bounding_box()["width"]
    page.set_viewport_size({"width": 700, "height": 760})  # one column of charts, not three
    page.wait_for_function(
        "w => document.querySelector('#csat canvas').getBoundingClientRect().width > w + 200",
        arg=width)

    point = point_of(page, "csat", 0, 4, 93.1)  # 11-05
    page.mouse.click(point["x"], point["y"])
    page.wait_for_url("**/reports/tickets?day=2026-11-05")
    assert watched.errors == []


def option(page: Page, data: dict, kind: str, lang: str = "EN") -> dict:
    """KefuCharts.optionFor's answer as JSON (its functions as "fn")."""
    return page.evaluate(
        """([data, kind, lang]) => JSON.parse(JSON.stringify(
             KefuCharts.optionFor(data, kind, lang),
             (key, value) => typeof value === 'function' ? 'fn' : value))""",
        [data, kind, lang])


def test_options_follow_the_data_contract(page: Page, site: str) -> None:
    open_charts(page, site)
    line = option(page, {"title": "CSAT", "x": ["a", "b", "c"], "unit": "%", "y_max": 100,
                         "mark": {"y": 90, "name": "target"},
                         "series": [{"name": "CSAT %", "values": [88.2, None, 91],
                                     "links": ["/r?a", "/r?b", "//evil.example/"]}]}, "line")
    series = line["series"][0]
    assert series["type"] == "line" and series["connectNulls"] is False
    assert [d["value"] for d in series["data"]] == [88.2, None, 91]
    # a gap has no link; a link off the site is dropped
    assert [d.get("link") for d in series["data"]] == ["/r?a", None, None]
    assert [d.get("cursor") for d in series["data"]] == ["pointer", None, None]
    assert line["yAxis"] == [line["yAxis"][0]] and line["yAxis"][0]["max"] == 100
    assert series["markLine"]["data"] == [{"yAxis": 90}]
    assert line["title"]["text"] == "CSAT" and line["legend"]["show"] is False

    mixed = option(page, {"x": ["a"], "series": [
        {"name": "low", "values": [1]}, {"name": "high", "values": [2]},
        {"name": "wait", "values": [3], "kind": "line", "axis": 1}]}, "stacked-bar")
    assert [(s["type"], s.get("stack"), s["yAxisIndex"]) for s in mixed["series"]] == [
        ("bar", "total", 0), ("bar", "total", 0), ("line", None, 1)]
    assert [y["position"] for y in mixed["yAxis"]] == ["left", "right"]

    pie = option(page, {"x": ["a", "b", "c"], "series": [
        {"name": "n", "values": [5, None, 0], "links": ["/t?a", "/t?b", None]}]}, "pie")
    assert pie["series"][0]["type"] == "pie" and pie["tooltip"]["trigger"] == "item"
    assert [(d["name"], d["value"], d.get("link")) for d in pie["series"][0]["data"]] == [
        ("a", 5, "/t?a")]

    empty = option(page, {"x": ["a"], "empty": "暂无数据", "series": [{"values": [None]}]}, "odd")
    assert empty["series"][0]["type"] == "bar"  # an unknown kind is a bar chart
    assert empty["graphic"][0]["style"]["text"] == "暂无数据"
    assert page.evaluate("KefuCharts.optionFor({x: ['a'], series: [{values: [1234.5]}]}, 'bar',"
                         " 'EN').yAxis[0].axisLabel.formatter(1234.5)") == "1,234.5"
