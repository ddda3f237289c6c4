// Experiment page of a factorial experiment: the interaction plot (cell means of the primary
// metric, first factor on the x-axis, one line per level of the second), drawn with Plotly.
(function () {
  "use strict";
  var node = document.getElementById("interaction-data");
  var target = document.getElementById("chart-interaction");
  if (!node || !target) { return; }
  var data = JSON.parse(node.textContent);
  var COLOURS = ["#5d6778", "#0072b2"];  // low level muted, high level blue (colour-blind safe)
  var DASHES = ["dash", "solid"];
  function draw() {
    if (!window.Plotly) { return; }
    var traces = data.lines.map(function (line, i) {
      return {
        x: data.x, y: line.y, name: line.name, mode: "lines+markers",
        line: { color: COLOURS[i], width: 2, dash: DASHES[i] }, marker: { size: 8 },
        hovertemplate: data.x_factor + " = %{x}: %{y:.4g}<extra>" + line.name + "</extra>"
      };
    });
    window.Plotly.react(target, traces, {
      margin: { l: 56, r: 16, t: 8, b: 40 }, height: 260, font: { size: 12 },
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      legend: { orientation: "h", y: -0.25 },
      xaxis: { title: { text: data.x_factor }, type: "category", gridcolor: "#eef0f3" },
      yaxis: { title: { text: data.metric }, gridcolor: "#eef0f3", zeroline: false }
    }, { displayModeBar: false, responsive: true });
  }
  if (window.Plotly) { draw(); } else { window.addEventListener("load", draw); }
}());
