// Draws every <div data-chart="bar|line" data-labels='[...]' data-values='[...]'
// data-title="..."> with ECharts (vendor/echarts.min.js, loaded before this file).
// A static file because the console's Content-Security-Policy allows no inline script; the
// figures come from the page's data-* attributes, rendered by the server.
(function () {
  "use strict";
  function draw(el) {
    if (typeof echarts === "undefined" || el.dataset.drawn) { return; }
    var labels = JSON.parse(el.dataset.labels || "[]");
    var values = JSON.parse(el.dataset.values || "[]");
    var kind = el.dataset.chart === "line" ? "line" : "bar";
    var chart = echarts.init(el, null, { renderer: "svg" });
    chart.setOption({
      aria: { enabled: true },
      animation: false,
      grid: { left: 60, right: 20, top: 20, bottom: 40 },
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: labels },
      yAxis: { type: "value" },
      series: [{ type: kind, name: el.dataset.title || "", data: values,
                 itemStyle: { color: "#1d70b8" } }]
    });
    el.dataset.drawn = "1";
    window.addEventListener("resize", function () { chart.resize(); });
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
