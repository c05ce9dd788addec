// kpidash web dashboard: vanilla ES module, no build step. Talks to the API under /api/v1
// (bearer tokens kept in sessionStorage) and to the live WebSocket at /api/v1/ws. Every data
// call goes through data(), which names the workspace shown: /api/v1/workspaces/{ws}/...

const API = "/api/v1";
const COLS = 12;
const MAX_ROWS = 24;
const SAVE_DELAY_MS = 400;
const TOKEN_KEY = "kpidash.tokens";
const DASH_KEY = "kpidash.dashboard";
const WS_KEY = "kpidash.workspace";
const ACTING_ROLES = ["analyst", "admin"];
const STATUS_WORDS = { good: "on track", bad: "needs attention", neutral: "steady" };
const ARROWS = { up: "▲", down: "▼", flat: "▶" };
const PORTFOLIO_RANKS = [["value", "Value"], ["change", "Change"]];

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
};

const state = {
  me: null,
  workspaces: [], // [{id, name, settings, role}] — the user's, from GET /workspaces
  workspace: null, // the one shown; data() calls and the live subscription are about it
  generation: 0, // bumped by every workspace switch: late answers of an older one are dropped
  view: "board", // "board" or "portfolio"
  portfolio: null, // the last GET /portfolio answer
  portfolioKpis: null, // the KPIs of all the user's workspaces, by id
  portfolioGeneration: 0,
  dashboards: [],
  dashboard: null, // {id, name, owner_id, spec}
  board: null, // the last render
  layout: [], // [{id, x, y, w, h}] — the local truth while editing
  theme: null,
  alerts: [],
  kpis: [],
  ws: null,
  wsRetries: 0,
  wsTimer: null,
  refreshTimer: null,
  saveTimer: null,
  saving: Promise.resolve(),
  refreshing: null,
  loggedIn: false,
};

// -- tokens ---------------------------------------------------------------------------------

function tokens() {
  try { return JSON.parse(sessionStorage.getItem(TOKEN_KEY)) || null; } catch { return null; }
}

function saveTokens(pair) {
  const t = { access: pair.access_token, refresh: pair.refresh_token,
              expires: Date.now() + pair.expires_in * 1000 };
  sessionStorage.setItem(TOKEN_KEY, JSON.stringify(t));
  scheduleRefresh();
}

function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  const t = tokens();
  if (!t) return;
  // refresh a minute before the access token expires (at least 5 s from now)
  const ms = Math.max(5000, t.expires - Date.now() - 60000);
  state.refreshTimer = setTimeout(() => refreshTokens().catch(() => {}), ms);
}

async function refreshTokens() {
  if (state.refreshing) return state.refreshing;
  const t = tokens();
  if (!t) throw new Error("not logged in");
  state.refreshing = (async () => {
    try {
      const res = await fetch(`${API}/auth/refresh`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: t.refresh }),
      });
      if (!res.ok) {
        endSession("Your session has ended; please log in again.");
        throw new Error("refresh failed");
      }
      saveTokens(await res.json());
    } finally {
      state.refreshing = null;
    }
  })();
  return state.refreshing;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, { method = "GET", body, retry = true } = {}) {
  const t = tokens();
  const headers = {};
  if (t) headers.Authorization = `Bearer ${t.access}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(`${API}${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401 && retry && t) {
    await refreshTokens();
    return api(path, { method, body, retry: false });
  }
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try { message = (await res.json()).error?.message || message; } catch { /* not JSON */ }
    throw new ApiError(res.status, message);
  }
  return res.status === 204 ? null : res.json();
}

function inWorkspace(workspace, path) {
  return `/workspaces/${encodeURIComponent(workspace)}${path}`;
}

function data(path, options = {}) {
  // a call about the workspace's data: the shown one, or options.workspace (a save that
  // started before a switch still goes to the workspace it belongs to)
  const workspace = options.workspace || state.workspace?.id;
  if (!workspace) return Promise.reject(new Error("no workspace chosen"));
  return api(inWorkspace(workspace, path), options);
}

// -- login / logout -------------------------------------------------------------------------

async function login(event) {
  event.preventDefault();
  const error = $("login-error");
  error.textContent = "";
  $("login-submit").disabled = true;
  try {
    const form = new URLSearchParams({ username: $("login-username").value,
                                       password: $("login-password").value });
    const res = await fetch(`${API}/auth/token`, { method: "POST", body: form });
    if (!res.ok) {
      let message = "Login failed.";
      try { message = (await res.json()).error?.message || message; } catch { /* ignore */ }
      error.textContent = message;
      return;
    }
    saveTokens(await res.json());
    $("login-password").value = "";
    await start();
  } catch (exc) {
    error.textContent = `Login failed: ${exc.message}`;
  } finally {
    $("login-submit").disabled = false;
  }
}

async function logout() {
  try { await api("/auth/logout", { method: "POST", retry: false }); } catch { /* gone anyway */ }
  endSession("");
}

function endSession(message) {
  state.loggedIn = false;
  clearTimeout(state.refreshTimer);
  clearTimeout(state.wsTimer);
  sessionStorage.removeItem(TOKEN_KEY);
  closeSocket();
  purgeCharts();
  purgeCharts($("portfolio-tables"));
  $("grid").replaceChildren();
  $("portfolio-tables").replaceChildren();
  state.generation += 1;
  state.workspace = null;
  state.workspaces = [];
  state.portfolio = null;
  state.portfolioKpis = null;
  state.view = "board";
  state.dashboard = null;
  state.board = null;
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message;
  $("login-username").focus();
}

// -- start ----------------------------------------------------------------------------------

async function start() {
  state.me = await api("/me");
  state.loggedIn = true;
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  state.workspaces = await api("/workspaces");
  renderWorkspacePicker();
  if (state.workspaces.length === 0) {
    $("user-info").textContent = state.me.display_name || state.me.username;
    $("grid").replaceChildren(el("p", { class: "muted empty-note",
      text: "You are not a member of any workspace yet: ask an administrator to add you." }));
    return;
  }
  const wanted = fromHash();
  const chosen = workspaceById(wanted.ws) || workspaceById(localStorage.getItem(WS_KEY))
    || workspaceById("default") || state.workspaces[0];
  await enterWorkspace(chosen.id, { view: wanted.view });
  if (wanted.ws && wanted.ws !== chosen.id) {
    $("announcer").textContent = `You are not a member of workspace ${wanted.ws}; showing ${chosen.name}.`;
  }
  connectSocket();
  $("main").focus({ preventScroll: true });
}

// -- workspaces -----------------------------------------------------------------------------

function workspaceById(id) {
  return id ? state.workspaces.find((w) => w.id === id) || null : null;
}

function workspaceLabel(w) {
  return `${w.name} (${w.role})`;
}

function renderWorkspacePicker() {
  const picker = $("workspace-picker");
  picker.replaceChildren(...state.workspaces.map((w) =>
    el("option", { value: w.id, text: workspaceLabel(w) })));
  if (state.workspace) picker.value = state.workspace.id;
  $("workspace-field").hidden = state.workspaces.length < 2;
  $("portfolio-button").hidden = state.workspaces.length < 2;
}

function fromHash() {
  // "#ws=<id>" opens that workspace, "&view=portfolio" its portfolio page
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  return { ws: params.get("ws") || null, view: params.get("view") === "portfolio" ? "portfolio" : "board" };
}

function writeHash() {
  if (!state.workspace) return;
  const params = new URLSearchParams({ ws: state.workspace.id });
  if (state.view === "portfolio") params.set("view", "portfolio");
  const hash = `#${params}`;
  // replaceState: no hashchange event, and the back button does not step through switches
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

function themeFor(workspace) {
  // as the server decides: the user's own theme, unless it is the default one, in which case
  // the workspace's default theme
  const own = state.me?.theme;
  if (own && own !== "corporate") return own;
  return workspace?.settings?.default_theme || own || "corporate";
}

function showWorkspaceInfo() {
  const w = state.workspace;
  const s = w.settings || {};
  const parts = [s.currency, s.timezone].filter(Boolean);
  const meta = $("workspace-meta");
  meta.textContent = parts.join(" · ");
  meta.title = `${w.name}: amounts in ${s.currency || "?"}, days in the ${s.timezone || "?"} time zone`
    + (s.fiscal_year_start ? `, fiscal year from month ${s.fiscal_year_start}` : "");
  meta.dataset.workspace = w.id;
  $("user-info").textContent = `${state.me.display_name || state.me.username} (${w.role})`;
}

function dashKey(workspace) {
  return `${DASH_KEY}.${workspace}`;
}

async function enterWorkspace(id, { view = "board" } = {}) {
  const workspace = workspaceById(id);
  if (!workspace) throw new Error(`not a member of workspace ${id}`);
  const generation = ++state.generation;
  await flushSave();
  if (generation !== state.generation) return;
  unsubscribe();
  state.workspace = workspace;
  state.dashboard = null;
  state.board = null;
  state.layout = [];
  state.alerts = [];
  state.kpis = [];
  renderAlerts();
  purgeCharts();
  $("grid").replaceChildren();
  localStorage.setItem(WS_KEY, id);
  $("workspace-picker").value = id;
  showWorkspaceInfo();
  state.theme = themeFor(workspace);
  $("theme-picker").value = state.theme;
  const [kpis, dashboards] = await Promise.all([data("/kpis"), data("/dashboards")]);
  if (generation !== state.generation) return;
  state.kpis = kpis;
  state.dashboards = dashboards.length ? dashboards : [await createDefaultDashboard()];
  if (generation !== state.generation) return;
  const picker = $("dashboard-picker");
  picker.replaceChildren(...state.dashboards.map((d) => el("option", { value: d.id, text: d.name })));
  const remembered = localStorage.getItem(dashKey(id))
    || (id === "default" ? localStorage.getItem(DASH_KEY) : null);
  const chosen = state.dashboards.find((d) => d.id === remembered) || state.dashboards[0];
  picker.value = chosen.id;
  await openDashboard(chosen.id, generation);
  if (generation !== state.generation) return;
  await showView(view === "portfolio" && state.workspaces.length > 1 ? "portfolio" : "board");
}

async function switchWorkspace(id) {
  const workspace = workspaceById(id);
  if (!workspace || workspace.id === state.workspace?.id) return;
  try {
    await enterWorkspace(id, { view: "board" });
    if (state.workspace?.id === id) $("announcer").textContent = `Workspace ${workspace.name}`;
  } catch (exc) {
    $("announcer").textContent = `Could not open workspace ${workspace.name}: ${exc.message}`;
  }
}

async function createDefaultDashboard() {
  const ids = state.kpis.slice(0, 4).map((k) => k.id);
  const layout = ids.map((id, i) => ({ id: `card:${id}`, x: i * 3, y: 0, w: 3, h: 2 }));
  if (ids[0]) layout.push({ id: `chart:${ids[0]}`, x: 0, y: 2, w: 8, h: 5 });
  layout.push({ id: "insights", x: 8, y: 2, w: 4, h: 5 });
  return data("/dashboards", { method: "POST", body: {
    name: "Overview", spec: { kpis: ids, grain: "day", range: { last: "30d" }, layout } } });
}

function canEdit() { return !!state.dashboard && state.dashboard.owner_id === state.me.id; }
// the role that counts is the user's role in the workspace shown
function canAct() { return ACTING_ROLES.includes(state.workspace?.role); }

async function openDashboard(id, generation = state.generation) {
  const dashboard = await data(`/dashboards/${encodeURIComponent(id)}`);
  if (generation !== state.generation) return;
  state.dashboard = dashboard;
  localStorage.setItem(dashKey(state.workspace.id), id);
  const spec = state.dashboard.spec || {};
  $("range-picker").value = spec.range?.last || "30d";
  $("grain-picker").value = spec.grain || "day";
  const editable = canEdit();
  for (const c of ["range-picker", "grain-picker", "filter-dim", "filter-value", "filter-add"]) {
    $(c).disabled = !editable;
  }
  $("readonly-note").hidden = editable;
  $("grid").classList.toggle("readonly", !editable);
  state.layout = normaliseLayout(spec.layout || []);
  purgeCharts();
  $("grid").replaceChildren();
  renderFilters();
  const board = await data(`/dashboards/${encodeURIComponent(id)}/render?theme=${state.theme}`);
  if (generation !== state.generation || state.dashboard?.id !== id) return;
  applyBoard(board, { force: true });
  subscribe();
}

function normaliseLayout(items) {
  return items.filter((i) => i && typeof i.id === "string").map((i) => ({
    id: i.id, x: clamp(int(i.x, 0), 0, COLS - 1), y: Math.max(0, int(i.y, 0)),
    w: clamp(int(i.w, 3), 1, COLS), h: clamp(int(i.h, 2), 1, MAX_ROWS),
  })).map((i) => ({ ...i, w: Math.min(i.w, COLS - i.x) }));
}

const int = (v, d) => (Number.isFinite(Number(v)) ? Math.round(Number(v)) : d);
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

// -- applying a render ----------------------------------------------------------------------

function applyBoard(board, { force = false } = {}) {
  if (!force && state.board && state.board.etag === board.etag) {
    markUpdated(false);
    return;
  }
  const first = !state.board || force;
  state.board = board;
  applyTheme(board.theme);
  state.alerts = board.alerts || [];
  renderAlerts();
  renderWidgets(board);
  markUpdated(!first);
}

function applyTheme(theme) {
  if (!theme) return;
  const root = document.documentElement.style;
  for (const key of ["background", "surface", "text", "muted", "grid", "accent", "good", "bad", "neutral"]) {
    if (theme[key]) root.setProperty(`--${key === "background" ? "bg" : key}`, theme[key]);
  }
  document.documentElement.dataset.theme = theme.name;
  document.documentElement.style.colorScheme = theme.name === "dark" ? "dark" : "light";
}

function markUpdated(announce) {
  const now = new Date();
  const hhmmss = now.toTimeString().slice(0, 8);
  $("updated-at").textContent = `updated ${hhmmss}`;
  $("updated-at").dataset.at = String(now.getTime());
  if (announce) $("announcer").textContent = `Dashboard updated at ${hhmmss}`;
}

function widgetMap(board) {
  // layout id → widget: cards by KPI, charts in layout order (as the server renders them)
  const map = new Map();
  const lines = (board.widgets || []).filter((w) => w.type === "line");
  for (const w of board.widgets || []) {
    if (w.type === "kpi") map.set(`card:${w.data.kpi_id}`, w);
    else if (w.type === "recommendations") map.set("insights", w);
  }
  const used = new Set();
  for (const item of state.layout) {
    if (!item.id.startsWith("chart:")) continue;
    const kpi = item.id.split(":")[1];
    const idx = lines.findIndex((w, i) => !used.has(i) && w.data.kpi_id === kpi);
    if (idx >= 0) { used.add(idx); map.set(item.id, lines[idx]); }
  }
  return map;
}

function renderWidgets(board) {
  const map = widgetMap(board);
  // cards the layout does not place go below everything else
  let bottom = state.layout.reduce((m, i) => Math.max(m, i.y + i.h), 0);
  let col = 0;
  for (const id of map.keys()) {
    if (state.layout.some((i) => i.id === id)) continue;
    if (col + 3 > COLS) { col = 0; bottom += 2; }
    state.layout.push({ id, x: col, y: bottom, w: 3, h: 2 });
    col += 3;
  }
  const grid = $("grid");
  const seen = new Set();
  for (const item of sortedLayout()) {
    const widget = map.get(item.id);
    if (!widget) continue;
    seen.add(item.id);
    let node = grid.querySelector(`[data-id="${CSS.escape(item.id)}"]`);
    if (!node) {
      node = widgetShell(item, widget);
      grid.append(node);
    }
    fillWidget(node, widget);
    place(node, item);
  }
  for (const node of [...grid.children]) {
    if (!seen.has(node.dataset.id)) { purgeCharts(node); node.remove(); }
  }
  orderDom();
}

function sortedLayout() {
  return [...state.layout].sort((a, b) => a.y - b.y || a.x - b.x);
}

function orderDom() {
  // DOM order follows the visual order, so Tab moves left→right, top→bottom
  const grid = $("grid");
  const focused = document.activeElement;
  const nodes = sortedLayout()
    .map((i) => grid.querySelector(`[data-id="${CSS.escape(i.id)}"]`)).filter(Boolean);
  const current = [...grid.children];
  if (nodes.length === current.length && nodes.every((n, i) => n === current[i])) return;
  for (const n of nodes) grid.append(n);
  if (focused && grid.contains(focused)) focused.focus({ preventScroll: true });
}

function titleOf(widget, id) {
  const dim = widget.type === "line" ? id.split(":")[2] : "";
  return `${widget.data.title || "Widget"}${dim ? ` by ${dim}` : ""}`;
}

function widgetShell(item, widget) {
  const headId = `h-${item.id.replace(/[^a-z0-9_-]/gi, "_")}`;
  const kind = widget.type === "kpi" ? "card" : widget.type === "line" ? "chart" : "insights";
  const node = el("article", {
    class: `widget widget-${kind}`, "data-id": item.id, tabindex: "0",
    "aria-labelledby": headId, "aria-roledescription": "movable widget",
    "aria-describedby": "grid-help",
  },
  el("header", { class: "widget-head" },
    el("h3", { id: headId, text: titleOf(widget, item.id) }),
    el("span", { class: "grip", "aria-hidden": "true", text: "⠿" })),
  el("div", { class: kind === "chart" ? "widget-body chart-body" : "widget-body" }),
  el("div", { class: "resize-handle", "aria-hidden": "true" }));
  node.querySelector(".widget-head").addEventListener("pointerdown", (e) => startDrag(e, node, "move"));
  node.querySelector(".resize-handle").addEventListener("pointerdown", (e) => startDrag(e, node, "resize"));
  node.addEventListener("keydown", (e) => keyMove(e, node));
  return node;
}

function place(node, item) {
  node.style.gridColumn = `${item.x + 1} / span ${item.w}`;
  node.style.gridRow = `${item.y + 1} / span ${item.h}`;
  node.dataset.x = item.x; node.dataset.y = item.y; node.dataset.w = item.w; node.dataset.h = item.h;
}

function fillWidget(node, widget) {
  const body = node.querySelector(".widget-body");
  node.querySelector("h3").textContent = titleOf(widget, node.dataset.id);
  if (widget.type === "kpi") fillCard(body, widget.data);
  else if (widget.type === "line") fillChart(body, widget.data);
  else if (widget.type === "recommendations") fillInsights(body, widget.data);
}

const numberFormat = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

export function formatValue(value, unit) {
  if (value === null || value === undefined) return "—";
  const n = numberFormat.format(value);
  if (!unit) return n;
  if (unit === "$" || unit === "€" || unit === "£") return value < 0 ? `-${unit}${n.slice(1)}` : `${unit}${n}`;
  if (unit === "%") return `${n}%`;
  return `${n} ${unit}`;
}

function signed(pct) {
  return `${pct > 0 ? "+" : ""}${pct.toFixed(1)}%`;
}

function fillCard(body, d) {
  const status = d.status || "neutral";
  const color = d.color || `var(--${status})`;
  const trend = d.trend === null || d.trend === undefined
    ? el("span", { class: "kpi-trend muted", text: "no previous period" })
    : el("span", { class: "kpi-trend", style: `color:${color}`,
                   text: `${ARROWS[d.direction] || ""} ${signed(d.trend)}`.trim() },
         el("span", { class: "muted", text: " vs previous" }));
  let target;
  if (d.target === null || d.target === undefined) {
    target = el("p", { class: "kpi-line kpi-target muted", text: "No target" });
  } else {
    const cmp = d.comparison === null || d.comparison === undefined ? "" : ` (${signed(d.comparison)})`;
    target = el("p", { class: "kpi-line kpi-target",
                       text: `Target ${formatValue(d.target, d.unit)}${cmp}` });
  }
  body.replaceChildren(
    el("p", { class: "kpi-value", "data-kpi": d.kpi_id, "data-value": String(d.value),
              "data-unit": d.unit || "", text: formatValue(d.value, d.unit) }),
    el("p", { class: "kpi-line" }, trend, " ",
       el("span", { class: "status-pill", style: `background:${color}`,
                    "data-status": status, text: STATUS_WORDS[status] || status })),
    target,
  );
}

function fillChart(body, d) {
  let div = body.querySelector(".chart");
  let note = body.querySelector(".chart-note");
  if (!div) {
    div = el("div", { class: "chart", role: "img", "aria-label": `${d.title} line chart` });
    note = el("p", { class: "chart-note muted" });
    body.replaceChildren(div, note);
    new ResizeObserver(() => { if (window.Plotly && div.data) window.Plotly.Plots.resize(div); })
      .observe(div);
  }
  const fig = d.figure || { data: [], layout: {} };
  const traces = fig.data || [];
  const isForecast = (t) => /forecast|interval|band|predict/i.test(`${t.name || ""} ${t.meta || ""}`) || !!t.fill;
  const isAnomaly = (t) => /anomal/i.test(`${t.name || ""} ${t.meta || ""}`);
  const notes = [];
  if (traces.some(isForecast)) notes.push("shaded band: forecast interval");
  if (traces.some(isAnomaly)) notes.push("marked points: anomalies");
  note.textContent = notes.join(" · ");
  note.hidden = notes.length === 0;
  const points = traces.reduce((n, t) => n + (t.y ? t.y.length : 0), 0);
  div.setAttribute("aria-label", `${d.title} line chart, ${traces.length} series, ${points} points`
    + (notes.length ? `; ${notes.join("; ")}` : ""));
  if (!window.Plotly) { div.textContent = "Charts need plotly.js, which did not load."; return; }
  const layout = {
    ...(fig.layout || {}), title: undefined, autosize: true,
    margin: { t: 8, r: 12, b: 36, l: 56 },
    showlegend: (fig.layout && fig.layout.showlegend) || notes.length > 0,
    legend: { ...(fig.layout?.legend || {}), orientation: "h", y: -0.18 },
  };
  window.Plotly.react(div, traces, layout, { responsive: true, displaylogo: false });
}

function fillInsights(body, d) {
  const items = d.items || [];
  if (items.length === 0) {
    body.replaceChildren(el("p", { class: "muted", text: "No insights yet." }));
    return;
  }
  body.replaceChildren(el("ol", { class: "insights" }, items.map((i) => el("li", { class: "insight" },
    el("p", { class: "insight-text", text: i.text }),
    el("span", { class: "score", text: `score ${Number(i.score).toFixed(2)}` })))));
}

function purgeCharts(root = $("grid")) {
  if (!window.Plotly) return;
  for (const div of root.querySelectorAll(".chart")) window.Plotly.purge(div);
}

// -- alerts ---------------------------------------------------------------------------------

function renderAlerts() {
  const list = $("alerts-list");
  const alerts = state.alerts.filter((a) => ["firing", "pending", "recovering"].includes(a.state));
  $("alerts-count").textContent = String(alerts.length);
  $("alerts-count").classList.toggle("zero", alerts.length === 0);
  $("alerts-empty").hidden = alerts.length > 0;
  list.replaceChildren(...alerts.map(alertItem));
}

function kpiName(id) {
  return state.kpis.find((k) => k.id === id)?.name || id;
}

function alertItem(a) {
  const slice = Object.entries(Array.isArray(a.slice) ? Object.fromEntries(a.slice) : a.slice || {})
    .map(([k, v]) => `${k}=${v}`).join(", ");
  const unit = state.kpis.find((k) => k.id === a.kpi_id)?.unit || "";
  const item = el("li", { class: "alert", "data-fingerprint": a.fingerprint, "data-state": a.state },
    el("span", { class: "sev", text: a.severity }),
    el("span", { class: "what" }, el("strong", { text: kpiName(a.kpi_id) }),
       slice ? ` (${slice})` : "", ` — ${a.state}, value ${formatValue(a.value, unit)}`,
       a.threshold !== null && a.threshold !== undefined ? `, threshold ${formatValue(a.threshold, unit)}` : "",
       ` · rule ${a.rule_id}`));
  if (a.acknowledgement) {
    item.append(el("span", { class: "acked", text: `acknowledged by ${a.acknowledgement.by}` }));
  }
  if (canAct()) {
    const actions = el("span", { class: "actions" });
    if (!a.acknowledgement) {
      actions.append(el("button", { type: "button", class: "ack",
        "aria-label": `Acknowledge ${kpiName(a.kpi_id)} alert`, text: "Acknowledge",
        onclick: () => acknowledge(a) }));
    }
    actions.append(el("button", { type: "button", class: "silence",
      "aria-label": `Silence ${kpiName(a.kpi_id)} alerts for 2 hours`, text: "Silence 2h",
      onclick: () => silence(a) }));
    item.append(actions);
  }
  return item;
}

async function acknowledge(a) {
  try {
    const updated = await data(`/alerts/${encodeURIComponent(a.fingerprint)}/ack`,
                              { method: "POST", body: { comment: "" } });
    upsertAlert(updated);
    $("announcer").textContent = `${kpiName(a.kpi_id)} alert acknowledged`;
  } catch (exc) {
    $("announcer").textContent = `Could not acknowledge: ${exc.message}`;
  }
}

async function silence(a) {
  try {
    await data("/silences", { method: "POST", body: {
      matchers: [`kpi=${a.kpi_id}`], duration: "2h", comment: "silenced from the dashboard" } });
    $("announcer").textContent = `${kpiName(a.kpi_id)} alerts silenced for 2 hours`;
  } catch (exc) {
    $("announcer").textContent = `Could not silence: ${exc.message}`;
  }
}

function upsertAlert(alert) {
  const i = state.alerts.findIndex((x) => x.fingerprint === alert.fingerprint);
  if (i >= 0) state.alerts[i] = alert; else state.alerts.push(alert);
  renderAlerts();
}

// -- filters, range, grain, theme -----------------------------------------------------------

function dashboardKpis() {
  const spec = state.dashboard?.spec || {};
  return spec.kpis && spec.kpis.length ? spec.kpis : state.kpis.map((k) => k.id);
}

function renderFilters() {
  const ids = new Set(dashboardKpis());
  const dims = [...new Set(state.kpis.filter((k) => ids.has(k.id)).flatMap((k) => k.dimensions || []))].sort();
  const dimSelect = $("filter-dim");
  const previous = dimSelect.value;
  dimSelect.replaceChildren(...dims.map((d) => el("option", { value: d, text: d })));
  if (dims.includes(previous)) dimSelect.value = previous;
  const filters = state.dashboard?.spec?.filters || {};
  const chips = [];
  for (const [dim, values] of Object.entries(filters)) {
    for (const v of [].concat(values)) {
      chips.push(el("li", { class: "chip" }, `${dim} = ${v}`,
        el("button", { type: "button", "aria-label": `Remove filter ${dim} = ${v}`, text: "×",
                       disabled: !canEdit(), onclick: () => removeFilter(dim, v) })));
    }
  }
  $("filter-chips").replaceChildren(...chips);
  $("filter-values").replaceChildren();
}

async function loadFilterValues() {
  const dim = $("filter-dim").value;
  const kpi = state.kpis.find((k) => dashboardKpis().includes(k.id) && (k.dimensions || []).includes(dim));
  if (!dim || !kpi) return;
  try {
    const series = await data(`/series/${encodeURIComponent(kpi.id)}?grain=month&by=${encodeURIComponent(dim)}`);
    const list = Array.isArray(series) ? series : series.series || [];
    const values = [...new Set(list.map((s) => s.group).filter((g) => g !== null && g !== undefined))].sort();
    $("filter-values").replaceChildren(...values.map((v) => el("option", { value: v })));
  } catch { /* suggestions are optional */ }
}

async function addFilter(event) {
  event.preventDefault();
  const dim = $("filter-dim").value;
  const value = $("filter-value").value.trim();
  if (!dim || !value || !canEdit()) return;
  const filters = { ...(state.dashboard.spec.filters || {}) };
  const values = new Set([].concat(filters[dim] || []));
  values.add(value);
  filters[dim] = [...values];
  $("filter-value").value = "";
  await saveSpec({ filters });
}

async function removeFilter(dim, value) {
  const filters = { ...(state.dashboard.spec.filters || {}) };
  const rest = [].concat(filters[dim] || []).filter((v) => v !== value);
  if (rest.length) filters[dim] = rest; else delete filters[dim];
  await saveSpec({ filters });
}

function saveSpec(changes, { rerender = true } = {}) {
  // the local spec changes at once; saves go out one after another, each with the latest spec
  if (!canEdit()) return Promise.resolve();
  state.dashboard.spec = { ...state.dashboard.spec, ...changes, layout: cleanLayout() };
  if (rerender) renderFilters();
  const dashboard = state.dashboard;
  const workspace = state.workspace.id;
  state.saving = state.saving.then(() => persist(workspace, dashboard, rerender)).catch((exc) => {
    $("announcer").textContent = `Could not save: ${exc.message}`;
  });
  return state.saving;
}

function flushSave() {
  // a layout change waiting for its save goes out now (before a workspace switch)
  if (state.saveTimer !== null) {
    clearTimeout(state.saveTimer);
    state.saveTimer = null;
    saveSpec({}, { rerender: false });
  }
  return state.saving;
}

async function persist(workspace, dashboard, rerender) {
  // saves the dashboard's latest spec in the workspace it belongs to, even when another
  // workspace or dashboard is shown by now
  const id = dashboard.id;
  const shown = () => state.workspace?.id === workspace && state.dashboard?.id === id;
  const spec = shown() ? state.dashboard.spec : dashboard.spec;
  const saved = await data(`/dashboards/${encodeURIComponent(id)}`,
                           { method: "PATCH", body: { spec }, workspace });
  if (!shown()) return;
  state.dashboard = { ...saved, spec: state.dashboard.spec };
  if (rerender && state.dashboard.spec === spec) {
    const board = await data(`/dashboards/${encodeURIComponent(id)}/render?theme=${state.theme}`);
    if (!shown()) return;
    applyBoard(board);
  }
  // the live subscription keeps the spec it was made with: subscribe again with the new one
  if (state.dashboard.spec === spec) subscribe();
}

function cleanLayout() {
  return state.layout.map(({ id, x, y, w, h }) => ({ id, x, y, w, h }));
}

async function changeTheme() {
  const theme = $("theme-picker").value;
  unsubscribe();
  state.theme = theme;
  try {
    state.me = await api("/me", { method: "PATCH", body: { theme } });
  } catch (exc) {
    $("announcer").textContent = `Could not save the theme: ${exc.message}`;
  }
  const dashboard = state.dashboard;
  if (!dashboard) return;
  const board = await data(`/dashboards/${encodeURIComponent(dashboard.id)}/render?theme=${theme}`);
  if (state.dashboard !== dashboard || state.theme !== theme) return;
  applyBoard(board, { force: true });
  subscribe();
  if (state.view === "portfolio") drawPortfolio();
  $("announcer").textContent = `Theme ${theme}`;
}

// -- portfolio: one KPI across the user's workspaces ----------------------------------------

async function showView(view) {
  state.view = view === "portfolio" && state.workspaces.length > 1 ? "portfolio" : "board";
  const portfolio = state.view === "portfolio";
  $("portfolio-view").hidden = !portfolio;
  for (const id of ["board-view", "alerts-panel", "filters", "range-field", "grain-field"]) {
    $(id).hidden = portfolio;
  }
  $("portfolio-button").setAttribute("aria-pressed", String(portfolio));
  writeHash();
  if (portfolio) await loadPortfolio();
}

async function portfolioKpis() {
  // the KPIs of every workspace of the user, by id (the name and unit of the first that has it)
  if (state.portfolioKpis) return state.portfolioKpis;
  const lists = await Promise.all(state.workspaces.map((w) =>
    data("/kpis", { workspace: w.id }).catch(() => [])));
  const byId = new Map();
  for (const list of lists) for (const k of list) if (!byId.has(k.id)) byId.set(k.id, k);
  state.portfolioKpis = [...byId.values()].sort((a, b) => (a.name || a.id).localeCompare(b.name || b.id));
  return state.portfolioKpis;
}

async function fillPortfolioPickers() {
  const kpis = await portfolioKpis();
  const picker = $("portfolio-kpi");
  const previous = picker.value;
  picker.replaceChildren(...kpis.map((k) => el("option", { value: k.id, text: k.name || k.id })));
  const followed = (state.me?.followed || []).find((id) => kpis.some((k) => k.id === id));
  picker.value = kpis.some((k) => k.id === previous) ? previous
    : followed || (kpis.find((k) => k.id === "mrr") || kpis[0])?.id || "";
  const rank = $("portfolio-rank");
  if (!rank.options.length) {
    rank.replaceChildren(...PORTFOLIO_RANKS.map(([value, text]) => el("option", { value, text })));
  }
}

async function loadPortfolio() {
  const generation = ++state.portfolioGeneration;
  const status = $("portfolio-status");
  status.textContent = "Loading…";
  $("portfolio-tables").setAttribute("aria-busy", "true");
  try {
    await fillPortfolioPickers();
    const kpi = $("portfolio-kpi").value;
    if (!kpi) {
      status.textContent = "None of your workspaces has a KPI yet.";
      $("portfolio-tables").replaceChildren();
      return;
    }
    const query = new URLSearchParams({ kpi, grain: $("portfolio-grain").value,
                                        rank_by: $("portfolio-rank").value, insights: "true" });
    const answer = await api(`/portfolio?${query}`);
    if (generation !== state.portfolioGeneration) return;
    state.portfolio = answer;
    drawPortfolio();
  } catch (exc) {
    if (generation !== state.portfolioGeneration) return;
    status.textContent = `Could not load the portfolio: ${exc.message}`;
    $("portfolio-tables").replaceChildren();
  } finally {
    if (generation === state.portfolioGeneration) $("portfolio-tables").removeAttribute("aria-busy");
  }
}

function drawPortfolio() {
  const answer = state.portfolio;
  if (!answer) return;
  const widgets = answer.widgets || [];
  $("portfolio-status").textContent = "";
  $("portfolio-tables").replaceChildren(...widgets.map(portfolioTable));
}

const GRAIN_WORDS = { minute: "minute", hour: "hour", day: "day", week: "week", month: "month",
                      quarter: "quarter", year: "year" };

function portfolioTable(widget) {
  const d = widget.data || {};
  const captionId = `portfolio-${String(d.kpi_id).replace(/[^a-z0-9_-]/gi, "_")}`;
  const how = !d.ranked ? "not ranked"
    : d.rank_by === "change" ? "ranked by change, most improved first"
      : `ranked by value, ${d.higher_is_better === false ? "lowest" : "highest"} first`;
  const table = el("table", { class: "portfolio-table", "data-kpi": d.kpi_id, "aria-describedby": `${captionId}-notes` },
    el("caption", { id: captionId }, `${d.title || d.kpi_id} `,
       el("span", { class: "muted", text: `· last complete ${GRAIN_WORDS[d.grain] || d.grain} · ${how}` })),
    el("thead", {}, el("tr", {},
      el("th", { scope: "col", text: "Rank" }),
      el("th", { scope: "col", text: "Workspace" }),
      el("th", { scope: "col", class: "num", text: "Value" }),
      el("th", { scope: "col", class: "num", text: "Change" }),
      el("th", { scope: "col", class: "spark-head", text: "Trend" }),
      el("th", { scope: "col", text: "Top insight" }))),
    el("tbody", {}, (d.rows || []).map((row) => portfolioRow(row, d))));
  const notes = [...(d.notes || [])];
  const missing = d.missing || [];
  if (missing.length) {
    notes.push(`Not defined in ${missing.map((m) => m.workspace_name || m.workspace).join(", ")}.`);
  }
  const wrap = el("div", { class: "portfolio-block" }, table,
    el("p", { id: `${captionId}-notes`, class: "muted portfolio-notes", text: notes.join(" ") }));
  return wrap;
}

function portfolioRow(row, d) {
  const name = row.workspace_name || row.workspace;
  const open = () => openFromPortfolio(row.workspace);
  const tr = el("tr", { class: `portfolio-row${row.workspace === state.workspace?.id ? " current" : ""}`,
                        "data-workspace": row.workspace, onclick: open },
    el("td", { class: "rank", text: row.rank === null || row.rank === undefined ? "—" : String(row.rank) }),
    el("td", {}, el("button", { type: "button", class: "ws-link",
      "aria-label": `Open ${name}'s dashboard`, text: name,
      onclick: (e) => { e.stopPropagation(); open(); } })),
    el("td", { class: "num value", "data-value": row.value === null ? "" : String(row.value),
               text: portfolioValue(row.value, row) }),
    el("td", { class: "num" }, changeCell(row, d)),
    el("td", { class: "spark-cell" }, sparkline(row.sparkline || [], `${name} ${row.title || d.title}`)),
    el("td", { class: "portfolio-insight", text: row.insight?.text || "—" }));
  return tr;
}

const currencyFormats = new Map();

function portfolioValue(value, row) {
  if (value === null || value === undefined) return "no data";
  if (row.currency) {
    let f = currencyFormats.get(row.currency);
    if (!f) {
      try {
        f = new Intl.NumberFormat("en-US", { style: "currency", currency: row.currency,
                                             maximumFractionDigits: 2 });
      } catch { f = null; }
      currencyFormats.set(row.currency, f);
    }
    if (f) return f.format(value);
  }
  return formatValue(value, row.unit);
}

function changeCell(row, d) {
  if (row.change === null || row.change === undefined) {
    return el("span", { class: "change neutral", text: "—", title: "no previous period to compare" });
  }
  // green when the KPI moved its good way (down is good for churn), red otherwise
  const better = row.higher_is_better ?? d.higher_is_better;
  const mood = row.direction === "flat" || row.change === 0 || better === null || better === undefined
    ? "neutral" : (row.change > 0) === better ? "good" : "bad";
  const words = { good: "better", bad: "worse", neutral: "" }[mood];
  return el("span", { class: `change ${mood}`, "data-mood": mood },
    `${ARROWS[row.direction] || ""} ${signed(row.change)}`.trim(),
    words ? el("span", { class: "visually-hidden", text: ` (${words})` }) : null);
}

function sparkline(values, label) {
  // an inline SVG drawn in the theme's accent colour; gaps where a period has no data
  const ns = "http://www.w3.org/2000/svg";
  const w = 120;
  const h = 28;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("role", "img");
  const known = values.filter((v) => v !== null && v !== undefined);
  if (known.length === 0) {
    svg.setAttribute("aria-label", `${label}: no data`);
    return svg;
  }
  const lo = Math.min(...known);
  const hi = Math.max(...known);
  const x = (i) => (values.length === 1 ? w / 2 : 2 + (i * (w - 4)) / (values.length - 1));
  const y = (v) => (hi === lo ? h / 2 : h - 3 - ((v - lo) * (h - 6)) / (hi - lo));
  let run = [];
  const flush = () => {
    if (run.length > 1) {
      const line = document.createElementNS(ns, "polyline");
      line.setAttribute("points", run.join(" "));
      svg.append(line);
    }
    run = [];
  };
  values.forEach((v, i) => {
    if (v === null || v === undefined) flush(); else run.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
  });
  flush();
  const lastIndex = values.length - 1 - [...values].reverse().findIndex((v) => v !== null && v !== undefined);
  const dot = document.createElementNS(ns, "circle");
  dot.setAttribute("cx", x(lastIndex).toFixed(1));
  dot.setAttribute("cy", y(values[lastIndex]).toFixed(1));
  dot.setAttribute("r", "2.2");
  svg.append(dot);
  svg.setAttribute("aria-label", `${label}: ${known.length} periods, from ${numberFormat.format(known[0])} `
    + `to ${numberFormat.format(known[known.length - 1])}`);
  return svg;
}

async function openFromPortfolio(workspace) {
  if (!workspaceById(workspace)) return;
  if (workspace === state.workspace?.id) {
    await showView("board");
  } else {
    await enterWorkspace(workspace, { view: "board" });
  }
  $("main").focus({ preventScroll: true });
  $("announcer").textContent = `Workspace ${state.workspace.name}`;
}

// -- layout editing (pointer and keyboard) --------------------------------------------------

function overlaps(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

function resolve(layout, moved) {
  // the moved item stays; anything it overlaps is pushed down, cascading
  const others = layout.filter((i) => i !== moved).sort((a, b) => a.y - b.y || a.x - b.x);
  const placed = [moved];
  for (const it of others) {
    let hit;
    while ((hit = placed.find((p) => overlaps(p, it)))) it.y = hit.y + hit.h;
    placed.push(it);
  }
  return layout;
}

function applyLayout(next) {
  state.layout = next;
  const grid = $("grid");
  for (const item of state.layout) {
    const node = grid.querySelector(`[data-id="${CSS.escape(item.id)}"]`);
    if (node) place(node, item);
  }
}

function cellSize() {
  const grid = $("grid");
  const style = getComputedStyle(grid);
  const gap = parseFloat(style.columnGap) || 12;
  const rowGap = parseFloat(style.rowGap) || 12;
  const colW = (grid.clientWidth - gap * (COLS - 1)) / COLS;
  const rowH = parseFloat(getComputedStyle(document.documentElement).getPropertyValue("--row-h")) || 56;
  return { cx: colW + gap, cy: rowH + rowGap };
}

function startDrag(event, node, mode) {
  if (!canEdit() || event.button !== 0) return;
  event.preventDefault();
  node.focus({ preventScroll: true });
  const snapshot = state.layout.map((i) => ({ ...i }));
  const origin = snapshot.find((i) => i.id === node.dataset.id);
  if (!origin) return;
  const { cx, cy } = cellSize();
  const sx = event.clientX;
  const sy = event.clientY;
  const target = event.currentTarget;
  target.setPointerCapture(event.pointerId);
  node.classList.add("dragging");
  let changed = false;
  const move = (e) => {
    const dx = Math.round((e.clientX - sx) / cx);
    const dy = Math.round((e.clientY - sy) / cy);
    const next = snapshot.map((i) => ({ ...i }));
    const it = next.find((i) => i.id === origin.id);
    if (mode === "move") {
      it.x = clamp(origin.x + dx, 0, COLS - origin.w);
      it.y = clamp(origin.y + dy, 0, 200);
    } else {
      it.w = clamp(origin.w + dx, 1, COLS - origin.x);
      it.h = clamp(origin.h + dy, 1, MAX_ROWS);
    }
    changed = it.x !== origin.x || it.y !== origin.y || it.w !== origin.w || it.h !== origin.h;
    applyLayout(resolve(next, it));
  };
  const end = () => {
    target.removeEventListener("pointermove", move);
    target.removeEventListener("pointerup", end);
    target.removeEventListener("pointercancel", end);
    node.classList.remove("dragging");
    if (changed) {
      orderDom();
      announceItem(node.dataset.id, mode === "move" ? "moved" : "resized");
      scheduleSave();
    }
  };
  target.addEventListener("pointermove", move);
  target.addEventListener("pointerup", end);
  target.addEventListener("pointercancel", end);
}

function keyMove(event, node) {
  if (event.target !== node || !canEdit()) return;
  const delta = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[event.key];
  if (!delta) return;
  event.preventDefault();
  const next = state.layout.map((i) => ({ ...i }));
  const it = next.find((i) => i.id === node.dataset.id);
  if (!it) return;
  if (event.shiftKey) {
    it.w = clamp(it.w + delta[0], 1, COLS - it.x);
    it.h = clamp(it.h + delta[1], 1, MAX_ROWS);
  } else {
    it.x = clamp(it.x + delta[0], 0, COLS - it.w);
    it.y = clamp(it.y + delta[1], 0, 200);
  }
  applyLayout(resolve(next, it));
  orderDom();
  node.focus({ preventScroll: true });
  announceItem(it.id, event.shiftKey ? "resized" : "moved");
  scheduleSave();
}

function announceItem(id, verb) {
  const it = state.layout.find((i) => i.id === id);
  const node = $("grid").querySelector(`[data-id="${CSS.escape(id)}"]`);
  const name = node?.querySelector("h3")?.textContent || id;
  if (it) {
    $("announcer").textContent = `${name} ${verb}: column ${it.x + 1}, row ${it.y + 1}, `
      + `${it.w} columns wide, ${it.h} rows high`;
  }
}

function scheduleSave() {
  clearTimeout(state.saveTimer);
  state.saveTimer = setTimeout(() => {
    state.saveTimer = null;
    saveSpec({}, { rerender: false });
  }, SAVE_DELAY_MS);
}

// -- live updates ---------------------------------------------------------------------------

function setConn(text, cls) {
  const c = $("conn-status");
  c.textContent = text;
  c.className = `conn ${cls}`;
}

function connectSocket() {
  clearTimeout(state.wsTimer);
  if (!state.loggedIn) return;
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}${API}/ws`);
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: tokens()?.access || "" }));
  ws.onmessage = (event) => {
    let msg;
    try { msg = JSON.parse(event.data); } catch { return; }
    if (msg.type === "ready") {
      state.wsRetries = 0;
      setConn("live", "live");
      subscribe();
    } else if (msg.type === "dashboard") {
      if (isShown(msg.workspace) && state.dashboard && msg.id === state.dashboard.id
          && msg.data?.theme?.name === state.theme) applyBoard(msg.data);
    } else if (msg.type === "alerts") {
      if (!isShown(msg.workspace)) return;
      state.alerts = msg.items || [];
      renderAlerts();
      $("announcer").textContent = `Alerts changed: ${state.alerts.length} active`;
    } else if (msg.type === "alert" && msg.alert) {
      if (isShown(msg.workspace)) upsertAlert(msg.alert);
    } else if (msg.type === "error" && msg.code === "unauthenticated") {
      ws.authFailed = true;
    }
  };
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    state.ws = null;
    if (!state.loggedIn) return;
    setConn("reconnecting…", "reconnecting");
    const delay = Math.min(30000, 1000 * 2 ** state.wsRetries) * (0.8 + Math.random() * 0.4);
    state.wsRetries += 1;
    state.wsTimer = setTimeout(async () => {
      if (ws.authFailed || event.code === 4401) {
        try { await refreshTokens(); } catch { return; }
      }
      connectSocket();
    }, delay);
  };
}

function closeSocket() {
  const ws = state.ws;
  state.ws = null;
  if (ws) ws.close(1000);
  setConn("", "");
}

function send(msg) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
}

function isShown(workspace) {
  // pushes name their workspace: those about another one (e.g. alerts of a workspace left a
  // moment ago, or one that crossed the unsubscribe) are not shown
  return !!state.workspace && (workspace === undefined || workspace === state.workspace.id);
}

function subscribe() {
  if (state.dashboard && state.workspace) {
    send({ type: "subscribe", workspace: state.workspace.id, dashboard: state.dashboard.id,
           theme: state.theme });
  }
}

function unsubscribe() {
  if (state.dashboard && state.workspace) {
    send({ type: "unsubscribe", workspace: state.workspace.id, dashboard: state.dashboard.id });
  }
}

// -- wiring ---------------------------------------------------------------------------------

function init() {
  $("login-form").addEventListener("submit", login);
  $("logout-button").addEventListener("click", logout);
  $("theme-picker").addEventListener("change", changeTheme);
  $("workspace-picker").addEventListener("change", (e) => switchWorkspace(e.target.value));
  $("dashboard-picker").addEventListener("change", async (e) => {
    unsubscribe();
    await flushSave();
    await openDashboard(e.target.value);
    if (state.view !== "board") await showView("board");
  });
  $("portfolio-button").addEventListener("click", () =>
    showView(state.view === "portfolio" ? "board" : "portfolio"));
  for (const id of ["portfolio-kpi", "portfolio-grain", "portfolio-rank"]) {
    $(id).addEventListener("change", () => loadPortfolio());
  }
  window.addEventListener("hashchange", () => {
    // a pasted or followed link: open the workspace (and view) it names
    if (!state.loggedIn || !state.workspace) return;
    const wanted = fromHash();
    const target = workspaceById(wanted.ws);
    if (target && target.id !== state.workspace.id) {
      enterWorkspace(target.id, { view: wanted.view }).catch((exc) => {
        $("announcer").textContent = `Could not open workspace ${target.name}: ${exc.message}`;
      });
    } else if (wanted.ws && !target) {
      writeHash();
      $("announcer").textContent = `You are not a member of workspace ${wanted.ws}; `
        + `still showing ${state.workspace.name}.`;
    } else if (wanted.view !== state.view) {
      showView(wanted.view);
    } else {
      writeHash();
    }
  });
  $("range-picker").addEventListener("change", (e) =>
    saveSpec({ range: { last: e.target.value } }));
  $("grain-picker").addEventListener("change", (e) => saveSpec({ grain: e.target.value }));
  $("filter-form").addEventListener("submit", addFilter);
  // value suggestions are fetched when asked for (a series query records a "view" interaction)
  $("filter-dim").addEventListener("change", () => $("filter-values").replaceChildren());
  $("filter-value").addEventListener("focus", () => {
    if (!$("filter-values").children.length) loadFilterValues();
  });
  window.addEventListener("online", () => { if (!state.ws) connectSocket(); });
  if (tokens()) {
    scheduleRefresh();
    start().catch(() => endSession(""));
  } else {
    endSession("");
  }
}

init();
