// How the dashboard reaches the tracker: the shared token (when the tracker has one) and
// server-sent event streams. Without a token a stream is an EventSource. With one, EventSource
// cannot send the bearer header, so the stream is read with fetch and parsed here.
//
// The token comes from the URL's fragment (`http://TRACKER/#token=T`: a fragment is never sent to
// a server) or the form the page shows after a 401; it is kept in sessionStorage (this tab only)
// and taken out of the address bar at once.

const tokenKey = "trackmirror-token";
/** Wait before a fetch-read stream is opened again after it ended or failed. */
const reconnectMs = 2000;

/** Moves a `#token=T` fragment into sessionStorage and out of the address bar. */
export function takeTokenFromUrl() {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (!m) return;
  sessionStorage.setItem(tokenKey, decodeURIComponent(m[1]));
  history.replaceState(null, "", location.pathname + location.search);
}

export function setToken(token) {
  sessionStorage.setItem(tokenKey, token);
}

function token() {
  return sessionStorage.getItem(tokenKey);
}

/** Headers of every request the page makes. */
export function authHeaders() {
  const t = token();
  return t ? { authorization: `Bearer ${t}` } : {};
}

/**
 * Follows the SSE stream at `path`: `onEvent(name, data)` for each event of the given `names`
 * (EventSource) or of any name (fetch), `onOpen()` when it connects, `onRefused(status)` when
 * the tracker answers with an error status (401: token needed or wrong; 404: no such route), after
 * which it stops; `onLost()` while it reconnects.
 */
export function subscribe(path, names, { onEvent, onOpen, onRefused, onLost }) {
  if (token()) return followWithFetch(path, { onEvent, onOpen, onRefused, onLost });
  const source = new EventSource(path);
  source.addEventListener("open", () => onOpen());
  for (const name of names) source.addEventListener(name, (e) => onEvent(name, e.data));
  source.addEventListener("error", async () => {
    if (source.readyState !== EventSource.CLOSED) return onLost();
    // EventSource does not say why it gave up: ask once to learn the status.
    try {
      const res = await fetch(path, { headers: authHeaders() });
      await res.body?.cancel();
      onRefused(res.ok ? 0 : res.status);
    } catch {
      onRefused(0);
    }
  });
}

async function followWithFetch(path, { onEvent, onOpen, onRefused, onLost }) {
  // As EventSource does: a reconnect says the last id seen, so the stream resumes after it.
  let lastId = null;
  for (;;) {
    try {
      const headers = authHeaders();
      if (lastId !== null) headers["last-event-id"] = lastId;
      const res = await fetch(path, { headers });
      if (!res.ok) {
        await res.body?.cancel();
        return onRefused(res.status);
      }
      onOpen();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text = (text + value).replaceAll("\r\n", "\n");
        let end;
        while ((end = text.indexOf("\n\n")) >= 0) {
          const event = parseEvent(text.slice(0, end));
          text = text.slice(end + 2);
          if (event.id !== null) lastId = event.id;
          if (event.data !== null) onEvent(event.name, event.data);
        }
      }
    } catch {
      // Connection refused or reset: try again below.
    }
    onLost();
    await new Promise((r) => setTimeout(r, reconnectMs));
  }
}

/** One SSE block: its event name ("message" when none), id (or null) and data lines joined. */
function parseEvent(block) {
  let name = "message";
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value;
    if (field === "id") id = value;
    if (field === "data") data.push(value);
  }
  return { name, id, data: data.length ? data.join("\n") : null };
}
