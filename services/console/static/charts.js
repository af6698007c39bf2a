// Draws every <div data-chart="bar|line|calendar" data-labels='[...]' data-values='[...]'
// data-title="..."> with ECharts (vendor/echarts.min.js, loaded before this file).
// A static file because the console's Content-Security-Policy allows no inline script; the
// figures come from the page's data-* attributes, rendered by the server.
(function () {
  "use strict";
  // data-series='[{"name": ..., "values": [...]}, ...]' draws several series (a value may
  // be null: no figure); data-unit is shown on the value axis. data-chart="calendar" with
  // data-range='["YYYY-MM-DD", "YYYY-MM-DD"]' and data-values='[["YYYY-MM-DD", n], ...]'
  // draws a calendar heat map of n per day.
  function calendar(el, chart) {
    var values = JSON.parse(el.dataset.values || "[]");
    var top = values.reduce(function (m, v) { return Math.max(m, v[1]); }, 1);
    chart.setOption({
      aria: { enabled: true },
      animation: false,
      tooltip: { formatter: function (p) { return p.value[0] + ": " + p.value[1] + " " + (el.dataset.unit || ""); } },
      visualMap: { min: 0, max: top, orient: "horizontal", left: "center", bottom: 0,
                   inRange: { color: ["#f3f2f1", "#d4351c"] } },
      calendar: { range: JSON.parse(el.dataset.range), cellSize: ["auto", 22], top: 40,
                  left: 40, right: 20, yearLabel: { show: false } },
      series: [{ type: "heatmap", coordinateSystem: "calendar", data: values,
                 name: el.dataset.title || "" }]
    });
  }
  function draw(el) {
    if (typeof echarts === "undefined" || el.dataset.drawn) { return; }
    var chart = echarts.init(el, null, { renderer: "svg" });
    el.dataset.drawn = "1";
    window.addEventListener("resize", function () { chart.resize(); });
    if (el.dataset.chart === "calendar") { calendar(el, chart); return; }
    var labels = JSON.parse(el.dataset.labels || "[]");
    var kind = el.dataset.chart === "line" ? "line" : "bar";
    var series = el.dataset.series ? JSON.parse(el.dataset.series)
      : [{ name: el.dataset.title || "", values: JSON.parse(el.dataset.values || "[]") }];
    var colours = ["#1d70b8", "#d4351c", "#00703c", "#f47738"];
    chart.setOption({
      aria: { enabled: true },
      animation: false,
      grid: { left: 60, right: 20, top: series.length > 1 ? 40 : 20, bottom: 40 },
      legend: { show: series.length > 1 },
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: labels },
      yAxis: { type: "value", name: el.dataset.unit || "" },
      series: series.map(function (s, i) {
        return { type: kind, name: s.name, data: s.values, connectNulls: false,
                 itemStyle: { color: colours[i % colours.length] } };
      })
    });
  }
  function drawAll(root) {
    (root || document).querySelectorAll("[data-chart]").forEach(draw);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { drawAll(); });
  } else {
    drawAll();
  }
  document.addEventListener("htmx:afterSwap", function (e) { drawAll(e.target); });
}());
