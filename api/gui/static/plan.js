// Patrol web GUI: the plan page. The server renders both plans with the
// CLI's own rendering (schema.Plan.Text), so the page and `patrol plan`
// cannot disagree; the preview is a form that works without this script.
// It keeps the pending plan live: refetched (the page's live part) when
// events arrive, and remembers the previewed config in this tab.
"use strict";

(function () {
  const P = window.Patrol;
  const refresh = P.refresher(1000);
  const text = document.getElementById("config-text");
  if (text && !text.value) text.value = P.getStored("patrol-plan-config");
  const form = document.getElementById("preview-form");
  if (form) {
    form.addEventListener("submit", function () {
      P.setStored("patrol-plan-config", text.value.length < 1 << 20 ? text.value : "");
    });
  }
  P.events("", refresh, refresh);
})();
