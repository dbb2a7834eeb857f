// Patrol web GUI: the plan page. Both plans come from /api/plan?format=text,
// the CLI's own rendering (schema.Plan.Text), so the page and `patrol plan`
// cannot disagree. The pending plan is refreshed when events arrive.
"use strict";

(function () {
  const P = window.Patrol;
  const current = document.getElementById("plan-current");
  const currentStatus = document.getElementById("plan-current-status");

  const refresh = P.throttle(async function () {
    const r = await P.request("GET", "/api/plan?format=text");
    if (r.ok) {
      P.setText(current, r.text);
      P.setText(currentStatus, "as of " + new Date().toLocaleTimeString());
    } else {
      P.setText(currentStatus, r.errors.join("; "));
    }
  }, 1000);

  document.getElementById("plan-refresh").addEventListener("click", refresh);

  const form = document.getElementById("preview-form");
  const text = document.getElementById("config-text");
  const out = document.getElementById("plan-preview");
  const errs = document.getElementById("preview-errors");
  const status = document.getElementById("preview-status");
  text.value = P.getStored("patrol-plan-config");

  form.addEventListener("submit", async function (e) {
    e.preventDefault();
    P.setStored("patrol-plan-config", text.value.length < 1 << 20 ? text.value : "");
    P.setText(status, "planning…");
    const r = await P.request("POST", "/api/plan?format=text", text.value);
    if (r.ok) {
      errs.hidden = true;
      errs.replaceChildren();
      out.hidden = false;
      P.setText(out, r.text);
      P.setText(status, "nothing was applied");
    } else {
      out.hidden = true;
      errs.replaceChildren(...r.errors.map((m) => P.el("li", { text: m })));
      errs.hidden = false;
      P.setText(status, "the config is invalid (" + r.errors.length + (r.errors.length === 1 ? " problem)" : " problems)"));
    }
  });

  P.events("", refresh, refresh);
  refresh();
})();
