// Patrol web GUI: helpers shared by every page (window.Patrol).
// Plain JavaScript, no build step, no external code.
"use strict";

(function () {
  const P = {};
  window.Patrol = P;

  const TOKEN_KEY = "patrol-token";

  function storage() {
    try {
      return window.sessionStorage;
    } catch (e) {
      return null; // storage disabled: nothing is remembered
    }
  }

  P.getStored = function (key) {
    const s = storage();
    return (s && s.getItem(key)) || "";
  };

  P.setStored = function (key, value) {
    const s = storage();
    if (!s) return;
    if (value) s.setItem(key, value);
    else s.removeItem(key);
  };

  // el creates an element with attributes (class, text, and any other
  // attribute) and children.
  P.el = function (tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c !== null && c !== undefined) e.append(c);
    }
    return e;
  };

  // setText changes an element's text only when it differs, so that
  // unchanged cells cost no layout.
  P.setText = function (e, text) {
    text = text === undefined || text === null || text === "" ? "-" : String(text);
    if (e.textContent !== text) e.textContent = text;
  };

  // parseTime reads a timestamp in the daemon's json-timestamp layout
  // (RFC1123Z by default, RFC3339 often); NaN when the browser cannot.
  P.parseTime = function (s) {
    if (!s) return NaN;
    return Date.parse(s);
  };

  // duration formats milliseconds as "3d 4h", "2h 5m", "5m 12s" or "12s".
  P.duration = function (ms) {
    if (!isFinite(ms) || ms < 0) return "-";
    let s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400);
    s -= d * 86400;
    const h = Math.floor(s / 3600);
    s -= h * 3600;
    const m = Math.floor(s / 60);
    s -= m * 60;
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + m + "m";
    if (m > 0) return m + "m " + s + "s";
    return s + "s";
  };

  // uptime is the time since started, or "-".
  P.uptime = function (started, now) {
    const t = P.parseTime(started);
    if (isNaN(t)) return "-";
    return P.duration((now || Date.now()) - t);
  };

  // between is the duration from a to b, or "-".
  P.between = function (a, b) {
    const ta = P.parseTime(a);
    const tb = P.parseTime(b);
    if (isNaN(ta) || isNaN(tb)) return "-";
    return P.duration(tb - ta);
  };

  P.STATES = ["running", "starting", "stopping", "backoff", "stopped", "disabled", "waiting"];

  // healthBadge returns (or updates) an entry's health badge: shown when
  // the app is unready, or has checks (probes, sd_notify STATUS=) that
  // passed; its title is the last health failure.
  P.healthBadge = function (e, el) {
    el = el || P.el("span");
    const checked = e.probes || e.status;
    const h = e.health === "unready" || (e.health === "ready" && checked) ? e.health : "";
    el.className = h ? "badge health-" + h : "";
    P.setText(el, h); // "-" without a badge
    const why = e["health-failure"] ? "last failure: " + e["health-failure"] + (e["health-failure-at"] ? " (" + e["health-failure-at"] + ")" : "") : "";
    if (why) el.title = why;
    else el.removeAttribute("title");
    return el;
  };

  // probesText describes an entry's probes: "liveness ok (HTTP 200, 12:00:01)".
  P.probesText = function (probes) {
    return Object.keys(probes || {}).sort().map((k) => {
      const p = probes[k];
      return k + " " + (p.ok ? "passing" : "failing") + (p.message ? " (" + p.message + (p.at ? ", " + p.at : "") + ")" : "");
    }).join("; ");
  };

  // badge returns (or updates) a state badge.
  P.badge = function (state, reason, e) {
    e = e || P.el("span");
    const cls = "badge state-" + (P.STATES.includes(state) ? state : "unknown");
    if (e.className !== cls) e.className = cls;
    P.setText(e, state || "unknown");
    if (reason) e.title = reason;
    else e.removeAttribute("title");
    return e;
  };

  // lastExit describes an entry's last ended instance: "3 (crashed)".
  P.lastExit = function (history) {
    if (!history || history.length === 0) return "-";
    const h = history[history.length - 1];
    return String(h["exit-code"] || 0) + (h.reason ? " (" + h.reason + ")" : "");
  };

  // overrideText describes an API override: "disabled until …".
  P.overrideText = function (ov) {
    if (!ov) return "";
    const parts = [];
    if (ov.disabled !== undefined) parts.push(ov.disabled ? "disabled" : "enabled");
    if (ov["run-once"] !== undefined) parts.push(ov["run-once"] ? "run once" : "no run once");
    let t = parts.join(", ") || "override";
    if (ov.expires) t += " until " + ov.expires;
    return t;
  };

  // digest is what an operator sees of an entry: a toggle is sent only if
  // it still holds (see toggle).
  P.digest = function (e) {
    if (!e) return "";
    return JSON.stringify([
      e.state || "", e.pid || 0, e["instance-id"] || "", !!e.disabled, !!e["run-once"],
      !!e["config-disabled"], e.override || null,
    ]);
  };

  // conn shows the live connection's state in the header.
  P.conn = function (text, kind) {
    const c = document.getElementById("conn");
    if (!c) return;
    P.setText(c, text);
    c.className = "conn " + (kind || "");
  };

  // message shows the result of an action in the page's message area.
  P.message = function (text, kind) {
    const m = document.getElementById("message");
    if (!m) return;
    m.textContent = text || "";
    m.className = "message " + (kind || "");
    if (kind === "error") m.setAttribute("role", "alert");
    else m.setAttribute("role", "status");
  };

  // request sends one API request with the stored token and returns
  // {status, ok, json, text, errors}. A 401 opens the token box.
  P.request = async function (method, url, body, opts) {
    const headers = {};
    const token = P.getStored(TOKEN_KEY);
    if (token) headers["Authorization"] = "Bearer " + token;
    let payload;
    if (body !== undefined) {
      if (typeof body === "string") {
        payload = body;
        headers["Content-Type"] = "application/json";
      } else {
        payload = JSON.stringify(body);
        headers["Content-Type"] = "application/json";
      }
    }
    const out = { status: 0, ok: false, json: null, text: "", errors: [] };
    let res;
    try {
      res = await fetch(url, {
        method, headers, body: payload, credentials: "same-origin", cache: "no-store",
        signal: opts && opts.signal,
      });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      out.errors = ["Patrol did not answer (" + err.message + ")"];
      return out;
    }
    out.status = res.status;
    out.ok = res.ok;
    out.text = await res.text();
    if ((res.headers.get("Content-Type") || "").startsWith("application/json")) {
      try {
        out.json = JSON.parse(out.text);
      } catch (err) {
        out.json = null;
      }
    }
    if (!res.ok) {
      out.errors = (out.json && out.json.errors) || ["HTTP " + res.status + " " + out.text.slice(0, 200)];
      if (res.status === 401) P.showToken(true);
    }
    return out;
  };

  // getJSON fetches url and returns its JSON, or throws with the API's
  // errors.
  P.getJSON = async function (url) {
    const r = await P.request("GET", url);
    if (!r.ok || !r.json) throw new Error(r.errors.join("; ") || "HTTP " + r.status);
    return r.json;
  };

  P.entryURL = function (group, id, extra) {
    return "/api/?group=" + encodeURIComponent(group) + "&id=" + encodeURIComponent(id) + (extra || "");
  };

  // toggle changes an entry (action: {toggle: N} or {clear: true}) if it
  // still is as the page shows it (shown): it reads the entry afresh, and
  // if what an operator sees (state, pid, instance, disabled, run once,
  // override) has changed meanwhile it stops with a "changed meanwhile"
  // answer instead of acting on a stale page; otherwise it sends the
  // request with the CAS just read, so that a change in between makes the
  // API refuse it (cas-invalid), which is reported the same way. (The
  // page's own CAS is not enough: pings and other invisible updates move
  // it every few seconds.) It returns {ok, changed, text}.
  P.toggle = async function (group, id, shown, action, secret, ttl) {
    const label = group + " " + id;
    const cur = await P.request("GET", P.entryURL(group, id));
    if (!cur.ok || !cur.json) return { ok: false, text: label + ": " + cur.errors.join("; ") };
    if (shown && P.digest(cur.json) !== P.digest(shown)) {
      return { ok: false, changed: true, text: label + " changed meanwhile (it is " + (cur.json.state || "?") + " now): the page shows it again; check it and try again." };
    }
    const body = Object.assign({ id: id, group: group, cas: cur.json.cas }, action);
    if (secret) body.secret = secret;
    if (ttl > 0) body.ttl = ttl;
    const r = await P.request("POST", "/api/", body);
    if (r.status === 401) return { ok: false, text: "This Patrol needs its API token for changes: enter it above." };
    if (!r.ok || !r.json) return { ok: false, text: label + ": " + r.errors.join("; ") };
    if (r.json["cas-invalid"]) {
      if (r.json.secret && !secret) return { ok: false, text: label + " is protected: enter its secret." };
      return { ok: false, changed: true, text: label + " changed meanwhile: reload it and try again." };
    }
    return { ok: true, text: label + ": done." };
  };

  // Throttle runs fn at most once per gap milliseconds and never twice at
  // once; calls in between are coalesced into one later run.
  P.throttle = function (fn, gap) {
    let timer = null, running = false, again = false, last = 0;
    async function run() {
      timer = null;
      if (running) {
        again = true;
        return;
      }
      running = true;
      last = Date.now();
      try {
        await fn();
      } finally {
        running = false;
        if (again) {
          again = false;
          schedule();
        }
      }
    }
    function schedule() {
      if (running) {
        again = true;
        return;
      }
      if (timer !== null) return;
      timer = setTimeout(run, Math.max(0, last + gap - Date.now()));
    }
    return schedule;
  };

  // events follows GET /api/events (query: "?id=..." etc.): onEvent gets
  // each event, onOpen each (re)connection, after which the page reloads
  // what it shows since events may have been missed. EventSource retries
  // by itself; a stream that failed for good is reopened after 2 s.
  P.events = function (query, onEvent, onOpen) {
    let es = null;
    function connect() {
      let url = "/api/events" + (query || "");
      const token = P.getStored(TOKEN_KEY);
      if (token) url += (url.indexOf("?") < 0 ? "?" : "&") + "access_token=" + encodeURIComponent(token);
      es = new EventSource(url);
      es.onopen = function () {
        P.conn("live", "ok");
        onOpen();
      };
      es.onmessage = function (m) {
        let ev;
        try {
          ev = JSON.parse(m.data);
        } catch (err) {
          return;
        }
        onEvent(ev);
      };
      es.onerror = function () {
        P.conn("reconnecting…", "bad");
        if (es.readyState === EventSource.CLOSED) {
          setTimeout(connect, 2000);
        }
      };
    }
    P.conn("connecting…", "");
    connect();
    window.addEventListener("pagehide", function () {
      if (es) es.close();
    });
  };

  // The token box: shown on a 401 or from the footer's button.
  P.showToken = function (focus) {
    const box = document.getElementById("token-box");
    if (!box) return;
    box.hidden = false;
    if (focus) document.getElementById("token-input").focus();
  };

  document.addEventListener("DOMContentLoaded", function () {
    const form = document.getElementById("token-form");
    if (!form) return;
    const input = document.getElementById("token-input");
    input.value = P.getStored(TOKEN_KEY);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      P.setStored(TOKEN_KEY, input.value.trim());
      document.getElementById("token-box").hidden = true;
      P.message("Token saved for this tab; try the action again.", "ok");
    });
    document.getElementById("token-forget").addEventListener("click", function () {
      input.value = "";
      P.setStored(TOKEN_KEY, "");
    });
    document.getElementById("token-show").addEventListener("click", function () {
      P.showToken(true);
    });
  });
})();
