"use strict";
// The operator's console, beside the user's dashboard (app.js) in the same page. Plain
// JavaScript, no build step. Shown only when the signed-in credential is an operator's: the
// page asks GET /dashboard/session first: a user's page calls no /ops route and sees nothing of it.
// Every value reaches the page through textContent, never as HTML.
(() => {
  const TOKEN_KEY = "taskstatus.token";
  const REFRESH_MS = 5000;        // while no WebSocket tells of changes
  const LIVE_REFRESH_MS = 30000;  // with one: queue depths change without a task changing
  const SOONEST_MS = 1000;        // a busy service's pushes refresh at most once a second
  const PANELS_MS = 15000;        // stuck work, owners, hosts, latency: each a few hundred reads
  const PAGE_SIZE = 25;
  const base = location.pathname.replace(/\/dashboard\/?$/, "");
  const $ = (id) => document.getElementById(id);
  const ops = {on: false, timer: null, cursor: null, busy: false, filters: {}, socket: null,
    live: false, pending: null, again: false, panelsAt: 0, panelsPending: null};
  const config = JSON.parse(document.getElementById("config").textContent || "{}");

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function cell(label, ...children) {
    return el("td", {"data-label": label}, ...children);
  }

  function badge(status) {
    return el("span", {class: `badge s-${String(status || "").replace(/[^a-z_]/g, "")}`, text: status || ""});
  }

  function seconds(value) {
    if (value == null) return "–";
    if (value < 1) return `${value} s`;
    if (value < 60) return `${Math.round(value)} s`;
    if (value < 3600) return `${Math.floor(value / 60)} min`;
    if (value < 86400) return `${Math.floor(value / 3600)} h`;
    return `${Math.floor(value / 86400)} d`;
  }

  function when(iso) {
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? String(iso || "") : date.toLocaleString();
  }

  async function api(path, method = "GET") {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return {status: 401, ok: false, data: null, message: "not signed in"};
    let response;
    try {
      response = await fetch(base + path, {
        method, headers: {"Authorization": `Bearer ${token}`}, cache: "no-store",
        credentials: "omit", referrerPolicy: "no-referrer",
      });
    } catch (error) {
      return {status: 0, ok: false, data: null, message: "the service cannot be reached"};
    }
    let data = null;
    try { data = await response.json(); } catch (error) { data = null; }
    const message = (data && data.error && data.error.message) || `HTTP ${response.status}`;
    return {status: response.status, ok: response.ok, data, message: String(message)};
  }

  // -- queues and their dead letters ---------------------------------------------------------

  function renderQueues(queues) {
    const rows = $("ops-queue-rows");
    rows.replaceChildren(...queues.map((q) => {
      const name = q.deadLetters && q.visible ? el("span", {class: "ops-warn", text: q.name}) : q.name;
      return el("tr", {"data-queue": q.name},
        cell("Queue", name),
        cell("Waiting", q.exists ? String(q.visible) : "missing"),
        cell("In flight", q.exists ? String(q.inFlight) : ""),
        cell("Delayed", q.exists ? String(q.delayed) : ""),
        cell("Oldest", seconds(q.oldestSeconds)));
    }));
  }

  async function loadDeadLetters(queues) {
    const full = queues.filter((q) => q.deadLetters && q.visible);
    const letters = [];
    for (const queue of full) {
      const answer = await api(`/ops/queues/${encodeURIComponent(queue.name)}/messages`);
      if (answer.ok) letters.push(...answer.data.messages);
    }
    const rows = $("ops-dead-rows");
    rows.replaceChildren(...letters.map(deadLetterRow));
    $("ops-dead").hidden = letters.length === 0;
    $("ops-dead-note").textContent = letters.length ? `${letters.length} message(s) gave up.` : "None.";
  }

  function deadLetterRow(letter) {
    const task = letter.task || {};
    const label = letter.taskId || letter.messageId;
    const redrive = el("button", {type: "button", text: "Redrive", "aria-label": `Redrive ${label} from ${letter.queue}`});
    const discard = el("button", {type: "button", text: "Discard", "aria-label": `Discard ${label} from ${letter.queue}`});
    const path = `/ops/queues/${encodeURIComponent(letter.queue)}/messages/${encodeURIComponent(letter.messageId)}`;
    redrive.addEventListener("click", () => act(`Redrive ${label}?`, `${path}/redrive`, "POST"));
    discard.addEventListener("click", () => act(`Discard ${label}? This cannot be undone.`, path, "DELETE"));
    return el("tr", {"data-message": letter.messageId, "data-task": letter.taskId || ""},
      cell("Queue", letter.queue),
      cell("Task", el("span", {class: "mono", text: letter.taskId || "(no task)"})),
      cell("Owner", task.owner || ""),
      cell("Status", task.status ? badge(task.status) : ""),
      cell("Sent", when(letter.sentAt)),
      cell("Actions", el("div", {class: "actions", role: "group", "aria-label": "Actions"}, redrive, discard)));
  }

  async function act(question, path, method) {
    if (!window.confirm(question)) return;
    const outcome = $("ops-dead-outcome");
    outcome.textContent = "Working…";
    const answer = await api(path, method);
    outcome.textContent = answer.ok
      ? `Done: ${answer.data.action || answer.data.status}${answer.data.taskId ? ` (${answer.data.taskId})` : ""}.`
      : `Not done: ${answer.message}`;
    await refresh();
  }

  // -- stuck work ------------------------------------------------------------------------------

  function renderStuck(stuck) {
    $("ops-stuck-rows").replaceChildren(...stuck.map((item) => el("tr", {"data-task": item.taskId, "data-kind": item.kind},
      cell("Kind", item.kind.replace(/_/g, " ")),
      cell("Task", el("span", {class: "mono", text: item.taskId})),
      cell("Owner", item.owner || ""),
      cell("Why", item.reason))));
    $("ops-stuck").hidden = stuck.length === 0;
    $("ops-stuck-note").textContent = stuck.length ? `${stuck.length} task(s).` : "None.";
  }

  // -- owners and latency ----------------------------------------------------------------------

  function renderOwners(owners) {
    $("ops-owner-rows").replaceChildren(...owners.map((o) => el("tr", {"data-owner": o.owner},
      cell("Owner", o.owner),
      cell("Submitted (hour / day)", `${o.lastHour.submitted} / ${o.lastDay.submitted}`),
      cell("Failed (hour / day)", `${o.lastHour.failed} / ${o.lastDay.failed}`),
      cell("Running", o.running == null ? "" : String(o.running)),
      cell("Parked", String(o.parked)))));
    $("ops-owners").hidden = owners.length === 0;
    $("ops-owners-note").textContent = owners.length ? "" : "None yet.";
  }

  function renderHosts(hosts) {
    $("ops-host-rows").replaceChildren(...hosts.map((h) => el("tr", {"data-host": h.host},
      cell("Host", h.host),
      cell("Attempts (hour / day)", `${h.lastHour.attempts} / ${h.lastDay.attempts}`),
      cell("Failed (day)", h.failureRate == null ? String(h.lastDay.failed)
        : `${h.lastDay.failed} (${Math.round(h.failureRate * 100)} %)`),
      cell("Exhausted (day)", String(h.lastDay.exhausted)),
      cell("Last error", h.lastError ? `${h.lastError} at ${when(h.lastErrorAt)}` : ""))));
    $("ops-hosts").hidden = hosts.length === 0;
    $("ops-hosts-note").textContent = hosts.length ? "" : "None yet.";
  }

  function bar(value, longest) {
    // A bar beside the figure: its length is the figure's share of the longest shown.
    const meter = el("meter", {min: "0", max: String(longest || 1), value: String(value || 0), "aria-hidden": "true"});
    return meter;
  }

  function renderLatency(types) {
    const longest = Math.max(1, ...types.map((t) => Math.max(t.waitP95 || 0, t.runP95 || 0)));
    $("ops-latency-rows").replaceChildren(...types.map((t) => el("tr", {"data-type": t.type, "data-window": t.window},
      cell("Type", t.type),
      cell("Window", t.window),
      cell("Wait p50 / p95", `${seconds(t.waitP50)} / ${seconds(t.waitP95)} `, bar(t.waitP95, longest)),
      cell("Run p50 / p95", `${seconds(t.runP50)} / ${seconds(t.runP95)} `, bar(t.runP95, longest)),
      cell("Runs", String(t.finished)))));
    $("ops-latency").hidden = types.length === 0;
    $("ops-latency-note").textContent = types.length ? "Quantiles are the upper bound of their bucket." : "None yet.";
  }

  // -- every owner's tasks --------------------------------------------------------------------

  function taskQuery(cursor) {
    const params = new URLSearchParams({limit: String(PAGE_SIZE)});
    for (const [name, value] of Object.entries(ops.filters)) if (value) params.set(name, value);
    if (cursor) params.set("cursor", cursor);
    return `/ops/tasks?${params}`;
  }

  function taskRow(task) {
    const buttons = [];
    if (task.status === "failed" || task.status === "cancelled") {
      const retry = el("button", {type: "button", text: "Retry", "aria-label": `Retry ${task.id}`});
      retry.addEventListener("click", () => act(`Retry ${task.id} for ${task.owner}?`, `/ops/tasks/${task.id}/retry`, "POST"));
      buttons.push(retry);
    } else if (!["completed", "completed_with_errors"].includes(task.status)) {
      const cancel = el("button", {type: "button", text: "Cancel", "aria-label": `Cancel ${task.id}`});
      cancel.addEventListener("click", () => act(`Cancel ${task.id} of ${task.owner}?`, `/ops/tasks/${task.id}/cancel`, "POST"));
      buttons.push(cancel);
    }
    return el("tr", {"data-task": task.id, "data-status": task.status},
      cell("Task", el("span", {class: "mono", text: task.id})),
      cell("Owner", task.owner),
      cell("Type", task.type),
      cell("Status", badge(task.status)),
      cell("Created", when(task.createdAt)),
      cell("By", task.updatedBy || ""),
      cell("Actions", el("div", {class: "actions", role: "group", "aria-label": "Actions"}, ...buttons)));
  }

  async function loadTasks(more) {
    const answer = await api(taskQuery(more ? ops.cursor : null));
    if (!answer.ok) {
      $("ops-tasks-status").textContent = `Cannot list: ${answer.message}`;
      return;
    }
    const rows = answer.data.tasks.map(taskRow);
    if (more) $("ops-task-rows").append(...rows);
    else $("ops-task-rows").replaceChildren(...rows);
    ops.cursor = answer.data.nextCursor;
    $("ops-more").hidden = !ops.cursor;
    const shown = $("ops-task-rows").children.length;
    $("ops-tasks-status").textContent = shown ? "" : "No task matches.";
  }

  // -- the whole console, refreshed while it is shown -----------------------------------------

  async function refresh() {
    if (!ops.on) return;
    if (ops.busy) { ops.again = true; return; }
    ops.busy = true;
    try {
      const queues = await api("/ops/queues");
      if (queues.status === 401 || queues.status === 403) { hide(); return; }
      if (queues.ok) {
        renderQueues(queues.data.queues);
        await loadDeadLetters(queues.data.queues);
      }
      if (Date.now() - ops.panelsAt >= PANELS_MS) await refreshPanels();
      else panelsLater(PANELS_MS - (Date.now() - ops.panelsAt));
      if (!ops.cursor || $("ops-task-rows").children.length <= PAGE_SIZE) await loadTasks(false);
      const how = ops.live ? "live" : "every 5 s";
      $("ops-updated").textContent = `updated ${new Date().toLocaleTimeString()} (${how})`;
    } finally {
      ops.busy = false;
    }
    if (ops.again) { ops.again = false; soon(); }
  }

  // The panels read many partitions (stuck work: every shard of two indexes; the others:
  // 25 hours of tallies), so a busy service's pushes refresh them at most every PANELS_MS;
  // the queues and the task list follow each push.
  async function refreshPanels() {
    ops.panelsAt = Date.now();
    const stuck = await api("/ops/stuck");
    if (stuck.ok) renderStuck(stuck.data.stuck);
    const usage = await api("/ops/usage");
    if (usage.ok) renderOwners(usage.data.owners);
    const hosts = await api("/ops/webhooks");
    if (hosts.ok) renderHosts(hosts.data.hosts);
    const latency = await api("/ops/latency");
    if (latency.ok) renderLatency(latency.data.types);
  }

  function panelsLater(afterMs) {
    // a change the panels have not shown yet: one more refresh when they may read again
    if (ops.panelsPending) return;
    ops.panelsPending = setTimeout(() => { ops.panelsPending = null; refresh(); }, afterMs);
  }

  // -- live: the WebSocket tells of every owner's changes, one message per stream batch --------

  function soon() {
    if (ops.pending) return;
    ops.pending = setTimeout(() => { ops.pending = null; refresh(); }, SOONEST_MS);
  }

  function poll(every) {
    clearInterval(ops.timer);
    ops.timer = setInterval(refresh, every);
  }

  function watch() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!config.wsUrl || !token || ops.socket || !ops.on) return;
    const socket = new WebSocket(`${config.wsUrl}/?token=${encodeURIComponent(token)}&watch=operators`);
    ops.socket = socket;
    socket.addEventListener("open", () => { ops.live = true; poll(LIVE_REFRESH_MS); });
    socket.addEventListener("message", (event) => {
      let message = null;
      try { message = JSON.parse(event.data); } catch (error) { return; }
      if (message && message.type === "ops_changes") soon();
    });
    socket.addEventListener("close", () => {
      ops.socket = null;
      ops.live = false;
      if (!ops.on) return;
      poll(REFRESH_MS);
      setTimeout(watch, REFRESH_MS);
    });
  }

  function hide() {
    ops.on = false;
    clearInterval(ops.timer);
    clearTimeout(ops.panelsPending);
    ops.panelsPending = null;
    if (ops.socket) ops.socket.close(1000);
    $("ops").hidden = true;
  }

  async function probe() {
    // Only an operator's credential opens the console; the page asks first, so a user's
    // page never calls an /ops route (a 403 is a failed load in the browser's console).
    if ($("app").hidden || !sessionStorage.getItem(TOKEN_KEY)) { hide(); return; }
    const session = await api("/dashboard/session");
    if (!session.ok || !session.data.operator) { hide(); return; }
    const answer = await api("/ops/queues");
    if (!answer.ok) { hide(); return; }
    $("ops").hidden = false;
    if (!ops.on) {
      ops.on = true;
      poll(REFRESH_MS);
      watch();
    }
    await refresh();
  }

  function wire() {
    const select = $("ops-status");
    for (const status of ["submitted", "scheduled", "started", "processing", "error", "retrying",
      "completed", "completed_with_errors", "failed", "cancelled"]) {
      select.append(el("option", {value: status, text: status}));
    }
    $("ops-filters").addEventListener("submit", (event) => {
      event.preventDefault();
      ops.filters = {
        owner: $("ops-owner").value.trim(), status: $("ops-status").value,
        type: $("ops-type").value.trim(), pool: $("ops-pool").value.trim(),
      };
      ops.cursor = null;
      loadTasks(false);
    });
    $("ops-more").addEventListener("click", () => loadTasks(true));
    // The user's dashboard shows #app once signed in and hides it on sign-out.
    new MutationObserver(probe).observe($("app"), {attributes: true, attributeFilter: ["hidden"]});
    probe();
  }

  wire();
})();
