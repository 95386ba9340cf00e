// Draws every <canvas data-chart> from the JSON block beside it, with the vendored Chart.js.
// A series may carry "whiskers": [lows, highs] (an interval drawn on each bar or point)
// and "max" (the top of its axis).
(function () {
  "use strict";
  var palette = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2"];
  window.labelloopCharts = {};
  var whiskers = {
    id: "labelloopWhiskers",
    afterDatasetsDraw: function (chart) {
      var ctx = chart.ctx;
      chart.data.datasets.forEach(function (ds, i) {
        if (!ds.whiskers || !chart.isDatasetVisible(i)) { return; }
        var scale = chart.scales[ds.yAxisID || "y"];
        ctx.save();
        ctx.strokeStyle = "#1d232b";
        ctx.lineWidth = 1.5;
        chart.getDatasetMeta(i).data.forEach(function (el, j) {
          var lo = ds.whiskers[0][j], hi = ds.whiskers[1][j];
          if (lo === null || hi === null || lo === undefined || hi === undefined) { return; }
          var x = el.x, y0 = scale.getPixelForValue(lo), y1 = scale.getPixelForValue(hi);
          var cap = Math.min(6, (el.width || 12) / 4);
          ctx.beginPath();
          ctx.moveTo(x, y0); ctx.lineTo(x, y1);
          ctx.moveTo(x - cap, y0); ctx.lineTo(x + cap, y0);
          ctx.moveTo(x - cap, y1); ctx.lineTo(x + cap, y1);
          ctx.stroke();
        });
        ctx.restore();
      });
    }
  };
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
      datasets.push({ type: type, label: s.name, data: s.data, borderColor: color, backgroundColor: type === "bar" ? color : color, pointRadius: type === "line" ? 3 : 0, spanGaps: true, yAxisID: s.axis || "y", whiskers: s.whiskers || null });
      if ((s.axis || "y") === "y2") { scales.y2 = { position: "right", grid: { drawOnChartArea: false }, beginAtZero: true }; }
      if (s.whiskers) {  // room for the top of every interval
        var top = Math.max.apply(null, s.whiskers[1].filter(function (v) { return v !== null; }).concat([0]));
        scales[s.axis || "y"].suggestedMax = Math.max(scales[s.axis || "y"].suggestedMax || 0, top);
      }
      if (s.max !== undefined) { scales[s.axis || "y"].max = s.max; }
    });
    window.labelloopCharts[id] = new window.Chart(canvas, {
      type: spec.kind,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        plugins: { legend: { labels: { filter: function (item) { return item.text.indexOf("(CI ") < 0; } } } },
        scales: scales
      },
      plugins: [whiskers]
    });
  }
  function init() { document.querySelectorAll("canvas[data-chart]").forEach(draw); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
