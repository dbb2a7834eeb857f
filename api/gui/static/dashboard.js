// Patrol web GUI: the dashboard. It renders /gui/status (the status with
// each entry's last history entry) and refetches it when /api/events says
// something happened: at most about three times a second however many
// events arrive, one request at a time, touching only the rows whose
// content changed.
"use strict";

(function () {
  const P = window.Patrol;
  const GAP = 300; // ms between two status fetches at most

  // rows maps "group/id" to {tr, cells, entry, sig}.
  const rows = new Map();
  let summaryText = "";
  let patrolStarted = "";

  const tables = {
    app: document.querySelector("#apps tbody"),
    service: document.querySelector("#services tbody"),
  };

  const LABELS = {
    id: "ID", name: "Name", state: "State", health: "Health", pid: "PID", uptime: "Uptime", restarts: "Restarts",
    exit: "Last exit", override: "Override", actions: "Actions",
  };

  function makeRow(group, id) {
    const c = {
      id: P.el("td", { class: "id" }, P.el("a", { href: "/" + group + "/" + encodeURIComponent(id), text: id })),
      name: P.el("td", { class: "name" }),
      state: P.el("td", { class: "state" }, P.el("span", { class: "badge" })),
      health: P.el("td", { class: "health" }, P.el("span")),
      pid: P.el("td", { class: "num pid" }),
      uptime: P.el("td", { class: "num uptime" }),
      restarts: P.el("td", { class: "num restarts" }),
      exit: P.el("td", { class: "exit" }),
      override: P.el("td", { class: "override" }),
      actions: P.el("td", { class: "actions" }),
    };
    const tr = P.el("tr", { "data-key": group + "/" + id, "data-group": group, "data-id": id });
    for (const k of Object.keys(c)) {
      c[k].dataset.label = LABELS[k]; // the phone layout shows it
      tr.append(c[k]);
    }
    return { tr, cells: c, entry: null, sig: "" };
  }

  function fillActions(row, group, id, e) {
    const td = row.cells.actions;
    td.textContent = "";
    if (e.secret) {
      td.append(P.el("a", { href: "/" + group + "/" + encodeURIComponent(id), class: "button-link", text: "Open (secret)", "aria-label": "Open " + id + " to change it with its secret" }));
      return;
    }
    const disabled = e.state === "disabled";
    td.append(P.el("span", { class: "row-buttons" },
      P.el("button", { type: "button", "data-act": disabled ? "1" : "2", "aria-label": (disabled ? "Enable " : "Disable ") + id, text: disabled ? "Enable" : "Disable" }),
      P.el("button", { type: "button", "data-act": "3", "aria-label": "Restart " + id, text: "Restart" }),
    ));
  }

  function fillRow(row, group, id, e) {
    const sig = JSON.stringify(e);
    if (sig === row.sig) return;
    row.sig = sig;
    const old = row.entry;
    row.entry = e;
    const c = row.cells;
    P.setText(c.name, e.name || id);
    P.badge(e.state, e.reason || (e["backoff-until"] ? "next start " + e["backoff-until"] : ""), c.state.firstChild);
    P.healthBadge(e, c.health.firstChild);
    P.setText(c.pid, e.pid || "");
    P.setText(c.uptime, e.state === "running" || e.state === "stopping" ? P.uptime(e.started) : "");
    P.setText(c.restarts, String(e.restarts || 0));
    P.setText(c.exit, P.lastExit(e.history));
    c.override.textContent = "";
    if (e.override) {
      c.override.append(P.el("span", { class: "badge override", title: e.override.since ? "since " + e.override.since : null, text: P.overrideText(e.override) }));
    } else {
      c.override.textContent = "-";
    }
    if (!old || old.state !== e.state || !!old.secret !== !!e.secret) fillActions(row, group, id, e);
    row.tr.className = "state-row-" + (e.state || "unknown");
  }

  function renderGroup(group, entries) {
    const tbody = tables[group];
    const ids = Object.keys(entries || {}).sort();
    const keep = new Set();
    let orderChanged = false;
    let i = 0;
    for (const id of ids) {
      const key = group + "/" + id;
      keep.add(key);
      let row = rows.get(key);
      if (!row) {
        row = makeRow(group, id);
        rows.set(key, row);
        orderChanged = true;
      }
      fillRow(row, group, id, entries[id]);
      if (!orderChanged && tbody.children[i] !== row.tr) orderChanged = true;
      i++;
    }
    for (const [key, row] of rows) {
      if (key.startsWith(group + "/") && !keep.has(key)) {
        row.tr.remove();
        rows.delete(key);
        orderChanged = true;
      }
    }
    if (orderChanged) {
      const frag = document.createDocumentFragment();
      for (const id of ids) frag.append(rows.get(group + "/" + id).tr);
      tbody.append(frag);
    }
    const plural = group === "app" ? "apps" : "services";
    document.getElementById(plural + "-empty").hidden = ids.length > 0;
    tbody.closest(".table-wrap").hidden = ids.length === 0;
    P.setText(document.getElementById(plural + "-count"), "(" + ids.length + ")");
    return ids.map((id) => entries[id]);
  }

  function renderConfig(cfg) {
    cfg = cfg || {};
    P.setText(document.getElementById("config-path"), cfg.path);
    P.setText(document.getElementById("config-revision"), cfg.revision);
    const src = cfg.source;
    document.getElementById("config-source").hidden = !src;
    if (src) {
      P.setText(document.getElementById("config-source-text"), "etcd " + (src.endpoints || []).join(", ") +
        ", revision " + src.revision + (src.connected ? ", connected" : ", disconnected since " + src["disconnected-since"]));
      document.getElementById("config-source").className = src.connected ? "" : "alert";
    }
    P.setText(document.getElementById("config-loaded"), cfg.loaded);
    const box = document.getElementById("config-error");
    box.hidden = !cfg.error;
    document.getElementById("config").classList.toggle("has-error", !!cfg.error);
    if (cfg.error) {
      P.setText(document.getElementById("config-error-text"), cfg.error.split("; ").join("\n"));
      P.setText(document.getElementById("config-error-since"), cfg["error-since"]);
    }
  }

  function render(st) {
    patrolStarted = st.started || "";
    P.setText(document.getElementById("patrol-line"), "Patrol up " + P.uptime(patrolStarted) + " (since " + (patrolStarted || "-") + "), instance " + (st["instance-id"] || "-"));
    document.getElementById("shutdown").hidden = !st.shutdown;
    renderConfig(st.config);
    const all = renderGroup("app", st.apps).concat(renderGroup("service", st.service));
    const counts = {};
    for (const e of all) counts[e.state || "unknown"] = (counts[e.state || "unknown"] || 0) + 1;
    const parts = P.STATES.concat(["unknown"]).filter((s) => counts[s]).map((s) => counts[s] + " " + s);
    const text = all.length + " entries" + (parts.length ? ": " + parts.join(", ") : "");
    if (text !== summaryText) {
      summaryText = text;
      document.getElementById("summary").textContent = text;
    }
    document.body.dataset.rendered = String(all.length);
  }

  const refresh = P.throttle(async function () {
    try {
      render(await P.getJSON("/gui/status"));
    } catch (err) {
      P.conn("status failed: " + err.message, "bad");
    }
  }, GAP);

  // Uptimes tick without any request.
  setInterval(function () {
    if (document.hidden) return;
    const now = Date.now();
    for (const row of rows.values()) {
      const e = row.entry;
      if (e && (e.state === "running" || e.state === "stopping")) P.setText(row.cells.uptime, P.uptime(e.started, now));
    }
    if (patrolStarted) {
      const line = document.getElementById("patrol-line");
      line.textContent = line.textContent.replace(/^Patrol up [^(]*\(/, "Patrol up " + P.uptime(patrolStarted, now) + " (");
    }
  }, 1000);

  // The row buttons (event delegation: one listener for every row).
  for (const tbody of Object.values(tables)) {
    tbody.addEventListener("click", async function (ev) {
      const b = ev.target.closest("button[data-act]");
      if (!b) return;
      const tr = b.closest("tr");
      const row = rows.get(tr.dataset.key);
      if (!row) return;
      b.disabled = true;
      P.message(b.textContent + " " + tr.dataset.id + "…", "");
      try {
        const r = await P.toggle(tr.dataset.group, tr.dataset.id, row.entry, { toggle: Number(b.dataset.act) });
        P.message(r.text, r.ok ? "ok" : "error");
      } finally {
        b.disabled = false;
        refresh();
      }
    });
  }

  P.events("", refresh, refresh);
  refresh();
})();
