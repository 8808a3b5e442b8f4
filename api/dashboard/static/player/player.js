// replayd's DOM replay player (REPLAY.md 1.4-1.7, 3, 5.4, 6): plain ES modules, no dependency.
//
//   const player = mountPlayer(container, { replayUrl, canvasUrl, fetchInit });
//   await player.ready;          // the stream's header is in (duration, markers, tabs)
//   await player.seek(ms);       // ms since the session's first message; the DOM is applied
//   player.state();              // { time, duration, startedAt, playing }
//   player.frame();              // the replay <iframe>
//   player.play(); player.pause(); player.setSpeed(2); player.setSkipInactivity(true);
//   player.onTimeUpdate((ms) => ...);
//
// The stream (GET .../sessions/:id/replay, JSON Lines: a header, then items per tab in play
// order) is read as it arrives. The recorded page is rebuilt in an <iframe sandbox=
// "allow-same-origin"> (never allow-scripts) made before it is attached; every node is made by
// the frame's own document (applier.js), nothing is parsed as HTML, every attribute is checked
// again (sanitize.js). Seeking forward applies the items between the last applied one and the
// target; seeking backward (or to another page or tab) rebuilds the page from its CreateDocument,
// in slices that yield to the event loop. The controls are our own elements; recorded strings
// (marker labels, titles) only ever reach them as text.
//
// Canvases: the frames the tracker captured (GET .../sessions/:id/canvas, next to the replay
// stream unless `canvasUrl` says otherwise: per canvas node id, frames with epoch-ms timestamps)
// are drawn onto that node's <canvas> in the frame, the latest frame at or before the replay
// time, by our script (the frame runs none). Only the pixels change: no recorded attribute is
// touched, so the DOM stays the recorded one.

import { Applier } from './applier.js';

export const SPEEDS = [0.5, 1, 2, 4, 8];
const SLICE = 2000; // items applied between two yields to the event loop during a rebuild
const CLICK_RIPPLE_MS = 600;
const DEFAULT_VIEWPORT = { width: 1280, height: 800 };
const MARKER_COLOURS = {
  click: '#3b82f6', location: '#10b981', input: '#8b5cf6', error: '#ef4444',
  request: '#f97316', rage: '#db2777', custom: '#eab308',
};

/** Mount a player for the replay stream at `replayUrl` inside `container`. */
export function mountPlayer(container, { replayUrl, canvasUrl, fetchInit } = {}) {
  return new Player(container, replayUrl, fetchInit, canvasUrl);
}

function make(doc, tag, style = {}, props = {}) {
  const node = doc.createElement(tag);
  Object.assign(node.style, style);
  Object.assign(node, props);
  return node;
}

function yieldToLoop() {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** The first index of `items` whose time is after `ms` (items sorted by `t`). */
function upperBound(items, ms) {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (items[mid].t <= ms) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function lastAtOrBefore(list, ms, time = (x) => x.time) {
  let found = null;
  for (const entry of list) {
    if (time(entry) <= ms) found = entry;
    else break;
  }
  return found;
}

function formatTime(ms) {
  const seconds = Math.floor(ms / 1000);
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
}

export class Player {
  constructor(container, replayUrl, fetchInit = {}, canvasUrl = undefined) {
    this.container = container;
    this.replayUrl = replayUrl;
    this.fetchInit = fetchInit;
    this.canvasUrl = canvasUrl ?? String(replayUrl).replace(/\/replay$/, '/canvas');
    this._canvasImages = new Map(); // frame url -> Promise<HTMLImageElement | null>
    this._drawn = new WeakMap(); // <canvas> -> the url of the frame on it
    this.header = null;
    this.tabs = new Map(); // tabId -> { items: [...], docs: [indexes of the doc items] }
    this._time = 0;
    this.playing = false;
    this.speed = 1;
    this.skipInactivity = true;
    this._listeners = [];
    this._applied = { tab: null, page: -2, next: 0 };
    this._queue = Promise.resolve();
    this._busy = false;
    this._buildUi(container.ownerDocument);
    const ownOrigin = new URL(replayUrl, container.ownerDocument.location.href).origin;
    this.applier = new Applier(this._iframe, { ownOrigin });
    let headerLoaded;
    let headerFailed;
    this.ready = new Promise((resolve, reject) => {
      headerLoaded = resolve;
      headerFailed = reject;
    });
    this._headerLoaded = headerLoaded;
    this.loaded = this._load().catch((error) => {
      headerFailed(error);
      this._status.textContent = `Replay unavailable: ${error.message}`;
      throw error;
    });
    this.loaded.catch(() => {}); // reported in the UI and through ready/seek
    // A session without canvas frames (or an answer we cannot read) simply draws nothing.
    this.canvases = this._loadCanvases().catch(() => []);
    this.ready.catch(() => {});
  }

  // -- the contract ----------------------------------------------------------------------------

  frame() {
    return this._iframe;
  }

  state() {
    return {
      time: this._time,
      duration: this.header?.duration ?? 0,
      startedAt: this.header?.startedAt ?? 0,
      playing: this.playing,
    };
  }

  /** Show the session at `ms`; resolves once the DOM of that moment is applied. */
  seek(ms) {
    const run = this._queue.then(() => this._seek(Number(ms) || 0));
    this._queue = run.catch(() => {});
    return run;
  }

  play() {
    if (this.playing || !this.header) return;
    if (this._time >= this.header.duration) this._time = 0;
    this.playing = true;
    this._lastFrame = performance.now();
    this._playButton.textContent = '❚❚';
    this._playButton.title = 'Pause';
    requestAnimationFrame((now) => this._tick(now));
  }

  pause() {
    this.playing = false;
    this._playButton.textContent = '▶';
    this._playButton.title = 'Play';
  }

  setSpeed(x) {
    const value = Number(x);
    if (!Number.isFinite(value) || value <= 0) return;
    this.speed = Math.min(8, Math.max(0.5, value));
    this._speedSelect.value = String(this.speed);
  }

  setSkipInactivity(on) {
    this.skipInactivity = Boolean(on);
    this._skipBox.checked = this.skipInactivity;
  }

  onTimeUpdate(callback) {
    this._listeners.push(callback);
  }

  // -- loading ---------------------------------------------------------------------------------

  async _load() {
    const response = await fetch(this.replayUrl, { credentials: 'same-origin', ...this.fetchInit });
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let rest = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const lines = (rest + decoder.decode(value, { stream: true })).split('\n');
      rest = lines.pop();
      for (const line of lines) if (line) this._line(line);
    }
    rest += decoder.decode();
    if (rest.trim()) this._line(rest);
    if (!this.header) throw new Error('the stream had no header');
    this._status.textContent = '';
  }

  async _loadCanvases() {
    const response = await fetch(this.canvasUrl, { credentials: 'same-origin', ...this.fetchInit });
    if (!response.ok) return [];
    const { data } = await response.json();
    const own = new URL(this.canvasUrl, this.container.ownerDocument.location.href).origin;
    return (Array.isArray(data) ? data : []).map((canvas) => ({
      id: Number(canvas.nodeId),
      // Our own server's frame URLs only (an image from elsewhere would be a request we did not mean).
      frames: (canvas.frames ?? [])
        .filter((f) => typeof f.url === 'string' && new URL(f.url, own).origin === own)
        .map((f) => ({ time: Number(f.timestamp), url: f.url }))
        .sort((a, b) => a.time - b.time),
    })).filter((canvas) => Number.isInteger(canvas.id) && canvas.frames.length);
  }

  _canvasImage(url) {
    let image = this._canvasImages.get(url);
    if (!image) {
      const img = new Image();
      img.src = url;
      image = img.decode().then(() => img, () => null);
      this._canvasImages.set(url, image);
    }
    return image;
  }

  /** Draw each canvas's frame of the moment `ms` (ms since startedAt) onto its node. */
  async _drawCanvases(ms) {
    const canvases = await this.canvases;
    const at = this.header.startedAt + ms;
    await Promise.all(canvases.map(async (canvas) => {
      const node = this.applier.nodes.get(canvas.id);
      if (!node || node.localName !== 'canvas') return;
      const frame = lastAtOrBefore(canvas.frames, at);
      const url = frame?.url ?? null;
      if (this._drawn.get(node) === url) return;
      const image = url === null ? null : await this._canvasImage(url);
      const context = node.getContext('2d');
      if (!context) return;
      context.clearRect(0, 0, node.width, node.height);
      if (image) context.drawImage(image, 0, 0, node.width, node.height);
      this._drawn.set(node, url);
    }));
  }

  _line(line) {
    const value = JSON.parse(line);
    if (!this.header) {
      if (!value.header) throw new Error('the stream did not start with its header');
      this.header = value.header;
      this._showHeader();
      this._headerLoaded();
      return;
    }
    let tab = this.tabs.get(value.tab);
    if (!tab) {
      tab = { items: [], docs: [] };
      this.tabs.set(value.tab, tab);
    }
    if (value.k === 'doc') tab.docs.push(tab.items.length);
    tab.items.push(value);
  }

  // -- seeking ---------------------------------------------------------------------------------

  _activeTab(ms) {
    const changes = this.header.tabChanges.filter((c) => this.tabs.has(c.tabId));
    const change = lastAtOrBefore(changes, ms);
    if (change) return change.tabId;
    return this.header.tabs.find((t) => this.tabs.has(t)) ?? null;
  }

  async _seek(ms) {
    await this.loaded;
    const target = Math.min(Math.max(0, ms), this.header.duration);
    this._time = target;
    const tabId = this._activeTab(target);
    const tab = this.tabs.get(tabId);
    if (tab) await this._applyUpTo(tabId, tab, target);
    await this._drawCanvases(target);
    this._showTime(target, tabId);
    for (const listener of this._listeners) listener(target);
  }

  async _applyUpTo(tabId, tab, ms) {
    const end = upperBound(tab.items, ms);
    let page = -1;
    for (const index of tab.docs) {
      if (index < end) page = index;
      else break;
    }
    const applied = this._applied;
    if (applied.tab === tabId && applied.page === page && applied.next <= end) {
      this._applyRange(tab.items, applied.next, end);
    } else {
      // Backwards, or another page or tab: rebuild the page from its CreateDocument.
      this.applier.reset();
      if (page < 0) {
        const doc = this.applier.document;
        while (doc.firstChild) doc.removeChild(doc.firstChild);
      } else {
        for (let from = page; from < end; from += SLICE) {
          this._applyRange(tab.items, from, Math.min(end, from + SLICE));
          if (from + SLICE < end) await yieldToLoop();
        }
      }
    }
    this._applied = { tab: tabId, page, next: end };
    this.applier.settle();
  }

  _applyRange(items, from, to) {
    for (let i = from; i < to; i += 1) this.applier.apply(items[i]);
  }

  _tick(now) {
    if (!this.playing) return;
    const elapsed = now - this._lastFrame;
    this._lastFrame = now;
    let next = this._time + elapsed * this.speed;
    if (this.skipInactivity) {
      for (const gap of this.header.inactivity) {
        if (next >= gap.start && next < gap.end) next = gap.end;
      }
    }
    if (next >= this.header.duration) {
      next = this.header.duration;
      this.pause();
    }
    this._time = next;
    if (!this._busy) {
      this._busy = true;
      this.seek(next).finally(() => {
        this._busy = false;
      });
    }
    if (this.playing) requestAnimationFrame((t) => this._tick(t));
  }

  // -- the screen and the controls ---------------------------------------------------------------

  _buildUi(doc) {
    const root = make(doc, 'div', { fontFamily: 'system-ui, sans-serif', fontSize: '13px' });
    root.className = 'replayd-player';
    this._screen = make(doc, 'div', {
      position: 'relative', overflow: 'hidden', background: '#f3f4f6', width: '100%',
    });
    this._stage = make(doc, 'div', { position: 'absolute', left: '0', top: '0', transformOrigin: '0 0' });
    const iframe = doc.createElement('iframe');
    // The sandbox before the frame is attached: its flags are fixed when its context is made.
    iframe.setAttribute('sandbox', 'allow-same-origin');
    iframe.setAttribute('referrerpolicy', 'no-referrer');
    iframe.title = 'Session replay';
    Object.assign(iframe.style, { border: '0', background: '#fff', pointerEvents: 'none', display: 'block' });
    this._iframe = iframe;
    this._overlay = make(doc, 'div', { position: 'absolute', inset: '0', pointerEvents: 'none' });
    this._cursor = make(doc, 'div', {
      position: 'absolute', width: '12px', height: '12px', marginLeft: '-6px', marginTop: '-6px',
      borderRadius: '50%', background: 'rgba(17,24,39,.8)', border: '2px solid #fff',
      transition: 'left 150ms linear, top 150ms linear', display: 'none',
    });
    this._hiddenNote = make(doc, 'div', {
      position: 'absolute', right: '8px', top: '8px', padding: '2px 6px', background: '#111827',
      color: '#fff', borderRadius: '4px', display: 'none',
    }, { textContent: 'Tab hidden' });
    this._overlay.append(this._cursor, this._hiddenNote);
    this._stage.append(iframe, this._overlay);
    this._screen.append(this._stage);

    const bar = make(doc, 'div', { display: 'flex', alignItems: 'center', gap: '8px', padding: '6px 0' });
    this._playButton = make(doc, 'button', { minWidth: '32px' }, { type: 'button', textContent: '▶', title: 'Play' });
    this._playButton.addEventListener('click', () => (this.playing ? this.pause() : this.play()));
    this._timeLabel = make(doc, 'span', { fontVariantNumeric: 'tabular-nums' }, { textContent: '0:00 / 0:00' });
    const track = make(doc, 'div', { position: 'relative', flex: '1' });
    this._seekBar = make(doc, 'input', { width: '100%' }, { type: 'range', min: '0', max: '0', step: '1', value: '0' });
    this._seekBar.setAttribute('aria-label', 'Seek');
    this._seekBar.addEventListener('input', () => this.seek(Number(this._seekBar.value)));
    this._markers = make(doc, 'div', { position: 'relative', height: '8px' });
    track.append(this._seekBar, this._markers);
    this._speedSelect = make(doc, 'select', {}, { title: 'Speed' });
    for (const speed of SPEEDS) {
      this._speedSelect.append(make(doc, 'option', {}, { value: String(speed), textContent: `${speed}×` }));
    }
    this._speedSelect.value = '1';
    this._speedSelect.addEventListener('change', () => this.setSpeed(this._speedSelect.value));
    const skipLabel = make(doc, 'label', { display: 'flex', alignItems: 'center', gap: '4px' });
    this._skipBox = make(doc, 'input', {}, { type: 'checkbox', checked: true });
    skipLabel.append(this._skipBox, doc.createTextNode('Skip inactivity'));
    this._skipBox.addEventListener('change', () => this.setSkipInactivity(this._skipBox.checked));
    this._status = make(doc, 'span', { color: '#b91c1c' });
    bar.append(this._playButton, this._timeLabel, track, this._speedSelect, skipLabel, this._status);
    this._pageLabel = make(doc, 'div', { color: '#4b5563', overflow: 'hidden', textOverflow: 'ellipsis', whiteSpace: 'nowrap' });
    root.append(this._screen, bar, this._pageLabel);
    this.container.append(root);
    const view = doc.defaultView;
    if (view && 'ResizeObserver' in view) {
      new view.ResizeObserver(() => this._layout(this._time)).observe(this._screen);
    }
  }

  _showHeader() {
    const { duration, markers } = this.header;
    this._seekBar.max = String(duration);
    const doc = this.container.ownerDocument;
    for (const marker of markers) {
      const tick = make(doc, 'div', {
        position: 'absolute', top: '0', width: '3px', height: '8px', cursor: 'pointer',
        left: `${duration ? (100 * marker.time) / duration : 0}%`,
        background: MARKER_COLOURS[marker.type] ?? '#6b7280',
      });
      // A recorded string: only ever text (the title property, never markup).
      tick.title = `${formatTime(marker.time)} ${marker.type}: ${marker.label}`;
      tick.addEventListener('click', () => this.seek(marker.time));
      this._markers.append(tick);
    }
    this._layout(0);
    this._showTime(0, null);
  }

  _viewport(ms, tabId) {
    const own = (this.header?.viewports ?? []).filter((v) => v.tabId === tabId);
    return lastAtOrBefore(own, ms) ?? own[0] ?? DEFAULT_VIEWPORT;
  }

  _layout(ms, tabId = this._applied.tab) {
    const { width, height } = this._viewport(ms, tabId);
    if (this._iframe.width !== String(width)) this._iframe.width = String(width);
    if (this._iframe.height !== String(height)) this._iframe.height = String(height);
    const available = this._screen.clientWidth || width;
    const scale = Math.min(1, available / width);
    this._stage.style.transform = `scale(${scale})`;
    this._stage.style.width = `${width}px`;
    this._stage.style.height = `${height}px`;
    this._screen.style.height = `${Math.ceil(height * scale)}px`;
  }

  _showTime(ms, tabId) {
    this._layout(ms, tabId);
    const duration = this.header?.duration ?? 0;
    this._timeLabel.textContent = `${formatTime(ms)} / ${formatTime(duration)}`;
    this._seekBar.value = String(Math.round(ms));
    const { cursor, clicks, location, hidden } = this.applier;
    if (cursor) {
      this._cursor.style.display = 'block';
      this._cursor.style.left = `${cursor.x}px`;
      this._cursor.style.top = `${cursor.y}px`;
      const recent = clicks.length ? clicks[clicks.length - 1] : null;
      if (this.playing && recent !== null && ms - recent < CLICK_RIPPLE_MS && recent !== this._rippled) {
        this._rippled = recent;
        this._cursor.animate?.(
          [{ boxShadow: '0 0 0 0 rgba(59,130,246,.7)' }, { boxShadow: '0 0 0 18px rgba(59,130,246,0)' }],
          { duration: CLICK_RIPPLE_MS },
        );
      }
    } else {
      this._cursor.style.display = 'none';
    }
    this._hiddenNote.style.display = hidden ? 'block' : 'none';
    // Recorded strings as text.
    this._pageLabel.textContent = location.url ? `${location.title || ''} ${location.url}`.trim() : '';
  }
}
