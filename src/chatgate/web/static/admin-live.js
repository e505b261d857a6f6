// The project's live events for the inbox: one WebSocket per open project.
//
// The session goes in the first frame (never in the URL, which proxies log).
// The highest seq seen is kept and sent back as ?after_seq= when reconnecting,
// so events missed while away are replayed; a "resync" means too many were
// missed and the views fetch their state again. Reconnects back off from 1 s,
// doubling to 30 s with some randomness, back to 1 s after a "ready".

const GIVE_UP = new Set([4401, 4001, 4002, 4404]);

export class LiveEvents {
  constructor(projectId, getToken, onSessionEnded) {
    this.projectId = projectId;
    this.getToken = getToken;
    this.onSessionEnded = onSessionEnded;
    this.lastSeq = null;
    this.delay = 1000;
    this.socket = null;
    this.timer = null;
    this.stopped = false;
    this.handlers = new Set();
    this.stateHandlers = new Set();
    this.state = "connecting";
    this.detail = "";
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.clearTimeout(this.timer);
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000);
    }
  }

  // fn(event) for every event frame; returns a function that unsubscribes.
  subscribe(fn) {
    this.handlers.add(fn);
    return () => this.handlers.delete(fn);
  }

  // fn(state, detail): "connecting" | "live" | "waiting" | "stopped".
  watch(fn) {
    this.stateHandlers.add(fn);
    fn(this.state, this.detail);
    return () => this.stateHandlers.delete(fn);
  }

  setState(state, detail) {
    this.state = state;
    this.detail = detail || "";
    this.stateHandlers.forEach((fn) => fn(state, this.detail));
  }

  connect() {
    const token = this.getToken();
    if (!token || this.stopped) return;
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    let url = `${scheme}//${window.location.host}/v1/projects/${encodeURIComponent(this.projectId)}/ws`;
    if (this.lastSeq !== null) url += `?after_seq=${this.lastSeq}`;
    this.setState("connecting");
    let socket;
    try {
      socket = new WebSocket(url);
    } catch (e) {
      this.retry();
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "auth", token }));
    });
    socket.addEventListener("message", (message) => {
      if (socket !== this.socket) return;
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch (e) {
        return;
      }
      if (!frame || typeof frame.type !== "string") return;
      if (typeof frame.seq === "number" && (this.lastSeq === null || frame.seq > this.lastSeq)) this.lastSeq = frame.seq;
      if (frame.type === "ready") {
        this.delay = 1000;
        this.setState("live");
        return;
      }
      this.handlers.forEach((fn) => fn(frame));
    });
    socket.addEventListener("close", (event) => {
      if (socket !== this.socket) return;
      this.socket = null;
      if (this.stopped) return;
      if (GIVE_UP.has(event.code)) {
        this.setState("stopped", event.code === 4404 ? "This project is not yours any more." : "Your session has ended.");
        if (event.code !== 4404) this.onSessionEnded();
        return;
      }
      this.retry();
    });
  }

  retry() {
    const wait = Math.round(this.delay * (0.75 + Math.random() * 0.5));
    this.delay = Math.min(this.delay * 2, 30000);
    this.setState("waiting", `Reconnecting in ${Math.max(1, Math.round(wait / 1000))} s…`);
    this.timer = window.setTimeout(() => this.connect(), wait);
  }
}
