/* Kefu reports: charts drawn with the vendored Apache ECharts (/static/vendor/echarts.min.js),
 * plain JS, no build step, nothing inline (CSP script-src 'self'; style-src 'self').
 *
 *   <script src="/static/vendor/echarts.min.js" defer></script>
 *   <script src="/static/reports.js" defer></script>
 *   <link rel="stylesheet" href="/static/reports.css">
 *
 *   <script type="application/json" id="chart-data-csat">{ ...the data below... }</script>
 *   <div class="kefu-chart" data-chart="chart-data-csat" data-kind="line"></div>
 *
 * data-kind is bar | line | stacked-bar | pie (bar when missing); the height comes from
 * reports.css (.kefu-chart, .kefu-chart.tall, .kefu-chart.short). The JSON "island":
 *
 *   {
 *     "title": "CSAT by day",              shown at the top left and as the aria-label;
 *                                           every word comes from the server, in its language
 *     "x": ["2026-11-01", "2026-11-02"],   category labels (pie: slice labels)
 *     "unit": "%",                          optional, appended as is to values in tooltips and
 *                                           on the y axis (give " min" a space if it needs one)
 *     "series": [
 *       {"name": "CSAT %",                  legend and tooltip name
 *        "values": [88.2, null],            one per label; null = no value (a gap)
 *        "links": ["/reports/tickets?…", null],  optional; clicking that bar / point / slice
 *                                           opens the link (site paths only, "/…")
 *        "kind": "line",                    optional: bar | line, mixes kinds in one chart
 *        "axis": 1,                         optional: 0 (left, default) | 1 (right y axis)
 *        "unit": "h"}                       optional: this series' unit (else the chart's)
 *     ],
 *     "y_max": 100,                         optional: top of the left y axis
 *     "mark": {"y": 90, "name": "target"},  optional: a dashed line on the left y axis
 *     "empty": "No data yet"                optional: shown when there is no value at all
 *   }
 *
 * Pie charts use the first series: one slice per label (null and 0 slices are left out).
 * Charts are drawn when the page loads and inside content htmx swaps in (htmx:afterSettle);
 * charts whose element has left the page are disposed then. Each follows its element's size.
 *
 * window.KefuCharts:
 *   optionFor(data, kind, lang)  the ECharts option for an island (lang "ZH" | "EN"), pure
 *   init(root)                   draws every un-drawn .kefu-chart inside root (default document)
 *   chartOf(element)             the ECharts instance of a .kefu-chart element, if drawn
 *   language()                   "ZH" when <html lang> is zh*, else "EN"
 */
(function () {
  "use strict";

  var PALETTE = ["#4e79a7", "#59a14f", "#f28e2b", "#76b7b2", "#b07aa1", "#e15759", "#edc948",
                 "#9c755f", "#bab0ac"];
  var INK = "#1f2933", MUTED = "#6b7780", LINE = "#dde3e8", MARK = "#2f855a";
  var FONT = 'system-ui, "Noto Sans CJK SC", "PingFang SC", sans-serif';
  var KINDS = { bar: 1, line: 1, "stacked-bar": 1, pie: 1 };

  function language() {
    return /^zh/i.test(document.documentElement.lang || "") ? "ZH" : "EN";
  }

  function isLink(url) {  /* a path of this site only: never "//host", "javascript:" … */
    return typeof url === "string" && url.charAt(0) === "/" && url.charAt(1) !== "/" &&
      url.indexOf("\\") < 0;
  }

  function isValue(v) { return typeof v === "number" && isFinite(v); }

  function formatter(lang) {
    var numbers = new Intl.NumberFormat(lang === "ZH" ? "zh-CN" : "en",
                                        { maximumFractionDigits: 2 });
    return function (value, unit) {
      return isValue(value) ? numbers.format(value) + (unit || "") : "–";
    };
  }

  /* One data item per label: {value, link} so that a click finds its link; the pointer cursor
   * only on items with a link (the series' cursor is "default"). */
  function items(series, labels) {
    var links = series.links || [];
    return labels.map(function (label, i) {
      var value = series.values && isValue(series.values[i]) ? series.values[i] : null;
      var item = { name: String(label), value: value };
      if (value !== null && isLink(links[i])) {
        item.link = links[i];
        item.cursor = "pointer";
      }
      return item;
    });
  }

  /* The tooltip as DOM nodes (a string would be parsed as HTML with style attributes, which
   * the CSP refuses); colours are set through the CSSOM, which it allows. */
  function tooltipNode(title, rows) {
    var box = document.createElement("div");
    box.className = "kefu-tip";
    if (title) {
      var head = document.createElement("div");
      head.className = "kefu-tip-title";
      head.textContent = title;
      box.appendChild(head);
    }
    rows.forEach(function (row) {
      var line = document.createElement("div");
      line.className = "kefu-tip-row";
      var dot = document.createElement("span");
      dot.className = "kefu-tip-dot";
      dot.style.backgroundColor = row.color;
      var name = document.createElement("span");
      name.className = "kefu-tip-name";
      name.textContent = row.name;
      var value = document.createElement("span");
      value.className = "kefu-tip-value";
      value.textContent = row.value;
      line.appendChild(dot);
      line.appendChild(name);
      line.appendChild(value);
      box.appendChild(line);
    });
    return box;
  }

  function base(data) {
    return {
      animation: false,
      color: PALETTE,
      textStyle: { fontFamily: FONT, color: INK },
      title: { text: data.title || "", left: 8, top: 4,
               textStyle: { fontSize: 14, fontWeight: 600, color: INK } },
      tooltip: { confine: true, borderColor: LINE, padding: [6, 10],
                 extraCssText: "box-shadow: 0 4px 12px rgba(31, 41, 51, 0.12);" }
    };
  }

  function emptyText(data) {
    return { type: "text", left: "center", top: "middle", silent: true,
             style: { text: data.empty || "", fill: MUTED, fontSize: 14, fontFamily: FONT } };
  }

  function pieOption(data, option, format) {
    var series = (data.series || [])[0] || { values: [] };
    var unit = series.unit || data.unit || "";
    var slices = items(series, data.x || []).filter(function (item) {
      return item.value !== null && item.value !== 0;
    });
    option.tooltip.trigger = "item";
    option.tooltip.formatter = function (p) {
      return tooltipNode(series.name || "", [{ color: p.color, name: p.name,
        value: format(p.value, unit) + " · " + format(p.percent, "%") }]);
    };
    option.series = [{ type: "pie", name: series.name || "", radius: ["34%", "60%"],
      center: ["50%", "55%"], cursor: "default", data: slices, avoidLabelOverlap: true,
      itemStyle: { borderColor: "#fff", borderWidth: 2 },
      label: { color: INK, lineHeight: 16,
               formatter: function (p) { return p.name + "\n" + Math.round(p.percent) + "%"; } },
      labelLine: { length: 8, length2: 8, lineStyle: { color: MUTED } } }];
    if (!slices.length) {
      option.graphic = [emptyText(data)];
    }
    return option;
  }

  function optionFor(data, kind, lang) {
    data = data || {};
    kind = KINDS[kind] ? kind : "bar";
    var format = formatter(lang);
    var option = base(data);
    if (kind === "pie") {
      return pieOption(data, option, format);
    }
    var labels = (data.x || []).map(String);
    var given = data.series || [];
    var units = [null, null];      /* per y axis: the unit of its first series */
    var seriesUnits = [];
    var series = given.map(function (s) {
      var type = s.kind === "line" || s.kind === "bar" ? s.kind
        : (kind === "line" ? "line" : "bar");
      var axis = s.axis === 1 ? 1 : 0;
      var unit = s.unit || data.unit || "";
      if (units[axis] === null) { units[axis] = unit; }
      seriesUnits.push(unit);
      var out = { type: type, name: s.name || "", yAxisIndex: axis, cursor: "default",
                  data: items(s, labels) };
      if (type === "line") {
        out.showSymbol = true;       /* a lone value between two gaps is still seen */
        out.symbolSize = 7;
        out.connectNulls = false;
        out.lineStyle = { width: 2 };
      } else {
        out.barMaxWidth = 36;
        if (kind === "stacked-bar") { out.stack = "total"; }
      }
      return out;
    });
    var dual = units[1] !== null;
    var yAxis = [0, 1].slice(0, dual ? 2 : 1).map(function (axis) {
      var y = { type: "value", position: axis ? "right" : "left", alignTicks: axis === 1,
                splitLine: { show: axis === 0, lineStyle: { color: LINE } },
                axisLabel: { color: MUTED,
                             formatter: function (v) { return format(v, units[axis]); } } };
      if (axis === 0 && isValue(data.y_max)) { y.max = data.y_max; }
      return y;
    });
    if (data.mark && isValue(data.mark.y) && series.length) {
      var first = series.filter(function (s) { return s.yAxisIndex === 0; })[0] || series[0];
      first.markLine = { silent: true, symbol: "none",
        lineStyle: { color: MARK, type: "dashed", width: 1.5 },
        label: { position: "insideEndTop", color: MARK, formatter: data.mark.name || "",
                 backgroundColor: "rgba(255, 255, 255, 0.85)", padding: [1, 4] },
        data: [{ yAxis: data.mark.y }] };
    }
    var legend = series.length > 1;
    option.legend = { show: legend, bottom: 4, type: "scroll", textStyle: { color: MUTED } };
    /* the grid's box holds the axis labels too (ECharts 6's form of containLabel) */
    option.grid = { left: 12, right: 12, top: 44, bottom: legend ? 34 : 8,
                    outerBoundsMode: "same", outerBoundsContain: "axisLabel" };
    option.xAxis = { type: "category", data: labels,
                     axisLine: { lineStyle: { color: LINE } }, axisTick: { show: false },
                     axisLabel: { color: MUTED, hideOverlap: true } };
    option.yAxis = yAxis;
    option.tooltip.trigger = "axis";
    option.tooltip.axisPointer = kind === "line"
      ? { type: "line", lineStyle: { color: MUTED, type: "dashed" } }
      : { type: "shadow", shadowStyle: { color: "rgba(78, 121, 167, 0.08)" } };
    option.tooltip.formatter = function (params) {
      params = [].concat(params);
      return tooltipNode(params.length ? params[0].name : "", params.map(function (p) {
        return { color: p.color, name: p.seriesName,
                 value: format(p.value, seriesUnits[p.seriesIndex]) };
      }));
    };
    option.series = series;
    var anyValue = series.some(function (s) {
      return s.data.some(function (item) { return item.value !== null; });
    });
    if (!anyValue) {
      option.graphic = [emptyText(data)];
    }
    return option;
  }

  /* --- drawing ------------------------------------------------------------------------- */
  var drawn = [];  /* {el, chart, observer} */

  function chartOf(el) {
    for (var i = 0; i < drawn.length; i++) {
      if (drawn[i].el === el) { return drawn[i].chart; }
    }
    return null;
  }

  function readIsland(el) {
    var island = document.getElementById(el.dataset.chart || "");
    if (!island) {
      console.warn("kefu chart: no data island #" + el.dataset.chart);
      return null;
    }
    try {
      return JSON.parse(island.textContent);
    } catch (err) {
      console.warn("kefu chart: #" + el.dataset.chart + " is not JSON: " + err.message);
      return null;
    }
  }

  function draw(el) {
    if (chartOf(el)) { return; }
    var data = readIsland(el);
    if (!data) { return; }
    var lang = language();
    el.setAttribute("role", "img");
    el.setAttribute("aria-label", data.title || "");
    var chart = window.echarts.init(el, null, { renderer: "canvas", locale: lang });
    chart.setOption(optionFor(data, el.dataset.kind, lang));
    chart.on("click", function (p) {
      if (p.data && isLink(p.data.link)) { window.location.assign(p.data.link); }
    });
    var observer = null;
    if (window.ResizeObserver) {
      observer = new ResizeObserver(function () { chart.resize(); });
      observer.observe(el);
    }
    drawn.push({ el: el, chart: chart, observer: observer });
  }

  function disposeDetached() {
    drawn = drawn.filter(function (entry) {
      if (document.documentElement.contains(entry.el)) { return true; }
      if (entry.observer) { entry.observer.disconnect(); }
      entry.chart.dispose();
      return false;
    });
  }

  function init(root) {
    root = root || document;
    if (!window.echarts) {
      console.warn("kefu chart: /static/vendor/echarts.min.js is not loaded");
      return;
    }
    if (root.matches && root.matches(".kefu-chart")) { draw(root); }
    Array.prototype.forEach.call(root.querySelectorAll(".kefu-chart"), draw);
  }

  /* After an htmx swap: dispose the charts that left the page, draw the new ones (the whole
   * document is searched: an outerHTML swap settles on new elements, not on its old target). */
  document.addEventListener("htmx:afterSettle", function () {
    disposeDetached();
    init(document);
  });

  window.KefuCharts = { optionFor: optionFor, init: init, chartOf: chartOf, language: language };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { init(document); });
  } else {
    init(document);
  }
})();
