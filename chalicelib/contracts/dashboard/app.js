"use strict";
// taskstatus dashboard. Plain JavaScript, no build step, no library.
// Every task field reaches the page through textContent or a property, never as HTML.
(() => {
  // A credential in the address (#token=, #code=) leaves it before anything else runs: out of
  // the address bar, this tab's history and any screenshot. The browser's history database
  // has recorded the address already, before any script could run; that is why `make dev`'s
  // links carry a one-time #code=, worthless once used (chalicelib/contracts/dashboard/links.py).
  const linked = takeFragment();
  const TOKEN_KEY = "taskstatus.token";
  const TERMINAL = new Set(["completed", "completed_with_errors", "failed", "cancelled"]);
  const DEFAULT_STATUSES = ["submitted", "started", "processing", "error", "retrying",
    "completed", "completed_with_errors", "failed", "cancelled"];
  const PAGE_SIZE = 25;
  const HOUR_MS = 3600 * 1000;
  const OVERVIEW_PAGES = 10;
  const PING_MS = 4 * 60 * 1000;
  const BACKOFF_MAX_MS = 30000;
  // Unfinished tasks resubscribed from their version after a reconnect: well within the
  // server's subscriptions per connection (WS_MAX_SUBSCRIPTIONS_PER_CONNECTION, 100).
  const RESUME_MAX = 50;
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

  const config = JSON.parse(document.getElementById("config").textContent || "{}");
  // The API is where this page is: /dashboard locally, /<stage>/dashboard behind API Gateway.
  const base = location.pathname.replace(/\/dashboard\/?$/, "");
  const $ = (id) => document.getElementById(id);

  const state = {
    token: null,
    linkProblem: "",      // why a sign-in link could not be used, shown on the sign-in form
    statuses: DEFAULT_STATUSES.slice(),
    caps: {events: false, retry: false, schedules: false},
    tasks: new Map(),        // id -> the newest job document seen (by version)
    seen: new Map(),         // id -> [{version, status, at, progress}] changes this page saw
    listed: [],              // ids in the list, as loaded and as pushed
    rank: new Map(),         // id -> order among tasks of the same second: the list's, newest first
    ranked: 0,
    pushedRank: 0,
    cursor: null,
    generation: 0,
    filters: {status: "", type: "", prefix: ""},
    overview: new Map(),     // id -> {status, submitted, completed}
    overviewCapped: false,
    detailId: null,
    rows: new Map(),         // id -> <tr>
    types: new Set(),
  };

  // -- small helpers ------------------------------------------------------------------

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

  function ms(iso) { return iso ? Date.parse(iso) : NaN; }

  function age(iso) {
    const seconds = Math.max(0, Math.round((Date.now() - ms(iso)) / 1000));
    if (!Number.isFinite(seconds)) return "";
    if (seconds < 60) return `${seconds} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h`;
    return `${Math.floor(seconds / 86400)} d`;
  }

  function span(seconds) {
    if (seconds == null || !Number.isFinite(seconds)) return "";
    if (seconds < 10) return `${seconds.toFixed(1)} s`;
    if (seconds < 60) return `${Math.round(seconds)} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  function duration(job) {
    if (job.processingTime != null) return span(job.processingTime);
    if (TERMINAL.has(job.status)) return "";
    if (job.runAt && ms(job.runAt) > Date.now()) return `starts in ${span((ms(job.runAt) - Date.now()) / 1000)}`;
    return `${span((Date.now() - ms(job.submittedAt)) / 1000)} so far`;
  }

  function when(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
  }

  function pretty(value) {
    return value == null ? "none" : JSON.stringify(value, null, 2);
  }

  function safeUrl(url) {
    try {
      const parsed = new URL(url, location.href);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch (error) {
      return null;
    }
  }

  function setBadge(node, status) {
    node.textContent = status || "";
    node.className = `badge s-${String(status).replace(/[^a-z_]/g, "")}`;
  }

  function progressOf(job) {
    const p = job.progress;
    const done = job.status === "completed" || job.status === "completed_with_errors";
    // A failed task says why where its progress would be (cut short; the detail has it all).
    const why = job.error && !done ? ` (${job.error.length > 120 ? `${job.error.slice(0, 120)}…` : job.error})` : "";
    if (!p || !p.total) return {value: done ? 1 : 0, max: 1, text: ((p && p.message) || "") + why};
    const label = `${p.current}/${p.total}`;
    return {value: Math.min(p.current, p.total), max: p.total, text: (p.message ? `${label} ${p.message}` : label) + why};
  }

  // -- the API ------------------------------------------------------------------------

  async function api(path, {method = "GET", body} = {}) {
    const headers = {"Authorization": `Bearer ${state.token}`};
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      if (method === "POST" && path === "/jobs") headers["Idempotency-Key"] = crypto.randomUUID();
    }
    let response;
    try {
      response = await fetch(base + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer",
      });
    } catch (error) {
      return {status: 0, ok: false, data: null, message: "the service cannot be reached"};
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (error) { data = null; }
    const message = (data && data.error && (data.error.message || data.error)) || `HTTP ${response.status}`;
    if (response.status === 401 && state.token) signOut(`Signed out: ${message}`);
    return {status: response.status, ok: response.ok, data, message: String(message)};
  }

  async function discover() {
    // /openapi.json names the routes this server has, so a missing one is never called (no 404s).
    try {
      const response = await fetch(`${base}/openapi.json`, {cache: "no-store", credentials: "omit"});
      const doc = await response.json();
      const paths = doc.paths || {};
      state.caps.events = Boolean(paths["/jobs/{jobId}/events"] && paths["/jobs/{jobId}/events"].get);
      state.caps.retry = Boolean(paths["/jobs/{jobId}/retry"] && paths["/jobs/{jobId}/retry"].post);
      state.caps.schedules = Boolean(paths["/schedules"] && paths["/schedules"].get);
      const statuses = doc.components && doc.components.schemas && doc.components.schemas.Status;
      if (statuses && Array.isArray(statuses.enum)) state.statuses = statuses.enum.slice();
    } catch (error) {
      // keep the defaults: no history, no retry
    }
    const select = $("filter-status");
    for (const status of state.statuses) select.append(el("option", {value: status, text: status}));
  }

  // -- sign-in ------------------------------------------------------------------------

  function takeFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    if (!params.has("token") && !params.has("code")) return null;
    history.replaceState(null, "", location.pathname + location.search);
    return params;
  }

  async function credentialFromLink(params) {
    if (!params) return false;
    let token = params.get("token");
    const code = params.get("code");
    if (!token && code) {
      const redeemed = await redeem(code);
      if (!redeemed.ok) {
        state.linkProblem = `This sign-in link cannot be used: ${redeemed.message}`;
        return false;
      }
      token = redeemed.token;
    }
    if (!token) return false;
    const current = sessionStorage.getItem(TOKEN_KEY);
    if (current === token) return true;  // the same link opened again
    // A link can carry someone else's credential (login CSRF): what you submit next would
    // land in their account. So a link never signs in, nor switches, without asking.
    const question = current
      ? `This link signs in with another credential (${who(token)}). Switch from ${who(current)}?`
      : `This link signs you in (${who(token)}). Continue?`;
    if (!confirm(question)) return false;
    sessionStorage.setItem(TOKEN_KEY, token);
    return true;
  }

  async function redeem(code) {
    // The code is the credential here: the route needs no token, and answers once.
    try {
      const response = await fetch(`${base}/dashboard/sign-in`, {
        method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({code}), cache: "no-store", credentials: "omit",
        referrerPolicy: "no-referrer",
      });
      let data = null;
      try { data = await response.json(); } catch (error) { data = null; }
      if (response.ok && data && typeof data.token === "string") return {ok: true, token: data.token};
      const message = (data && data.error && data.error.message) || `HTTP ${response.status}`;
      return {ok: false, message: String(message)};
    } catch (error) {
      return {ok: false, message: "the service cannot be reached"};
    }
  }

  function who(token) {
    if (token.startsWith("tsk_")) return `API key ${token.slice(0, 12)}…`;
    try {
      const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const claims = JSON.parse(atob(payload));
      return claims.sub ? `signed in as ${claims.sub}` : "signed in";
    } catch (error) {
      return "signed in";
    }
  }

  function showSignIn(problem) {
    $("app").hidden = true;
    $("sign-out").hidden = true;
    $("who").textContent = "";
    $("signin").hidden = false;
    $("signin-error").textContent = problem || "";
    $("token-input").value = "";
    $("token-input").focus();
  }

  async function signIn(token) {
    state.token = token;
    const probe = await api(`/jobs?limit=1`);
    if (!probe.ok) {
      state.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn(`Not signed in: ${probe.message}`);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $("signin").hidden = true;
    $("app").hidden = false;
    $("sign-out").hidden = false;
    $("who").textContent = who(token);
    if (live.socket) {  // signed in again (a new #token=): the old socket goes, unmourned
      const old = live.socket;
      live.socket = null;
      old.close(1000);
    }
    clearTimeout(live.retryTimer);
    Object.assign(live, {stopped: false, opened: false, attempt: 0});
    connect();
    loadList(true);
    loadOverview();
    loadSchedules();
  }

  // -- schedules: next runs and last outcomes ------------------------------------------

  async function loadSchedules() {
    $("schedules").hidden = !state.caps.schedules;  // servers with POST /schedules
    if (!state.caps.schedules) return;
    $("schedules-status").textContent = "Loading…";
    const answer = await api("/schedules");
    if (!answer.ok) { $("schedules-status").textContent = `Could not load the schedules: ${answer.message}`; return; }
    const schedules = answer.data.schedules || [];
    $("schedule-rows").replaceChildren(...schedules.map(scheduleRow));
    $("schedules-status").textContent = schedules.length ? "" : "No schedules (POST /schedules, or taskstatus schedules create).";
  }

  function scheduleRow(schedule) {
    const spec = schedule.cron ? `cron ${schedule.cron} (${schedule.timezone})` : `every ${schedule.rate}`;
    const next = schedule.paused ? "paused" : (schedule.nextRuns.length ? when(schedule.nextRuns[0]) : "none");
    const last = schedule.lastRun
      ? `${schedule.lastRun.outcome || "?"} ${when(schedule.lastRun.scheduledFor)}`
      : "not yet";
    return el("tr", {},
      el("td", {class: "mono", text: schedule.scheduleId.slice(0, 12)}),
      el("td", {text: schedule.type}),
      el("td", {text: spec}),
      el("td", {text: next}),
      el("td", {text: last}),
      el("td", {text: `${schedule.fired} (${schedule.skipped} skipped)`}));
  }

  function signOut(problem) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    live.stopped = true;
    if (live.socket) live.socket.close(1000);
    clearTimeout(live.retryTimer);
    setConnection("off", "Not connected");
    state.tasks.clear(); state.seen.clear(); state.overview.clear(); state.listed = []; state.rank.clear();
    for (const row of state.rows.values()) row.remove();
    state.rows.clear();
    if ($("detail").open) $("detail").close();
    showSignIn(problem);
  }

  // -- merging what REST and WebSocket say, by version -----------------------------------

  function remember(job) {
    const list = state.seen.get(job.jobId) || [];
    const last = list[list.length - 1];
    if (!last || last.version !== job.version || last.status !== job.status) {
      list.push({version: job.version, status: job.status, at: job.updatedAt, progress: job.progress});
      state.seen.set(job.jobId, list.slice(-50));
    }
  }

  function merge(job) {
    const known = state.tasks.get(job.jobId);
    if (known && known.version > job.version) return false;
    const merged = {...known, ...job};
    if (job.input == null && known && known.input != null) merged.input = known.input;
    state.tasks.set(job.jobId, merged);
    remember(merged);
    if (!state.types.has(job.type)) {
      state.types.add(job.type);
      $("known-types").append(el("option", {value: job.type}));
    }
    state.overview.set(job.jobId, {
      status: merged.status, submitted: ms(merged.submittedAt), completed: ms(merged.completedAt),
    });
    return true;
  }

  function matches(job) {
    const f = state.filters;
    return (!f.status || job.status === f.status) && (!f.type || job.type === f.type)
      && (!f.prefix || job.jobId.startsWith(f.prefix));
  }

  // -- the list -----------------------------------------------------------------------

  function listQuery(cursor) {
    const query = new URLSearchParams({limit: String(PAGE_SIZE)});
    if (state.filters.status) query.set("status", state.filters.status);
    if (state.filters.type) query.set("type", state.filters.type);
    if (cursor) query.set("cursor", cursor);
    return `/jobs?${query}`;
  }

  async function loadList(reset) {
    const generation = reset ? ++state.generation : state.generation;
    if (reset) {
      state.cursor = null;
      state.listed = [];
      state.rank.clear();
      state.ranked = 0;
      $("list-status").textContent = "Loading…";
    }
    const answer = await api(listQuery(reset ? null : state.cursor));
    if (generation !== state.generation || !state.token) return;
    if (!answer.ok) {
      $("list-status").textContent = `Could not load the tasks: ${answer.message}`;
      return;
    }
    for (const job of answer.data.jobs) { merge(job); list(job.jobId, false); }
    state.cursor = answer.data.nextCursor;
    $("more").hidden = !state.cursor;
    render();
  }

  async function refreshTop() {
    // After a reconnect: whatever was submitted or changed while the socket was down.
    const answer = await api(listQuery(null));
    if (!answer.ok) return;
    for (const job of answer.data.jobs.slice().reverse()) { merge(job); list(job.jobId, true); }
    render();
  }

  // Into the list: in the order the list API gave (`newer`: ahead of everything listed so far).
  function list(id, newer) {
    if (!state.listed.includes(id)) state.listed.push(id);
    if (!state.rank.has(id)) state.rank.set(id, newer ? --state.pushedRank : state.ranked++);
  }

  function sortListed() {
    // Times have whole seconds: within one, the list API's order (and newer pushes first).
    const key = (id) => ms((state.tasks.get(id) || {}).submittedAt) || 0;
    state.listed.sort((a, b) => key(b) - key(a) || state.rank.get(a) - state.rank.get(b));
  }

  function cell(label, ...children) {
    return el("td", {"data-label": label}, ...children);
  }

  function makeRow(id) {
    const open = el("button", {class: "link mono", type: "button", "aria-label": `Open task ${id}`, text: id.slice(0, 8)});
    open.title = id;
    open.addEventListener("click", () => openDetail(id));
    const row = el("tr", {"data-id": id},
      cell("Task", open),
      cell("Type", el("span", {class: "type"})),
      cell("Status", el("span", {class: "badge"})),
      cell("Progress", el("progress", {max: "1", value: "0"}), el("span", {class: "progress-text"})),
      cell("Age", el("span", {class: "age"})),
      cell("Duration", el("span", {class: "duration"})));
    row.cells[4].className = "num";
    row.cells[5].className = "num";
    // The whole row opens the task (the id's button stays for the keyboard and screen readers).
    row.addEventListener("click", (event) => {
      if (!event.target.closest("button, a")) openDetail(id);
    });
    return row;
  }

  function fillRow(row, job) {
    row.querySelector(".type").textContent = job.type;
    setBadge(row.querySelector(".badge"), job.status);
    const p = progressOf(job);
    const bar = row.querySelector("progress");
    bar.max = p.max;
    bar.value = p.value;
    bar.setAttribute("aria-label", `Progress of ${job.jobId.slice(0, 8)}`);
    row.querySelector(".progress-text").textContent = p.text;
    row.querySelector(".age").textContent = age(job.submittedAt);
    row.querySelector(".duration").textContent = duration(job);
    row.dataset.status = job.status;
  }

  function render() {
    state.listed = state.listed.filter((id) => state.tasks.has(id) && matches(state.tasks.get(id)));
    sortListed();
    const body = $("task-rows");
    const wanted = new Set(state.listed);
    for (const [id, row] of state.rows) {
      if (!wanted.has(id)) { row.remove(); state.rows.delete(id); }
    }
    let previous = null;
    for (const id of state.listed) {
      let row = state.rows.get(id);
      if (!row) { row = makeRow(id); state.rows.set(id, row); }
      fillRow(row, state.tasks.get(id));
      // Move a row only when it is out of place: moving the focused row would lose the focus.
      const expected = previous ? previous.nextSibling : body.firstChild;
      if (expected !== row) body.insertBefore(row, expected);
      previous = row;
    }
    $("list-status").textContent = state.listed.length ? "" : "No tasks match.";
    renderOverview();
    if (state.detailId) renderDetail();
  }

  function tick() {
    for (const [id, row] of state.rows) {
      const job = state.tasks.get(id);
      if (job) {
        row.querySelector(".age").textContent = age(job.submittedAt);
        row.querySelector(".duration").textContent = duration(job);
      }
    }
    // A timeline still behind its job, with no push to come for that version (a resubscribe
    // pushed it before the stream wrote its entry): read it again.
    const shown = state.detailId && state.tasks.get(state.detailId);
    if (shown && state.caps.events && timelineBehind(shown.jobId, shown.version)) {
      loadTimeline(shown.jobId);
    }
  }

  // -- the overview strip ---------------------------------------------------------------

  async function loadOverview() {
    const since = Date.now() - HOUR_MS;
    let cursor = null;
    for (let page = 0; page < OVERVIEW_PAGES; page++) {
      const query = new URLSearchParams({limit: "100"});
      if (cursor) query.set("cursor", cursor);
      const answer = await api(`/jobs?${query}`);
      if (!answer.ok) return;
      for (const job of answer.data.jobs) merge(job);
      cursor = answer.data.nextCursor;
      const jobs = answer.data.jobs;
      const oldest = jobs.length ? ms(jobs[jobs.length - 1].submittedAt) : 0;
      if (!cursor || oldest < since) break;
      state.overviewCapped = page === OVERVIEW_PAGES - 1;
    }
    render();
  }

  function renderOverview() {
    const now = Date.now();
    const since = now - HOUR_MS;
    const counts = new Map(state.statuses.map((s) => [s, 0]));
    const completed = new Array(60).fill(0);
    const failed = new Array(60).fill(0);
    for (const entry of state.overview.values()) {
      if (entry.submitted >= since) counts.set(entry.status, (counts.get(entry.status) || 0) + 1);
      if (entry.completed >= since) {
        const minute = Math.min(59, Math.floor((now - entry.completed) / 60000));
        if (entry.status === "completed" || entry.status === "completed_with_errors") completed[59 - minute]++;
        else if (entry.status === "failed") failed[59 - minute]++;
      }
    }
    const signature = JSON.stringify([...counts, state.filters.status]);
    const list = $("counts");
    if (list.dataset.signature !== signature) {
      list.dataset.signature = signature;  // rebuilt only when a count changes: keeps the focus
      list.replaceChildren(...[...counts].map(([status, count]) => countItem(status, count)));
    }
    $("overview-note").textContent = state.overviewCapped
      ? "From the newest 1,000 tasks." : "Tasks submitted in the last hour; the chart counts tasks that finished in it.";
    drawChart(completed, failed);
  }

  function countItem(status, count) {
    const button = el("button", {type: "button", "aria-pressed": String(state.filters.status === status)});
    button.append(el("span", {class: `badge s-${status}`, text: status}), ` ${count}`);
    button.setAttribute("aria-label", `${count} ${status}: show only ${status} tasks`);
    button.addEventListener("click", () => setStatusFilter(state.filters.status === status ? "" : status));
    return el("li", {}, button);
  }

  function drawChart(completed, failed) {
    const svg = $("chart");
    const ns = "http://www.w3.org/2000/svg";
    const peak = Math.max(1, ...completed.map((c, i) => c + failed[i]));
    svg.replaceChildren();
    const width = 600 / 60;
    for (let i = 0; i < 60; i++) {
      const ago = 59 - i;
      let y = 90;
      for (const [count, kind] of [[completed[i], "completed"], [failed[i], "failed"]]) {
        if (!count) continue;
        const height = (count / peak) * 86;
        y -= height;
        const rect = document.createElementNS(ns, "rect");
        rect.setAttribute("x", String(i * width + 1));
        rect.setAttribute("y", String(y));
        rect.setAttribute("width", String(width - 2));
        rect.setAttribute("height", String(height));
        rect.setAttribute("class", `bar-${kind}`);
        const title = document.createElementNS(ns, "title");
        title.textContent = `${ago ? `${ago} min ago` : "this minute"}: ${count} ${kind}`;
        rect.append(title);
        svg.append(rect);
      }
    }
    const total = (values) => values.reduce((a, b) => a + b, 0);
    $("chart-summary").textContent = `Completed (green) and failed (red) per minute, last 60 minutes: `
      + `${total(completed)} completed, ${total(failed)} failed; at most ${peak} in a minute.`;
  }

  // -- live updates -------------------------------------------------------------------

  const live = {socket: null, attempt: 0, retryTimer: null, pingTimer: null, stopped: true, opened: false};
  const inflight = new Set();
  const dirty = new Set();

  function setConnection(kind, text) {
    const node = $("connection");
    node.className = `conn conn-${kind}`;
    node.textContent = text;
  }

  function connect() {
    if (!config.wsUrl) {
      setConnection("off", "Live updates are not configured");
      return;
    }
    if (live.stopped) return;
    setConnection("wait", live.attempt ? "Reconnecting…" : "Connecting…");
    const socket = new WebSocket(`${config.wsUrl}/?token=${encodeURIComponent(state.token)}`);
    live.socket = socket;
    socket.onopen = () => {
      const reconnected = live.opened;
      live.attempt = 0;
      live.opened = true;
      setConnection("live", "Live");
      // Owner-wide first (a first subscribe replaces the default), then each unfinished task
      // from the last version this page has: what changed while away arrives as its current state.
      socket.send(JSON.stringify({action: "subscribe"}));
      const unfinished = [...state.tasks.values()]
        .filter((job) => !TERMINAL.has(job.status) || job.jobId === state.detailId)
        .sort((a, b) => ms(b.submittedAt) - ms(a.submittedAt))
        .slice(0, RESUME_MAX);
      for (const job of unfinished) {
        socket.send(JSON.stringify({action: "subscribe", taskId: job.jobId, sinceVersion: job.version}));
      }
      if (reconnected) { refreshTop(); if (state.detailId) refreshTask(state.detailId); }
      live.pingTimer = setInterval(() => socket.send(JSON.stringify({action: "ping"})), PING_MS);
    };
    socket.onmessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (error) { return; }
      if (message.type === "task_status" && message.job) onPush(message.job);
      else if (message.type === "error" && /expired/.test(String(message.message))) {
        signOut("Your session has expired: sign in again.");
      }
    };
    socket.onclose = () => {
      clearInterval(live.pingTimer);
      if (live.socket !== socket || live.stopped) return;
      const delay = Math.min(BACKOFF_MAX_MS, 1000 * 2 ** live.attempt) * (0.5 + Math.random() / 2);
      live.attempt += 1;
      setConnection("wait", `Reconnecting in ${Math.ceil(delay / 1000)} s`);
      live.retryTimer = setTimeout(connect, delay);
    };
  }

  // A push carries seed 004's payload for its clients and, beside it, the change in the job
  // document's own words (`job`: canonical status, version): shown at once, and the job
  // document, read right after, has the last word.
  function onPush(change) {
    const id = change.jobId;
    const known = state.tasks.get(id);
    if (known && known.version >= change.version) {
      // The job document may have this version already (a REST read ran ahead of the
      // stream), but the history may not have had its entry then: see timelineBehind.
      if (id === state.detailId && timelineBehind(id, change.version)) loadTimeline(id);
      return;
    }
    if (known) {
      merge({...known, status: change.status, progress: change.progress || known.progress,
        version: change.version, updatedAt: change.updatedAt,
        completedAt: change.completedAt || known.completedAt});
      render();
    }
    refreshTask(id, !known);
  }

  async function refreshTask(id, isNew) {
    if (inflight.has(id)) { dirty.add(id); return; }
    inflight.add(id);
    const answer = await api(`/jobs/${id}`);
    inflight.delete(id);
    if (answer.ok && state.token) {
      merge(answer.data);
      if (isNew && matches(answer.data)) list(id, true);
      render();
      if (state.detailId === id) { loadTimeline(id); if (TERMINAL.has(answer.data.status)) loadDeliveries(id); }
    }
    if (dirty.delete(id)) refreshTask(id, false);
  }

  // -- the detail view ------------------------------------------------------------------

  let opener = null;

  async function openDetail(id) {
    opener = document.activeElement;
    state.detailId = id;
    timeline.shown = {id, version: 0, stuck: false};
    $("d-outcome").textContent = "";
    $("d-timeline").replaceChildren();
    $("d-deliveries").replaceChildren();
    $("d-deliveries-table").hidden = true;
    $("d-deliveries-note").textContent = "Loading…";
    if (state.tasks.has(id)) renderDetail();
    if (!$("detail").open) $("detail").showModal();
    const answer = await api(`/jobs/${id}`);
    if (state.detailId !== id) return;
    if (!answer.ok) {
      $("detail-title").textContent = "Task not found";
      $("d-outcome").textContent = answer.message;
      return;
    }
    merge(answer.data);
    renderDetail();
    loadTimeline(id);
    loadDeliveries(id);
  }

  function renderDetail() {
    const job = state.tasks.get(state.detailId);
    if (!job) return;
    $("detail-title").textContent = `Task ${job.jobId.slice(0, 8)} (${job.type})`;
    $("d-id").textContent = job.jobId;
    $("d-type").textContent = job.type;
    setBadge($("d-status"), job.status);
    const p = progressOf(job);
    $("d-progress").max = p.max;
    $("d-progress").value = p.value;
    $("d-progress-text").textContent = p.text;
    $("d-submitted").textContent = when(job.submittedAt);
    $("d-updated").textContent = when(job.updatedAt);
    $("d-completed").textContent = when(job.completedAt) || "not yet";
    $("d-duration").textContent = duration(job);
    $("d-run-at-label").hidden = !job.runAt;  // servers with delayed runs
    $("d-run-at").hidden = !job.runAt;
    $("d-run-at").textContent = when(job.runAt);
    $("d-waiting-label").hidden = !job.waitingFor;  // flow control: why it has not started
    $("d-waiting").hidden = !job.waitingFor;
    $("d-waiting").textContent = job.waitingFor ? `${job.waitingFor} (priority ${job.priority})` : "";
    const retried = typeof job.retries === "number";  // servers with POST /jobs/{jobId}/retry
    $("d-retries-label").hidden = !retried;
    $("d-retries").hidden = !retried;
    $("d-retries").textContent = retried ? String(job.retries) : "";
    showFact("d-pool", job.pool ? `${job.pool} (remote workers)` : "");  // servers with worker pools
    showFact("d-attempt", job.attempt ? String(job.attempt) : "");  // 0: no attempt started yet
    $("d-input").textContent = job.input === undefined ? "" : pretty(job.input);
    $("d-metadata").textContent = pretty(job.metadata);
    $("d-result").textContent = job.resultUrl ? "too large to show here: download it" : pretty(job.result);
    const links = $("d-links");
    links.replaceChildren();
    for (const [url, label] of [[job.output && job.output.url, "Download the output"], [job.resultUrl, "Download the result (JSON)"]]) {
      const href = url && safeUrl(url);
      if (href) links.append(el("a", {href, rel: "noopener noreferrer", target: "_blank", download: "", text: label}));
    }
    $("d-error-box").hidden = !job.error;
    $("d-error").textContent = job.error || "";
    $("act-cancel").disabled = TERMINAL.has(job.status);
    $("act-retry").hidden = !state.caps.retry;
    $("act-retry").disabled = !(job.status === "failed" || job.status === "cancelled");
    // Only a job with a webhook has one to send again (the server answers 409 otherwise).
    $("act-redeliver").hidden = !job.hasWebhook;
    if (!state.caps.events) renderSeenTimeline(job.jobId);
  }

  // A fact of the detail shown only when it has a value (its <dt> is `<id>-label`).
  function showFact(id, text) {
    $(`${id}-label`).hidden = !text;
    $(id).hidden = !text;
    $(id).textContent = text;
  }

  function timelineItem(entry) {
    const item = el("li", {}, el("span", {class: `badge s-${String(entry.status).replace(/[^a-z_]/g, "")}`, text: entry.status}));
    item.append(el("span", {class: "when", text: when(entry.at)}));
    if (entry.by) item.append(el("span", {class: "when", text: `by ${entry.by}`}));
    if (entry.progress && entry.progress.total) {
      const p = entry.progress;
      item.append(el("span", {class: "when", text: `${p.current}/${p.total}${p.message ? ` ${p.message}` : ""}`}));
    }
    if (entry.error) item.append(el("div", {class: "problem", text: entry.error}));
    for (const step of entry.flow || []) {  // flow control: waits for a slot, the admission
      const text = step.event === "parked" ? `waited (${step.reason})` : "admitted";
      item.append(el("div", {class: "when", text: `${text} ${when(step.at)}`}));
    }
    return item;
  }

  function renderSeenTimeline(id) {
    $("d-timeline-note").textContent = "History not available on this server: the changes this page has seen.";
    const entries = state.seen.get(id) || [];
    $("d-timeline").replaceChildren(...entries.map(timelineItem));
  }

  const timelineLoads = new Map();

  // The history is not the job document: the table's stream writes a version's entry just
  // after the job is written, and just before that version is pushed. So the job document
  // (from REST, or from an action's answer) can be at a version whose entry a history read
  // made at the same moment did not have yet, and "the higher version wins" must not keep
  // the timeline from being read again: it is read again when a push, or the job document,
  // shows a version newer than the newest entry shown. (`stuck`: the last read stopped at a
  // problem or at its page limit, so the newest entry shown says nothing.)
  const timeline = {shown: {id: null, version: 0, stuck: false}};

  function timelineBehind(id, version) {
    const shown = timeline.shown;
    return shown.id !== id || (!shown.stuck && version > shown.version);
  }

  async function loadTimeline(id) {
    if (!state.caps.events) { renderSeenTimeline(id); return; }
    if (timelineLoads.get(id)) { timelineLoads.set(id, "again"); return; }
    timelineLoads.set(id, "busy");
    const events = [];
    let cursor = null;
    let problem = "";
    for (let page = 0; page < 10; page++) {
      const query = cursor ? `?cursor=${encodeURIComponent(cursor)}` : "";
      const answer = await api(`/jobs/${id}/events${query}`);
      if (!answer.ok) { problem = answer.message; break; }
      events.push(...(answer.data.events || []));
      cursor = answer.data.nextCursor;
      if (!cursor) break;
    }
    const again = timelineLoads.get(id) === "again";
    timelineLoads.delete(id);
    if (state.detailId === id) {
      events.sort((a, b) => a.version - b.version);
      $("d-timeline-note").textContent = problem ? `Could not load the history: ${problem}` : "";
      $("d-timeline").replaceChildren(...events.map(timelineItem));
      const newest = events.length ? events[events.length - 1].version : 0;
      timeline.shown = {id, version: newest, stuck: Boolean(problem || cursor)};
    }
    if (again) loadTimeline(id);
  }

  async function loadDeliveries(id) {
    const answer = await api(`/jobs/${id}/deliveries`);
    if (state.detailId !== id) return;
    if (!answer.ok) { $("d-deliveries-note").textContent = `Could not load them: ${answer.message}`; return; }
    const deliveries = answer.data.deliveries || [];
    $("d-deliveries-note").textContent = deliveries.length ? "" : "None (this task has no webhook, or none was due yet).";
    $("d-deliveries-table").hidden = !deliveries.length;
    $("d-deliveries").replaceChildren(...deliveries.map((d) => el("tr", {},
      el("td", {text: when(d.at)}),
      el("td", {text: d.eventType + (d.manual ? " (sent again)" : "")}),
      el("td", {text: String(d.attempt)}),
      el("td", {text: d.statusCode != null ? `HTTP ${d.statusCode}${d.error ? `: ${d.error}` : ""}` : (d.error || "")}),
      el("td", {text: `${d.latencyMs} ms`}),
      el("td", {text: d.state}))));
  }

  function closeDetail() {
    state.detailId = null;
    if (opener && document.contains(opener)) opener.focus();
  }

  // -- actions, each confirmed ------------------------------------------------------------

  function confirmAction(text) {
    const dialog = $("confirm");
    $("confirm-text").textContent = text;
    return new Promise((resolve) => {
      const done = (answer) => () => { cleanup(); dialog.close(); resolve(answer); };
      const yes = done(true);
      const no = done(false);
      const cancel = () => { cleanup(); resolve(false); };
      function cleanup() {
        $("confirm-yes").removeEventListener("click", yes);
        $("confirm-no").removeEventListener("click", no);
        dialog.removeEventListener("cancel", cancel);
      }
      $("confirm-yes").addEventListener("click", yes);
      $("confirm-no").addEventListener("click", no);
      dialog.addEventListener("cancel", cancel);
      dialog.showModal();
      $("confirm-no").focus();
    });
  }

  async function act(question, path, pending, success) {
    const id = state.detailId;
    if (!id || !(await confirmAction(question))) return;
    const outcome = $("d-outcome");
    outcome.textContent = pending;
    const answer = await api(path(id), {method: path.method || "POST"});
    if (state.detailId !== id) return;
    if (!answer.ok) { outcome.textContent = `Refused: ${answer.message}`; return; }
    outcome.textContent = success(answer.data);
    if (answer.data && answer.data.jobId === id && answer.data.version != null) { merge(answer.data); render(); }
    refreshTask(id, false);
  }

  function cancelPath(id) { return `/jobs/${id}`; }
  cancelPath.method = "DELETE";

  // -- wiring ---------------------------------------------------------------------------

  function setStatusFilter(status) {
    state.filters.status = status;
    $("filter-status").value = status;
    loadList(true);
  }

  function wire() {
    $("signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token-input").value.trim();
      if (!token) { $("signin-error").textContent = "Paste a JWT or an API key (tsk_…)."; return; }
      signIn(token);
    });
    $("sign-out").addEventListener("click", () => signOut("Signed out."));
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      state.filters.type = $("filter-type").value.trim();
      setStatusFilter($("filter-status").value);
    });
    $("filter-status").addEventListener("change", () => setStatusFilter($("filter-status").value));
    $("find").addEventListener("submit", (event) => {
      event.preventDefault();
      const text = $("find-id").value.trim().toLowerCase();
      if (UUID.test(text)) { state.filters.prefix = ""; openDetail(text); }
      else { state.filters.prefix = text; render(); }
    });
    $("more").addEventListener("click", () => loadList(false));
    $("schedules-refresh").addEventListener("click", () => loadSchedules());
    $("new-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const outcome = $("new-outcome");
      let input;
      try {
        input = $("new-input").value.trim() ? JSON.parse($("new-input").value) : {};
      } catch (error) {
        outcome.textContent = `The input is not JSON: ${error.message}`;
        return;
      }
      const answer = await api("/jobs", {method: "POST", body: {type: $("new-type").value.trim(), input}});
      if (!answer.ok) { outcome.textContent = `Refused: ${answer.message}`; return; }
      outcome.textContent = `Submitted ${answer.data.jobId}`;
      merge(answer.data);
      if (matches(answer.data)) list(answer.data.jobId, true);
      render();
    });
    $("detail-close").addEventListener("click", () => $("detail").close());
    $("detail").addEventListener("close", closeDetail);
    $("act-cancel").addEventListener("click", () => act(
      "Cancel this task? A running processor stops at its next progress report.",
      cancelPath, "Cancelling…", (job) => `Cancelled: the task is ${job.status}.`));
    $("act-retry").addEventListener("click", () => act(
      "Run this task again?", (id) => `/jobs/${id}/retry`, "Asking for a retry…",
      () => "Retry accepted: the task is queued again."));
    $("act-redeliver").addEventListener("click", () => act(
      "Send this task's webhook again?", (id) => `/jobs/${id}/webhook`, "Sending…",
      (body) => {
        const id = state.detailId;
        for (const wait of [1500, 4000, 10000]) {  // the attempt is logged once it is made
          setTimeout(() => { if (state.detailId === id) loadDeliveries(id); }, wait);
        }
        return `Webhook queued again (event ${body && body.eventId ? body.eventId : "?"}).`;
      }));
    setInterval(tick, 5000);
    setInterval(() => { if (state.token) renderOverview(); }, 30000);
  }

  async function main() {
    window.addEventListener("hashchange", async () => {
      if (await credentialFromLink(takeFragment())) signIn(sessionStorage.getItem(TOKEN_KEY));
    });
    const fromLink = credentialFromLink(linked);
    wire();
    await discover();
    await fromLink;
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) signIn(token);
    else showSignIn(state.linkProblem || "");
  }

  main();
})();
