// greenrights workbench: charts from data attributes (no inline script, so the CSP can forbid it).
// <canvas data-chart='{"type":"bar","data":{...},"options":{...}}'> becomes a Chart.js chart; a chart of
// "type":"candlestick" is drawn as floating bars (low-high wick, open-close body) with a volume bar underneath.
(function () {
  "use strict";
  function candlestick(spec) {
    // Prices arrive as the API's exact decimal strings ("51.00"); numbers only for drawing.
    var bars = (spec.bars || []).map(function (b) {
      return { day: b.day, open: Number(b.open), high: Number(b.high), low: Number(b.low), close: Number(b.close),
               volume: Number(b.volume) };
    });
    var labels = bars.map(function (b) { return b.day; });
    var up = "#1f7a4d", down = "#b3261e";
    var colours = bars.map(function (b) { return b.close >= b.open ? up : down; });
    return {
      type: "bar",
      data: {
        labels: labels,
        datasets: [
          { label: spec.wickLabel || "high-low", data: bars.map(function (b) { return [b.low, b.high]; }),
            backgroundColor: colours, barPercentage: 0.05, grouped: false, yAxisID: "price", order: 2, minBarLength: 2 },
          { label: spec.bodyLabel || "open-close", data: bars.map(function (b) { return [Math.min(b.open, b.close), Math.max(b.open, b.close) || b.close]; }),
            backgroundColor: colours, barPercentage: 0.7, grouped: false, yAxisID: "price", order: 1, minBarLength: 2 },
          { label: spec.volumeLabel || "volume", data: bars.map(function (b) { return b.volume; }),
            backgroundColor: "rgba(90,110,100,0.35)", yAxisID: "volume", order: 3 }
        ]
      },
      options: {
        maintainAspectRatio: false, animation: false,
        plugins: { legend: { display: false } },
        // Stacked axes are laid out bottom-up in the order given: volume below, prices above (3/4 of the height).
        scales: {
          volume: { position: "left", stack: "k", stackWeight: 1, beginAtZero: true, title: { display: true, text: spec.volumeTitle || "" } },
          price: { position: "left", stack: "k", stackWeight: 3, beginAtZero: false, grace: "5%", offset: true, title: { display: true, text: spec.priceTitle || "" } }
        }
      }
    };
  }
  function draw(root) {
    if (typeof Chart === "undefined") { return; }
    (root || document).querySelectorAll("canvas[data-chart]").forEach(function (el) {
      if (el.dataset.drawn) { return; }
      var spec = JSON.parse(el.dataset.chart);
      var config = spec.type === "candlestick" ? candlestick(spec) : spec;
      config.options = Object.assign({ maintainAspectRatio: false, animation: false }, config.options || {});
      new Chart(el, config);
      el.dataset.drawn = "1";
    });
  }
  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSwap", function (e) { draw(e.target); });
})();
