/* Intake wizard and calculator: enhancements only — every form works without this file.
   Live traffic-share total (step 2), a live sample-size preview (step 4), the power curve
   (step 5 and the calculator) and the calculator's recompute-as-you-type through
   GET /api/power, keeping the URL in step with the inputs. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  var fmt = new Intl.NumberFormat("en-US");
  function num(value) { return value === null || value === undefined ? "—" : fmt.format(value); }
  function pct(value, digits) { return value === null || value === undefined ? "—" : (value * 100).toFixed(digits) + "%"; }
  function debounce(fn, ms) {
    var timer = null;
    return function () { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }

  /* ---- power curve ---- */
  function drawCurve(element, sizing) {
    if (!element || !window.Plotly || !sizing || !sizing.curve || !sizing.curve.length) { return; }
    var xs = sizing.curve.map(function (p) { return p.mde * 100; });
    var ys = sizing.curve.map(function (p) { return p.power; });
    var target = sizing.inputs.power;
    var mde = sizing.inputs.mde * 100;
    window.Plotly.react(element, [
      { x: xs, y: ys, mode: "lines", name: "power", line: { color: "#0072b2", width: 3 },
        hovertemplate: "effect %{x:.2f}%<br>power %{y:.1%}<extra></extra>" },
      { x: [mde], y: [target], mode: "markers", name: "your MDE", marker: { color: "#e69f00", size: 11, line: { color: "#1d2330", width: 1 } },
        hovertemplate: "MDE %{x:.2f}% → power %{y:.0%}<extra></extra>" }
    ], {
      margin: { l: 55, r: 15, t: 10, b: 45 }, height: 300, showlegend: false,
      xaxis: { title: { text: "true relative effect (%)" }, zeroline: false, gridcolor: "#eef0f3" },
      yaxis: { title: { text: "power" }, range: [0, 1.02], tickformat: ".0%", gridcolor: "#eef0f3" },
      shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: target, y1: target, line: { dash: "dash", color: "#5d6778", width: 1.5 } }],
      font: { family: "system-ui, sans-serif", size: 12, color: "#1d2330" },
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)"
    }, { displayModeBar: false, responsive: true });
  }

  function initCurves() {
    var element = document.getElementById("power-curve");
    if (element && element.dataset.curve) {
      try { drawCurve(element, JSON.parse(element.dataset.curve)); } catch (e) { /* the table has the figures */ }
    }
  }

  /* ---- step 2: traffic shares add up ---- */
  function initWeights() {
    var total = document.getElementById("f-weights");
    var inputs = document.querySelectorAll(".weight-input");
    if (!total || !inputs.length) { return; }
    function update() {
      if (total.querySelector(".field-error")) { return; } // the server's message stays until fixed
      var sum = 0;
      inputs.forEach(function (input) { var v = parseFloat(input.value); if (!isNaN(v)) { sum += v; } });
      var off = Math.abs(sum - 100) > 1e-4;
      total.textContent = "Traffic shares add up to " + (Math.round(sum * 1000) / 1000) + "%" + (off ? " — they must add up to 100%" : " ✓");
      total.classList.toggle("off", off);
    }
    inputs.forEach(function (input) { input.addEventListener("input", update); });
    update();
  }

  /* ---- sample size through the API ---- */
  function fetchSizing(params) {
    return fetch("/api/power?" + params.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      });
  }

  function initPreview() {
    var preview = document.getElementById("sizing-preview");
    var form = preview && preview.closest("form");
    if (!form) { return; }
    function params() {
      var p = new URLSearchParams();
      p.set("kind", preview.dataset.kind);
      p.set("variants", preview.dataset.variants);
      p.set("coverage", preview.dataset.coverage || "1");
      ["baseline", "sd", "alpha", "power", "daily_units", "sidedness"].forEach(function (name) {
        var field = form.elements[name];
        if (field && field.value.trim()) { p.set(name, field.value.trim()); }
      });
      var mde = form.elements.mde && parseFloat(form.elements.mde.value);
      if (!isNaN(mde)) { p.set("mde", String(mde / 100)); }
      if (preview.dataset.kind === "proportion") { p.delete("sd"); }
      return p;
    }
    var update = debounce(function () {
      fetchSizing(params()).then(function (result) {
        if (!result.ok) {
          var details = (result.body.error && result.body.error.details) || [];
          preview.textContent = "Preview: " + (details.length ? details.map(function (d) { return (d.loc || []).join(".") + ": " + d.msg; }).join("; ") : "check the inputs");
          return;
        }
        var s = result.body;
        preview.textContent = "Preview: " + num(s.n_per_variant) + " units per variant, " + num(s.n_total) + " in all" +
          (s.days !== null ? ", about " + s.days + " days." : " (enter the daily traffic for the duration).");
      }).catch(function () { preview.textContent = ""; });
    }, 250);
    form.addEventListener("input", update);
    update();
  }

  /* ---- calculator ---- */
  function weeksTable(s) {
    if (!s.weeks.length) { return ""; }
    var target = s.inputs.power;
    var head = "<th scope=\"col\">Weeks</th><th scope=\"col\" class=\"num\">Units / variant</th>" +
      s.mde_columns.map(function (c) { return "<th scope=\"col\" class=\"num\">" + (c >= 0 ? "+" : "") + (c * 100).toPrecision(3).replace(/\.?0+$/, "") + "%</th>"; }).join("") +
      "<th scope=\"col\" class=\"num\">MDE at power " + target + "</th>";
    var rows = s.weeks.map(function (row) {
      var cells = row.power.map(function (p) {
        var enough = p !== null && p >= target;
        return "<td class=\"num" + (enough ? " enough" : "") + "\">" + (p === null ? "—" : Math.round(p * 100) + "%") + (enough ? "<span class=\"sr-only\"> (enough)</span>" : "") + "</td>";
      }).join("");
      return "<tr><th scope=\"row\">" + row.weeks + "</th><td class=\"num\">" + num(row.n_per_variant) + "</td>" + cells + "<td class=\"num\">" + pct(row.mde_at_power, 2) + "</td></tr>";
    }).join("");
    return "<div class=\"table-wrap\"><table class=\"list weeks-table\"><caption>Power after each number of weeks, by relative MDE (shaded: at least the target power " + target +
      ")</caption><thead><tr>" + head + "</tr></thead><tbody>" + rows + "</tbody></table></div>";
  }

  function initCalculator() {
    var form = document.getElementById("calc-form");
    var result = document.getElementById("calc-result");
    if (!form || !result) { return; }
    var sdField = form.querySelector(".sd-field");
    function kind() { var checked = form.querySelector("input[name=kind]:checked"); return checked ? checked.value : "proportion"; }
    function formQuery() {
      var p = new URLSearchParams(new FormData(form));
      if (kind() === "proportion") { p.delete("sd"); }
      return p;
    }
    function apiQuery() {
      var p = new URLSearchParams();
      formQuery().forEach(function (value, name) {
        value = value.trim();
        if (!value) { return; }
        if (name === "mde" || name === "coverage") {
          var v = parseFloat(value);
          value = isNaN(v) ? value : String(v / 100);
        }
        p.set(name, value);
      });
      return p;
    }
    function markErrors(details) {
      form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
      details.forEach(function (d) {
        var name = (d.loc || []).filter(function (part) { return part !== "query"; })[0];
        var el = name && form.elements[name];
        if (el && el.setAttribute) { el.setAttribute("aria-invalid", "true"); }
      });
    }
    function render(s) {
      var figures = { n_per_variant: num(s.n_per_variant), n_total: num(s.n_total), days: s.days === null ? "—" : String(s.days) };
      if (!result.querySelector("[data-out=n_per_variant]")) { window.location.search = formQuery().toString(); return; }
      Object.keys(figures).forEach(function (key) { result.querySelector("[data-out=" + key + "]").textContent = figures[key]; });
      var i = s.inputs;
      result.querySelector("[data-out=summary]").textContent = "To detect " + (i.mde >= 0 ? "+" : "") + (i.mde * 100).toFixed(2) + "% relative (" +
        Number(s.absolute_mde.toPrecision(4)) + " absolute) from " + Number(i.baseline.toPrecision(4)) + " with power " + i.power + " at α = " + i.alpha + ", " + i.sidedness + ". " + s.method + ".";
      result.querySelector("[data-out=weeks]").innerHTML = weeksTable(s);
      result.querySelector("[data-out=caption]").textContent = "Power over the true relative effect at " + num(s.n_per_variant) + " units per variant; dashed: target power.";
      drawCurve(document.getElementById("power-curve"), s);
    }
    var update = debounce(function () {
      if (sdField) { sdField.hidden = kind() === "proportion"; }
      history.replaceState(null, "", "/calculator?" + formQuery().toString());
      fetchSizing(apiQuery()).then(function (answer) {
        if (answer.ok) { markErrors([]); result.classList.remove("stale"); render(answer.body); return; }
        var details = (answer.body.error && answer.body.error.details) || [];
        markErrors(details);
        result.classList.add("stale");
      }).catch(function () { /* keep the last answer */ });
    }, 200);
    form.addEventListener("input", update);
    form.addEventListener("change", update);
  }

  function init() {
    initCurves();
    initWeights();
    initPreview();
    initCalculator();
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
