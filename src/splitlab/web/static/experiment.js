// Experiment and variant pages: confirmation dialogs, "hide passed" toggle, Plotly charts
// drawn from the page's embedded JSON, and the running page's results refresh.
(function () {
  "use strict";
  var GOOD = "#0072b2", BAD = "#d55e00", MUTED = "#5d6778";
  var PALETTE = ["#5d6778", "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00"];
  var CONFIG = { displayModeBar: false, responsive: true };

  function readJSON(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  // ---- dialogs: every action asks first ----
  document.querySelectorAll("button[data-dialog]").forEach(function (button) {
    button.addEventListener("click", function () {
      var dialog = document.getElementById(button.getAttribute("data-dialog"));
      if (dialog && dialog.showModal) { dialog.showModal(); }
    });
  });
  document.querySelectorAll("dialog [data-close]").forEach(function (button) {
    button.addEventListener("click", function () { button.closest("dialog").close(); });
  });

  // ---- traffic split: the running total (the server checks it again) ----
  document.querySelectorAll("fieldset.weights").forEach(function (set) {
    var inputs = set.querySelectorAll("input[data-weight]");
    var out = set.querySelector("[data-weight-total]");
    var total = function () {
      var sum = 0;
      inputs.forEach(function (input) { sum += Number(input.value) || 0; });
      var ok = Math.abs(sum - 100) < 1e-4;
      out.textContent = "Total " + (Math.round(sum * 100) / 100) + "%" + (ok ? "" : " — must be 100%");
      inputs.forEach(function (input) { input.setCustomValidity(ok ? "" : "The shares must sum to 100%"); });
    };
    inputs.forEach(function (input) { input.addEventListener("input", total); });
    total();
  });

  // ---- health: hide passed checks (kept in the URL) ----
  var toggle = document.getElementById("hide-passed");
  if (toggle) {
    var list = document.querySelector("#health .checklist");
    var apply = function () {
      if (list) { list.classList.toggle("hide-passed", toggle.checked); }
      var url = new URL(window.location.href);
      if (toggle.checked) { url.searchParams.set("hide_passed", "1"); } else { url.searchParams.delete("hide_passed"); }
      window.history.replaceState(null, "", url);
    };
    toggle.checked = new URL(window.location.href).searchParams.get("hide_passed") === "1";
    toggle.addEventListener("change", apply);
    apply();
  }

  function layout(extra) {
    var base = {
      margin: { l: 56, r: 16, t: 8, b: 40 }, height: 260, font: { size: 12 },
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      legend: { orientation: "h", y: -0.25 }, xaxis: { gridcolor: "#eef0f3" },
      yaxis: { gridcolor: "#eef0f3", zeroline: false }
    };
    return Object.assign(base, extra || {});
  }

  function finite(values) { return values.filter(function (v) { return v !== null && isFinite(v); }); }

  // ---- experiment page charts ----
  function drawSeries(data, index) {
    var s = data.timeseries.series[index];
    if (!s) { return; }
    var last = s.rel.length - 1;
    while (last > 0 && (s.low[last] === null || s.high[last] === null)) { last--; }
    var lo = s.low[last], hi = s.high[last];
    var range = null;
    if (lo !== null && hi !== null) {
      var half = Math.max((hi - lo) / 2, 1e-6);
      range = [Math.min(lo - 1.5 * half, 0) * 100, Math.max(hi + 1.5 * half, 0) * 100];
    }
    var pct = function (v) { return v === null ? null : v * 100; };
    Plotly.react("chart-effect", [
      { x: s.days, y: s.high.map(pct), mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false },
      { x: s.days, y: s.low.map(pct), mode: "lines", fill: "tonexty", fillcolor: "rgba(0,114,178,0.15)",
        line: { width: 0 }, name: "interval", hoverinfo: "skip" },
      { x: s.days, y: s.rel.map(pct), mode: "lines+markers", line: { color: GOOD, width: 2 }, name: "relative effect",
        hovertemplate: "%{x}: %{y:.2f}%<extra></extra>" }
    ], layout({
      yaxis: { ticksuffix: "%", range: range, gridcolor: "#eef0f3", zeroline: false },
      shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 0, y1: 0, line: { dash: "dash", color: MUTED, width: 1 } }]
    }), CONFIG);
    var bayes = data.engine === "bayesian";
    var values = bayes ? s.win : s.p;
    // p-values far below alpha (1e-57) stacked every fixed tick into one unreadable blob at the
    // top: draw them down to a floor, on decade ticks spread over the range actually shown
    var FLOOR = 1e-12, clipped = false;
    if (!bayes) {
      values = values.map(function (v) {
        if (v === null || v === undefined) { return null; }
        if (v < FLOOR) { clipped = true; return FLOOR; }
        return v;
      });
    }
    var positive = values.filter(function (v) { return v !== null && v > 0; });
    var lowExp = Math.floor(Math.log10(Math.min.apply(null, positive.concat([data.alpha || 0.05, 0.01]))));
    var every = Math.max(1, Math.ceil(-lowExp / 6));
    var tickvals = [], ticktext = [];
    var alphaExp = Math.log10(data.alpha || 0.05);
    for (var e = 0; e >= lowExp; e -= every) {
      if (e !== 0 && Math.abs(e - alphaExp) < 0.5 * every) { continue; }  // alpha's label there
      tickvals.push(Math.pow(10, e));
      ticktext.push(e === 0 ? "1" : (e >= -3 ? String(Math.pow(10, e).toFixed(-e)) : "1e" + e));
    }
    if (tickvals.indexOf(data.alpha) < 0 && data.alpha) { tickvals.push(data.alpha); ticktext.push(String(data.alpha)); }
    var shapes = bayes
      ? [0.95, 0.05].map(function (y) { return { type: "line", xref: "paper", x0: 0, x1: 1, y0: y, y1: y, line: { dash: "dash", color: BAD, width: 1 } }; })
      : [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: data.alpha, y1: data.alpha, line: { dash: "dash", color: BAD, width: 1 } }];
    Plotly.react("chart-p", [
      { x: s.days, y: values, mode: "lines+markers", line: { color: MUTED, width: 2 },
        name: bayes ? "chance to win" : (data.engine === "sequential" ? "always-valid p" : "p-value") }
    ], layout({
      yaxis: bayes ? { range: [0, 1], tickformat: ".0%", gridcolor: "#eef0f3" } : {
        type: "log", gridcolor: "#eef0f3", title: { text: "p (log scale)" },
        range: [lowExp - 0.3, 0.1], tickvals: tickvals, ticktext: ticktext
      },
      shapes: shapes,
      annotations: clipped ? [{ xref: "paper", yref: "paper", x: 1, y: 0.8, xanchor: "right",
        yanchor: "top", showarrow: false, font: { size: 11, color: MUTED },
        text: "p below 1e-12 drawn at 1e-12" }] : []
    }), CONFIG);
  }

  // ---- days since exposure (novelty): each treatment's effect by day, with its interval ----
  function rgba(hex, alpha) {
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  function drawNovelty(data, metric) {
    var node = document.getElementById("chart-novelty");
    if (!node || !data.novelty) { return; }
    var entry = null;
    data.novelty.metrics.forEach(function (m) { if (m.metric === metric) { entry = m; } });
    if (!entry && metric === undefined) { entry = data.novelty.metrics[0] || null; }
    var none = document.getElementById("novelty-none");
    document.querySelectorAll("#novelty .novelty-reading").forEach(function (block) {
      block.hidden = !entry || block.getAttribute("data-metric") !== entry.metric;
    });
    node.hidden = !entry;
    if (none) { none.hidden = !!entry; }
    var caption = document.getElementById("novelty-caption");
    if (caption) { caption.hidden = !entry; }
    if (!entry) { return; }
    var variants = Object.keys(data.exposures || {});
    var pct = function (v) { return v === null ? null : v * 100; };
    var traces = [], estimates = [], halves = [], days = 0;
    entry.series.forEach(function (s, t) {
      var at = variants.indexOf(s.variant);
      var colour = PALETTE[(at > 0 ? at : t + 1) % PALETTE.length];
      var tip = s.days.map(function (d, i) {
        var lo = s.low[i], hi = s.high[i];
        return (lo === null || hi === null) ? "no interval" :
          "[" + (lo * 100).toFixed(1) + "%, " + (hi * 100).toFixed(1) + "%], n = " +
          Math.round(s.control_n[i]).toLocaleString() + " / " + Math.round(s.treatment_n[i]).toLocaleString();
      });
      traces.push({ x: s.days, y: s.high.map(pct), mode: "lines", line: { width: 0 }, hoverinfo: "skip",
        showlegend: false, legendgroup: s.variant });
      traces.push({ x: s.days, y: s.low.map(pct), mode: "lines", fill: "tonexty", fillcolor: rgba(colour, 0.15),
        line: { width: 0 }, hoverinfo: "skip", showlegend: false, legendgroup: s.variant });
      traces.push({ x: s.days, y: s.rel.map(pct), mode: "lines+markers", name: s.variant, legendgroup: s.variant,
        line: { color: colour, width: 2 }, marker: { size: 6 }, customdata: tip,
        hovertemplate: s.variant + ", day %{x}: %{y:+.1f}% %{customdata}<extra></extra>" });
      s.rel.forEach(function (r, i) {
        if (r === null) { return; }
        estimates.push(r);
        if (s.low[i] !== null && s.high[i] !== null) { halves.push((s.high[i] - s.low[i]) / 2); }
      });
      days = Math.max(days, s.days.length ? s.days[s.days.length - 1] + 1 : 0);
    });
    // hold the axis near the estimates and the typical interval: the last days rest on few
    // units, and their wide intervals would flatten every other day
    var range = null;
    if (estimates.length) {
      halves.sort(function (a, b) { return a - b; });
      var typical = halves.length ? halves[Math.floor(0.75 * (halves.length - 1))] : 0;
      var lo = Math.min(0, Math.min.apply(null, estimates) - typical);
      var hi = Math.max(0, Math.max.apply(null, estimates) + typical);
      var pad = Math.max((hi - lo) * 0.08, 1e-4);
      range = [(lo - pad) * 100, (hi + pad) * 100];
    }
    Plotly.react(node, traces, layout({
      showlegend: entry.series.length > 1,
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
      xaxis: { title: { text: "days since first exposure" }, tickmode: "linear", tick0: 0,
        dtick: days > 14 ? 2 : 1, range: [-0.5, Math.max(days, 1) - 0.5], gridcolor: "#eef0f3", zeroline: false },
      yaxis: { ticksuffix: "%", range: range, gridcolor: "#eef0f3", zeroline: false },
      margin: { l: 56, r: 16, t: entry.series.length > 1 ? 32 : 8, b: 48 },
      shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 0, y1: 0, line: { dash: "dash", color: MUTED, width: 1 } }]
    }), CONFIG);
  }

  function drawExposures(target, exposures, only) {
    var node = document.getElementById(target);
    if (!node) { return; }
    var traces = Object.keys(exposures).filter(function (v) { return !only || only.indexOf(v) >= 0; })
      .map(function (variant, i) {
        var points = exposures[variant];
        return { type: "bar", name: variant, marker: { color: PALETTE[i % PALETTE.length] },
          x: points.map(function (p) { return p.day; }), y: points.map(function (p) { return p.units; }) };
      });
    if (!traces.length) { node.textContent = "No daily data."; return; }
    Plotly.react(node, traces, layout({ barmode: "group" }), CONFIG);
  }

  function drawPower(power) {
    var node = document.getElementById("chart-power");
    if (!node || !power.length) { return; }
    var traces = [];
    power.forEach(function (p, i) {
      if (!p.mdes.length) { return; }
      var x = p.mdes.map(function (m) { return m * 100; });
      traces.push({ x: x, y: p.power_now, mode: "lines", name: p.variant + " now", line: { color: PALETTE[(i + 1) % PALETTE.length] } });
      if (p.power_planned) {
        traces.push({ x: x, y: p.power_planned, mode: "lines", name: p.variant + " at planned sample",
          line: { color: PALETTE[(i + 1) % PALETTE.length], dash: "dot" } });
      }
    });
    if (!traces.length) { node.textContent = "Too few units for a power curve."; return; }
    Plotly.react(node, traces, layout({
      margin: { l: 56, r: 16, t: 48, b: 48 }, legend: { orientation: "h", y: 1.25 },
      xaxis: { ticksuffix: "%", title: { text: "relative MDE" }, gridcolor: "#eef0f3" },
      yaxis: { range: [0, 1], tickformat: ".0%", gridcolor: "#eef0f3" },
      shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: power[0].target_power, y1: power[0].target_power,
        line: { dash: "dash", color: MUTED, width: 1 } }]
    }), CONFIG);
  }

  function whenPlotly(fn) {
    if (window.Plotly) { fn(); return; }
    window.addEventListener("load", function () { if (window.Plotly) { fn(); } });
  }

  var data = readJSON("experiment-data");
  if (data) {
    whenPlotly(function () {
      var pick = document.getElementById("ts-pick");
      var metricAt = function (index) {
        var s = data.timeseries.series[index];
        return s ? s.metric : undefined;
      };
      if (pick) {
        drawSeries(data, 0);
        pick.addEventListener("change", function () {
          drawSeries(data, Number(pick.value));
          drawNovelty(data, metricAt(Number(pick.value)));
        });
      }
      drawNovelty(data, pick ? metricAt(0) : undefined);
      drawExposures("chart-exposures", data.exposures);
      drawPower(data.power);
    });
  }

  // ---- variant page ----
  var variant = readJSON("variant-data");
  if (variant) {
    whenPlotly(function () {
      drawExposures("chart-units", variant.exposures, [variant.control, variant.variant]);
      variant.histograms.forEach(function (h, i) {
        var node = document.getElementById("hist-" + i);
        if (!node) { return; }
        if (!h.edges.length) { node.textContent = "No units with a value."; return; }
        var mids = [];
        for (var k = 0; k + 1 < h.edges.length; k++) { mids.push((h.edges[k] + h.edges[k + 1]) / 2); }
        var arms = variant.variant === variant.control ? [variant.control] : [variant.control, variant.variant];
        var traces = arms.map(function (arm, j) {
          var total = h.n[arm] || 1;
          return { type: "bar", name: arm, x: mids, y: (h.counts[arm] || []).map(function (c) { return c / total; }),
            marker: { color: j === 0 ? "rgba(93,103,120,0.55)" : "rgba(0,114,178,0.7)" },
            hovertemplate: "%{x:.3g}: %{y:.1%}<extra>" + arm + "</extra>" };
        });
        Plotly.react(node, traces, layout({ barmode: "overlay", bargap: 0.05, yaxis: { tickformat: ".0%", gridcolor: "#eef0f3" } }), CONFIG);
      });
    });
  }

  // ---- running experiment: refresh the results without a reload ----
  var live = document.querySelector("#results[data-refresh]");
  if (live) {
    var seconds = Math.max(Number(live.getAttribute("data-refresh")) || 30, 5);
    var body = document.getElementById("results-body");
    var refresh = function () {
      var url = new URL(window.location.href);
      url.searchParams.set("fragment", "results");
      url.hash = "";
      fetch(url.toString(), { headers: { Accept: "text/html" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (html === null) { return; }
          var current = body.querySelector(".results-block");
          var holder = document.createElement("div");
          holder.innerHTML = html;
          var next = holder.querySelector(".results-block");
          if (next && (!current || current.getAttribute("data-snapshot") !== next.getAttribute("data-snapshot"))) {
            body.replaceChildren(next);
          }
        })
        .catch(function () { /* offline: keep the numbers shown */ });
    };
    window.setInterval(refresh, seconds * 1000);
  }
})();
