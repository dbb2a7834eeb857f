// Patrol web GUI: the dashboard. The server renders it in full; this
// script keeps it live: when /api/events says something happened it
// refetches the page's live part (the same template, ?fragment=live), at
// most about three times a second however many events arrive, one request
// at a time, and swaps in only the rows that changed. Uptimes tick without
// requests. The row buttons are forms that work without it; with it they
// are sent with fetch, so the page stays where it is.
"use strict";

(function () {
  const P = window.Patrol;
  const refresh = P.refresher(300);

  setInterval(P.tick, 1000);
  // Usage (the sparklines) moves without events: refresh now and then
  // while the page is seen.
  setInterval(function () {
    if (!document.hidden) refresh();
  }, 5000);

  document.getElementById("main").addEventListener("submit", async function (ev) {
    const form = ev.target.closest("form.row-form");
    if (!form) return;
    ev.preventDefault();
    const b = ev.submitter;
    // The form's data is read before the button is disabled (a disabled
    // button's value is not sent).
    const sent = P.submit(form, b);
    if (b) {
      b.disabled = true;
      P.message(b.textContent + " " + (b.closest("tr") ? b.closest("tr").dataset.id : "") + "…", "");
    }
    try {
      await sent;
    } finally {
      if (b) b.disabled = false;
      refresh();
    }
  });

  P.events("", refresh, refresh);
})();
