// Draws every <canvas data-chart> from the JSON block beside it, with the vendored Chart.js.
(function () {
  "use strict";
  var palette = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2"];
  window.labelloopCharts = {};
  function draw(canvas) {
    var id = canvas.getAttribute("data-chart");
    var spec = JSON.parse(document.getElementById("chart-data-" + id).textContent);
    var datasets = [];
    var scales = { x: { ticks: { autoSkip: true, maxRotation: 45 } }, y: { beginAtZero: spec.kind === "bar" } };
    spec.series.forEach(function (s, i) {
      var color = palette[i % palette.length];
      var type = s.type || spec.kind;
      if (s.band) {
        datasets.push({ type: "line", label: s.name + " (CI low)", data: s.band[0], borderWidth: 0, pointRadius: 0, fill: false, yAxisID: s.axis || "y" });
        datasets.push({ type: "line", label: s.name + " (CI high)", data: s.band[1], borderWidth: 0, pointRadius: 0, backgroundColor: "rgba(76,120,168,0.18)", fill: "-1", yAxisID: s.axis || "y" });
      }
      datasets.push({ type: type, label: s.name, data: s.data, borderColor: color, backgroundColor: type === "bar" ? color : color, pointRadius: type === "line" ? 3 : 0, spanGaps: true, yAxisID: s.axis || "y" });
      if ((s.axis || "y") === "y2") { scales.y2 = { position: "right", grid: { drawOnChartArea: false }, beginAtZero: true }; }
    });
    window.labelloopCharts[id] = new window.Chart(canvas, {
      type: spec.kind,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { legend: { labels: { filter: function (item) { return item.text.indexOf("(CI ") < 0; } } } },
        scales: scales
      }
    });
  }
  function init() { document.querySelectorAll("canvas[data-chart]").forEach(draw); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
