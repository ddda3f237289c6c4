// The fleet view: draw the Plotly figures the server embedded, and keep the URL short when
// the filters are applied (empty fields are left out). Filters apply on "Apply", never on a
// select's change: arrow keys change a closed select, and keyboard users would be thrown
// to a new page at every step.
(function () {
  "use strict";

  function draw() {
    var source = document.getElementById("fleet-figures");
    if (!source || !window.Plotly) return;
    var figures = JSON.parse(source.textContent);
    document.querySelectorAll("[data-figure]").forEach(function (node) {
      var figure = figures[node.getAttribute("data-figure")];
      if (!figure) return;
      window.Plotly.newPlot(node, figure.data, figure.layout, {
        responsive: true,
        displaylogo: false,
        modeBarButtonsToRemove: ["lasso2d", "select2d"],
      });
    });
  }

  function tidyForm() {
    var form = document.getElementById("fleet-filters");
    if (!form) return;
    form.addEventListener("submit", function () {
      form.querySelectorAll("select, input").forEach(function (field) {
        if (field.name && field.value === "") field.disabled = true;
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { draw(); tidyForm(); });
  } else {
    draw();
    tidyForm();
  }
})();
