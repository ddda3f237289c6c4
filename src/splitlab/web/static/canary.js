// Canary monitor: the confirmation dialog and the live stream (server-sent events). Each
// "state" event carries the server-rendered live section, swapped in without a reload.
(function () {
  "use strict";
  document.querySelectorAll("button[data-dialog]").forEach(function (button) {
    button.addEventListener("click", function () {
      var dialog = document.getElementById(button.getAttribute("data-dialog"));
      if (dialog && dialog.showModal) { dialog.showModal(); }
    });
  });
  document.querySelectorAll("dialog [data-close]").forEach(function (button) {
    button.addEventListener("click", function () { button.closest("dialog").close(); });
  });

  var live = document.getElementById("canary-live");
  var status = document.getElementById("live-status");
  var text = document.getElementById("live-text");
  if (!live || !window.EventSource) {
    if (text) { text.textContent = "Live updates unavailable in this browser: reload to refresh."; }
    return;
  }
  var updates = 0;
  function stamp(iso, what) {
    var at = new Date(iso);
    text.textContent = "Live: " + what + " at " + at.toLocaleTimeString() +
      (updates ? " · " + updates + " update" + (updates === 1 ? "" : "s") + " received" : "");
    status.classList.remove("stale");
    status.setAttribute("data-updates", String(updates));
  }
  var source = new EventSource(live.getAttribute("data-events"));
  source.addEventListener("state", function (event) {
    var data = JSON.parse(event.data);
    live.innerHTML = data.html;
    updates += 1;
    var button = document.getElementById("rollback-button");
    if (button) { button.disabled = !data.state.can_roll_back; }
    stamp(data.checked_at, "updated");
  });
  source.addEventListener("ping", function (event) {
    stamp(JSON.parse(event.data).checked_at, "checked");
  });
  source.addEventListener("gone", function () {
    text.textContent = "This experiment is gone.";
    source.close();
  });
  source.onerror = function () {
    status.classList.add("stale");
    text.textContent = "Live: connection lost, retrying…";
  };
})();
