// Patrol web GUI: one app's or service's page. It renders
// /api/?group=G&id=ID&history=true, refetched (throttled) on the entry's
// events, including pings so that what it shows stays current; it sends
// toggles; for apps it shows the log through /api/logs, following it live.
"use strict";

(function () {
  const P = window.Patrol;
  const root = document.getElementById("entry");
  const group = root.dataset.group;
  const id = root.dataset.id;
  const protectedEntry = root.dataset.secret === "true";
  const SECRET_KEY = "patrol-secret:" + group + "/" + id;
  const MAX_LINES = 5000;

  let shown = null; // the entry as rendered

  const secretInput = document.getElementById("secret");
  if (secretInput) {
    secretInput.value = P.getStored(SECRET_KEY);
    secretInput.addEventListener("change", function () {
      P.setStored(SECRET_KEY, secretInput.value);
    });
  }
  function secret() {
    return secretInput ? secretInput.value : "";
  }

  function dt(dl, term, value, cls) {
    dl.append(P.el("dt", { text: term }), P.el("dd", { class: cls, text: value === undefined || value === null || value === "" ? "-" : String(value) }));
  }

  function render(e) {
    shown = e;
    P.setText(document.getElementById("entry-name"), e.name || id);
    P.badge(e.state, e.reason, document.getElementById("entry-state"));
    const dl = document.getElementById("details");
    const frag = document.createDocumentFragment();
    const running = e.state === "running" || e.state === "stopping";
    dt(frag, "ID", id);
    dt(frag, "State", e.state, "detail-state");
    if (e.reason) dt(frag, "Why", e.reason);
    if (group === "app") dt(frag, "PID", e.pid, "detail-pid");
    dt(frag, "Instance", e["instance-id"]);
    dt(frag, "Started", e.started);
    dt(frag, "Uptime", running ? P.uptime(e.started) : "", "detail-uptime");
    dt(frag, "Last seen", e.lastseen);
    dt(frag, "Restarts", String(e.restarts || 0));
    dt(frag, "Last exit", P.lastExit(e.history));
    dt(frag, "Disabled", e.disabled ? "yes" : "no");
    dt(frag, "Disabled in the file", e["config-disabled"] ? "yes" : "no");
    dt(frag, "Run once", e["run-once"] ? "yes" : "no");
    dt(frag, "Override", e.override ? P.overrideText(e.override) + (e.override.since ? " (since " + e.override.since + ")" : "") : "none", "detail-override");
    if (e["backoff-until"]) dt(frag, "Next start", e["backoff-until"]);
    if (e.health) dt(frag, "Health", e.health + (e["ready-since"] ? " (since " + e["ready-since"] + ")" : ""), "detail-health");
    if (e.status) dt(frag, "Status (from the app)", e.status, "detail-status");
    if (e.probes) dt(frag, "Probes", P.probesText(e.probes), "detail-probes");
    if (e["watchdog-until"]) dt(frag, "Watchdog until", e["watchdog-until"]);
    if (e["health-failure"]) dt(frag, "Last health failure", e["health-failure"] + (e["health-failure-at"] ? " (" + e["health-failure-at"] + ")" : ""), "detail-health-failure");
    dt(frag, "Secret", e.secret ? "yes" : "no");
    dt(frag, "CAS", e.cas);
    dl.replaceChildren(frag);

    const kv = document.querySelector("#keyvalue tbody");
    const keys = Object.keys(e.keyvalue || {}).sort();
    kv.replaceChildren(...keys.map((k) => P.el("tr", {}, P.el("th", { scope: "row", text: k }), P.el("td", {}, P.el("code", { text: JSON.stringify(e.keyvalue[k]) })))));
    document.getElementById("keyvalue-empty").hidden = keys.length > 0;

    const hist = (e.history || []).slice().reverse();
    const hb = document.querySelector("#history tbody");
    hb.replaceChildren(...hist.map((h) => P.el("tr", {},
      P.el("td", { text: h.reason || "-" }),
      P.el("td", { class: "num", text: String(h["exit-code"] || 0) }),
      P.el("td", { text: h.started || "-" }),
      P.el("td", { text: h.stopped || "-" }),
      P.el("td", { class: "num", text: P.between(h.started, h.stopped) }),
      P.el("td", { class: "num", text: h.pid ? String(h.pid) : "-" }),
      P.el("td", {}, P.el("code", { text: (h["instance-id"] || "-").slice(0, 8) })),
      P.el("td", {}, P.el("code", { text: h["config-revision"] || "-" })),
    )));
    document.getElementById("history-empty").hidden = hist.length > 0;
    P.setText(document.getElementById("history-count"), "(" + hist.length + ")");
  }

  const refresh = P.throttle(async function () {
    const r = await P.request("GET", P.entryURL(group, id, "&history=true"));
    if (r.ok && r.json) {
      render(r.json);
    } else {
      P.conn(r.errors.join("; "), "bad");
    }
  }, 300);

  setInterval(function () {
    if (document.hidden || !shown) return;
    const u = document.querySelector(".detail-uptime");
    if (u && (shown.state === "running" || shown.state === "stopping")) P.setText(u, P.uptime(shown.started));
  }, 1000);

  // Toggles.
  document.getElementById("actions").addEventListener("submit", (e) => e.preventDefault());
  document.querySelector("#actions .buttons").addEventListener("click", async function (ev) {
    const b = ev.target.closest("button");
    if (!b) return;
    const action = b.dataset.clear ? { clear: true } : { toggle: Number(b.dataset.toggle) };
    const ttl = Number(document.getElementById("ttl").value) || 0;
    if (protectedEntry && !secret()) {
      P.message("This " + group + " is protected: enter its secret first.", "error");
      secretInput.focus();
      return;
    }
    if (secretInput) P.setStored(SECRET_KEY, secret());
    b.disabled = true;
    P.message(b.textContent + "…", "");
    try {
      const r = await P.toggle(group, id, shown, action, secret(), ttl);
      P.message(r.text, r.ok ? "ok" : "error");
      if (r.changed) refresh();
    } finally {
      b.disabled = false;
      refresh();
    }
  });

  P.events("?group=" + encodeURIComponent(group) + "&id=" + encodeURIComponent(id) + "&pings=1", refresh, refresh);
  refresh();

  // The log viewer (apps only).
  const logEl = document.getElementById("log");
  if (!logEl) return;
  const logForm = document.getElementById("log-form");
  const followBox = document.getElementById("log-follow");
  const status = document.getElementById("log-status");
  let lines = []; // complete lines shown, at most MAX_LINES
  let partial = ""; // an unfinished last line
  let dirty = false;
  let current = null; // the AbortController of the running request
  let generation = 0;

  function paint() {
    dirty = false;
    const atBottom = logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 4;
    logEl.textContent = lines.join("\n") + (lines.length ? "\n" : "") + partial;
    if (atBottom) logEl.scrollTop = logEl.scrollHeight;
  }

  function add(text) {
    const parts = (partial + text).split("\n");
    partial = parts.pop();
    for (const l of parts) lines.push(l);
    if (lines.length > MAX_LINES) lines = lines.slice(lines.length - MAX_LINES);
    if (partial.length > 1 << 20) {
      lines.push(partial);
      partial = "";
    }
    if (!dirty) {
      dirty = true;
      requestAnimationFrame(paint);
    }
  }

  async function load() {
    if (current) current.abort();
    const gen = ++generation;
    const ctl = new AbortController();
    current = ctl;
    lines = [];
    partial = "";
    paint();
    const follow = followBox.checked;
    const tail = Math.min(10000, Math.max(0, Number(document.getElementById("log-tail").value) || 0));
    let url = "/api/logs?id=" + encodeURIComponent(id) + "&stream=" + encodeURIComponent(document.getElementById("log-stream").value) + "&tail=" + tail;
    if (follow) url += "&follow=1";
    if (secret()) url += "&secret=" + encodeURIComponent(secret());
    P.setText(status, follow ? "following…" : "loading…");
    let res;
    try {
      res = await fetch(url, { signal: ctl.signal, cache: "no-store" });
    } catch (err) {
      if (gen === generation) P.setText(status, err.name === "AbortError" ? "stopped" : "failed: " + err.message);
      return;
    }
    if (!res.ok) {
      let msg = "HTTP " + res.status;
      try {
        msg = (await res.json()).errors.join("; ");
      } catch (err) { /* not the API's JSON */ }
      if (gen === generation) P.setText(status, msg);
      return;
    }
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        add(dec.decode(value, { stream: true }));
        if (follow && gen === generation) P.setText(status, "following (" + lines.length + " lines)");
      }
      add(dec.decode());
      if (gen === generation) P.setText(status, follow ? "the stream ended; retrying in 2 s" : lines.length + " lines");
      if (follow && gen === generation && followBox.checked) setTimeout(function () {
        if (gen === generation && followBox.checked) load();
      }, 2000);
    } catch (err) {
      if (gen === generation) P.setText(status, err.name === "AbortError" ? "stopped" : "failed: " + err.message);
    }
  }

  logForm.addEventListener("submit", function (e) {
    e.preventDefault();
    load();
  });
  followBox.addEventListener("change", load);
  document.getElementById("log-stream").addEventListener("change", load);
  window.addEventListener("pagehide", function () {
    if (current) current.abort();
  });
  load();
})();
