// The trackmirror dashboard (issue 11 item 5): plain browser JavaScript, no build step.
// Data: /v1/overview/stream (SSE, the `deno task status --json` document once a second), each
// volume's /v1/volumes/{name}/map after every document, and the tracker's /v1/events.
// Everything from the services is put in the page as text (textContent), never as markup.
// The token and the streams are in streams.js.
import { authHeaders, setToken, subscribe, takeTokenFromUrl } from "./streams.js";

/** Cells asked for a volume's strip (the tracker cuts it to the volume's region count). */
const stripCells = 256;
/** Events kept in the panel. */
const eventsShown = 20;
/**
 * The kinds of the tracker's /v1/events (its `event:` names; tracker/tracker_events.ts
 * `trackerEventKinds`): an EventSource hears a named event only by its name.
 */
export const eventKinds = [
  "volume.registered",
  "lease.taken",
  "lease.takeover",
  "volume.dirty",
  "volume.clean",
  "log",
];

const $ = (id) => document.getElementById(id);

function formatBytes(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${bytes} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

function formatAge(seconds) {
  if (seconds < 1) return "<1s";
  const s = Math.floor(seconds);
  const pad = (n) => String(n).padStart(2, "0");
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d${pad(Math.floor(s / 3600) % 24)}h`;
}

function setText(root, field, text) {
  root.querySelector(`[data-field="${field}"]`).textContent = text;
}

/** One card per volume, kept across documents so its strip is redrawn in place. */
const cards = new Map();

function volumeCard(name) {
  let card = cards.get(name);
  if (!card) {
    card = $("volume-card").content.firstElementChild.cloneNode(true);
    card.dataset.volume = name;
    cards.set(name, card);
  }
  return card;
}

function renderVolume(v) {
  const card = volumeCard(v.name);
  card.dataset.mode = v.mode ?? "unknown";
  setText(card, "name", v.name);
  const sync = card.querySelector('[data-field="sync"]');
  sync.dataset.sync = v.inSync ? "yes" : "no";
  sync.textContent = v.inSync ? "in sync" : "not in sync";
  setText(card, "owner", `${v.ownerHost} (${v.ownerUrl})`);
  setText(card, "mode", v.mode ?? "unknown (owner did not answer)");
  setText(card, "dirty-regions", String(v.dirty.regions));
  const bytes = card.querySelector('[data-field="dirty-bytes"]');
  bytes.textContent = formatBytes(v.dirty.bytes);
  bytes.dataset.bytes = String(v.dirty.bytes);
  setText(
    card,
    "oldest-mark",
    v.dirty.oldestMarkAgeSeconds === null
      ? "none"
      : `${formatAge(v.dirty.oldestMarkAgeSeconds)} ago (${v.dirty.oldestMarkAtIso})`,
  );
  setText(
    card,
    "lag",
    v.lag === null
      ? "unknown"
      : `${formatBytes(v.lag.bytes)}, ${v.lag.records} records, ${v.lag.seconds.toFixed(1)} s`,
  );
  setText(card, "resync", resyncText(v.resync));
  setText(
    card,
    "cycle",
    v.openCycle === null
      ? "none open"
      : `open: ${v.openCycle.regions} regions, ${formatBytes(v.openCycle.stagedBytes)} staged`,
  );
  const reasons = card.querySelector('[data-field="reasons"]');
  reasons.replaceChildren(...v.notInSync.map((r) => li(r)));
  return card;
}

function resyncText(r) {
  if (r === null) return "none";
  const pct = r.bytesTotal > 0 ? Math.floor((100 * r.bytesDone) / r.bytesTotal) : 100;
  let text = `${r.state}: ${pct}% (${r.regionsDone}/${r.regionsTotal} regions, ` +
    `${formatBytes(r.bytesDone)}/${formatBytes(r.bytesTotal)})`;
  if (r.state === "running") {
    text += `, ${formatBytes(r.bytesPerSec)}/s` +
      (r.etaSeconds === null ? "" : `, ETA ${formatAge(r.etaSeconds)}`);
  }
  if (r.error) text += ` — ${r.error}`;
  return text;
}

function li(text) {
  const item = document.createElement("li");
  item.textContent = text;
  return item;
}

function badge(state) {
  const span = document.createElement("span");
  span.className = "badge";
  span.dataset.state = state;
  span.textContent = state;
  return span;
}

function componentRow(what, c, detail) {
  const row = document.createElement("tr");
  const cells = [what, c.url, null, c.sinceIso ?? "", detail];
  for (const text of cells) {
    const td = document.createElement("td");
    if (text === null) td.append(badge(c.state));
    else td.textContent = text;
    row.append(td);
  }
  row.dataset.component = what;
  return row;
}

function renderComponents(doc) {
  // The tracker's store as its probe found it: "store: etcd no quorum: …" is its error.
  const store = doc.tracker.store;
  const trackerDetail = doc.tracker.error ?? (store ? `store ${store.kind} ok` : "");
  const rows = [componentRow("tracker", doc.tracker, trackerDetail)];
  for (const h of doc.hosts) {
    const views = [
      h.backup && `sees backup ${h.backup.state}`,
      h.tracker && `tracker ${h.tracker.state}`,
    ]
      .filter(Boolean).join(", ");
    const detail = h.error ??
      [h.id, h.mode, views, h.backup?.lastError].filter(Boolean).join(" · ");
    rows.push(componentRow("host", h, detail));
  }
  for (const b of doc.backups) {
    const detail = b.journalBytesPending === null
      ? b.error ?? ""
      : `journal ${formatBytes(b.journalBytesPending)} of ${formatBytes(b.journalBytesMax)}, ` +
        `${b.recordsApplied}/${b.recordsAcknowledged} records applied` +
        (b.error ? ` · ${b.error}` : "");
    rows.push(componentRow("backup", b, detail));
  }
  $("components").tBodies[0].replaceChildren(...rows);
}

function render(doc) {
  const health = $("health");
  health.dataset.health = doc.health;
  health.textContent = doc.health;
  $("updated").textContent = `as of ${doc.atIso}`;
  document.body.dataset.overviewAt = String(doc.at);
  $("problems").replaceChildren(...doc.problems.map((p) => li(p)));
  const names = new Set(doc.volumes.map((v) => v.name));
  for (const name of [...cards.keys()]) if (!names.has(name)) cards.delete(name);
  $("volumes").replaceChildren(...doc.volumes.map(renderVolume));
  $("no-volumes").hidden = doc.volumes.length > 0;
  renderComponents(doc);
  for (const v of doc.volumes) refreshMap(v.name);
}

/** Volumes whose map is being fetched: one fetch a volume at a time. */
const mapsInFlight = new Set();

async function refreshMap(name) {
  if (mapsInFlight.has(name)) return;
  mapsInFlight.add(name);
  try {
    const res = await fetch(`/v1/volumes/${encodeURIComponent(name)}/map?cells=${stripCells}`, {
      headers: authHeaders(),
    });
    if (res.status === 401) askToken();
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    drawStrip(name, await res.json());
  } catch (err) {
    const card = cards.get(name);
    if (card) setText(card, "map-note", `map unavailable: ${err.message}`);
  } finally {
    mapsInFlight.delete(name);
  }
}

const cellClass = { D: "cell dirty", A: "cell activity", ".": "cell clean" };

function drawStrip(name, m) {
  const card = cards.get(name);
  if (!card) return;
  const strip = card.querySelector('[data-field="strip"]');
  while (strip.children.length > m.cells) strip.lastChild.remove();
  while (strip.children.length < m.cells) strip.append(document.createElement("span"));
  for (let i = 0; i < m.cells; i++) strip.children[i].className = cellClass[m.map[i]];
  strip.dataset.dirtyCells = String(m.dirtyCells);
  strip.setAttribute(
    "aria-label",
    `${m.dirtyCells} of ${m.cells} cells dirty, ${m.activityCells} active`,
  );
  const per = m.regionsPerCell === 1 ? "1 region" : `${m.regionsPerCell.toFixed(1)} regions`;
  setText(
    card,
    "map-note",
    `${m.cells} cells of ${per} (${formatBytes(m.regionBytes)} each)` + (m.exact ? "" : ", coarse"),
  );
}

function followOverview() {
  subscribe("/v1/overview/stream", ["overview"], {
    onEvent: (_name, data) => {
      $("link").textContent = "";
      render(JSON.parse(data));
    },
    onOpen: () => $("link").textContent = "",
    onLost: () => $("link").textContent = "tracker unreachable, reconnecting…",
    onRefused: (status) => {
      if (status === 401) return askToken();
      $("link").textContent = `the tracker refused the stream (HTTP ${status}); reload to retry`;
    },
  });
}

/** Shows the token form (a 401): the token is kept for this tab and the page starts again. */
function askToken() {
  const form = $("token-form");
  if (!form.hidden) return;
  form.hidden = false;
  $("health").textContent = "token needed";
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    setToken(form.elements.token.value);
    location.reload();
  });
}

function showEvent(ev) {
  const list = $("events");
  const item = li(
    `${ev.atIso ?? ""} ${ev.level ?? ""} ${ev.service ?? ""} ${ev.kind ?? ""}` +
      `${ev.volume ? ` ${ev.volume}` : ""}: ${ev.message ?? ""}`,
  );
  item.dataset.level = ev.level ?? "info";
  item.dataset.kind = ev.kind ?? "";
  item.dataset.volume = ev.volume ?? "";
  list.prepend(item);
  while (list.children.length > eventsShown) list.lastChild.remove();
}

/**
 * Shows the events panel once /v1/events answers, starting with what the tracker keeps
 * (`since=0`; a reconnect resumes after its Last-Event-ID); a tracker without the route (older,
 * 404) leaves it hidden.
 */
function followEvents() {
  subscribe("/v1/events?since=0", eventKinds, {
    onEvent: (_name, data) => {
      try {
        showEvent(JSON.parse(data));
      } catch {
        // Not an event document (a keep-alive): nothing to show.
      }
    },
    onOpen: () => $("events-panel").hidden = false,
    onLost: () => {},
    // 404: this tracker has no event stream; keep the panel hidden.
    onRefused: () => $("events-panel").hidden = true,
  });
}

takeTokenFromUrl();
followOverview();
followEvents();
