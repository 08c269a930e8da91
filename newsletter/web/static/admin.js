// The admin area works without JavaScript; this only adds live figures.
(function () {
  "use strict";
  function fmt(n) { return typeof n === "number" ? n.toLocaleString("en") : n; }
  // Live progress of an edition: poll its JSON every 2 s while anything is left to send.
  var box = document.querySelector("[data-progress-url]");
  if (box) {
    var url = box.getAttribute("data-progress-url");
    var tick = function () {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (p) {
          if (!p) { return; }
          ["percent", "sent", "deferred", "bounced", "failed", "open", "rate_per_minute"].forEach(function (k) {
            var el = box.querySelector('[data-field="' + k + '"]');
            if (el) { el.textContent = fmt(p[k]); }
          });
          var eta = box.querySelector('[data-field="eta"]');
          if (eta) { eta.textContent = p.eta_seconds && p.status === "sending" ? p.eta_seconds + " s" : "—"; }
          var bar = box.querySelector("progress");
          if (bar) { bar.value = p.percent; }
          // A new status brings other buttons (resume, not pause): show the page anew.
          if (p.status !== box.getAttribute("data-status")) { window.location.reload(); return; }
          if (p.open > 0 || p.status === "starting" || p.status === "scheduled") { setTimeout(tick, 2000); }
        })
        .catch(function () { setTimeout(tick, 5000); });
    };
    setTimeout(tick, 1000);
  }
  // Live recipient count in the composer.
  var count = document.querySelector("[data-count-url]");
  var form = document.getElementById("composer");
  if (count && form) {
    var update = function () {
      var q = new URLSearchParams();
      form.querySelectorAll('input[name="topics"]:checked').forEach(function (c) { q.append("topics", c.value); });
      q.append("tier", form.querySelector('select[name="tier"]').value);
      fetch(count.getAttribute("data-count-url") + "?" + q.toString(), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (d) { if (d) { document.getElementById("recipient-count").textContent = fmt(d.count); } });
    };
    form.addEventListener("change", function (e) {
      if (e.target.name === "topics" || e.target.name === "tier") { update(); }
    });
  }
  // The scheduling form sends the browser's offset from UTC.
  document.querySelectorAll("[data-timezone-offset]").forEach(function (el) {
    el.value = String(new Date().getTimezoneOffset());
  });
})();
// Live progress of a reader import: poll its JSON every 2 s; reload once it has finished,
// for the report. Without JavaScript the page reloads itself (a <noscript> refresh).
(function () {
  "use strict";
  var box = document.querySelector("[data-import-progress-url]");
  if (!box || ["queued", "running"].indexOf(box.getAttribute("data-status")) < 0) { return; }
  var url = box.getAttribute("data-import-progress-url");
  var tick = function () {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (p) {
        if (!p) { setTimeout(tick, 5000); return; }
        ["done", "percent", "added", "updated", "unchanged", "skipped"].forEach(function (k) {
          var el = box.querySelector('[data-field="' + k + '"]');
          if (el) { el.textContent = p[k].toLocaleString("en"); }
        });
        var bar = box.querySelector("progress");
        if (bar) { bar.value = p.percent; }
        if (p.status !== "queued" && p.status !== "running") { window.location.reload(); return; }
        setTimeout(tick, 2000);
      })
      .catch(function () { setTimeout(tick, 5000); });
  };
  setTimeout(tick, 1000);
})();
