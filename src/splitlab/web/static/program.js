// The program views: draw the Plotly figures the server embedded, and keep the URL short
// when the filters are applied (defaults and empty fields are left out, so a shared link
// reads like the one in the address bar). Filters apply on "Apply", never on a select's
// change, so keyboard users are not thrown to a new page at every arrow key.
(function () {
  "use strict";

  var DEFAULTS = { range: "all", period: "quarter", benefit: "lift" };

  function draw() {
    var source = document.getElementById("program-figures");
    if (!source || !window.Plotly) return;
    var figures = JSON.parse(source.textContent);
    document.querySelectorAll("[data-figure]").forEach(function (node) {
      var figure = figures[node.getAttribute("data-figure")];
      if (!figure || !figure.data || !figure.data.length) return;
      window.Plotly.newPlot(node, figure.data, figure.layout, {
        responsive: true,
        displaylogo: false,
        modeBarButtonsToRemove: ["lasso2d", "select2d"],
      });
    });
  }

  function tidyForm() {
    var form = document.getElementById("program-filters");
    if (!form) return;
    form.addEventListener("submit", function () {
      form.querySelectorAll("select, input").forEach(function (field) {
        if (!field.name) return;
        if (field.value === "" || DEFAULTS[field.name] === field.value) field.disabled = true;
      });
    });
  }

  function start() { draw(); tidyForm(); }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
