// Applies replay items (api/public_v1_replay.py, engine/replay/builder.py) to the replay frame.
//
// Every node is made by the document it will live in (the frame's, or a nested frame's), never by
// the dashboard's; text goes in as text (`data`, `textContent`), CSS through style text or
// `CSSStyleSheet.replaceSync`, attributes through `setAttribute` after the second check of
// sanitize.js. Nothing is parsed as HTML. An item about an unknown node is skipped (one bad item
// never stops the replay).

import { BLOCKED_TAGS, safeAttribute, safeCss } from './sanitize.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
const XLINK_NS = 'http://www.w3.org/1999/xlink';
const FRAME_SANDBOX = 'allow-same-origin'; // never allow-scripts (the two together undo it)

export class Applier {
  constructor(frame, { ownOrigin } = {}) {
    this.frame = frame;
    this.ownOrigin = ownOrigin;
    this.reset();
  }

  get document() {
    return this.frame.contentDocument;
  }

  /** Forget the tab's state (cursor, clicks, location) and every node. */
  reset() {
    this.cursor = null;
    this.clicks = [];
    this.hidden = false;
    this.location = { url: '', title: '' };
    this.forgetNodes();
  }

  /** Forget every node and sheet; the next `doc` item starts a new page. */
  forgetNodes() {
    this.nodes = new Map();
    this.sheets = new Map();
    this.pendingScrolls = new Map();
    this.pendingViewportScroll = null;
    this.pendingSelects = new Map();
  }

  /** Empty the frame's document and make its `<html>` (node 0). */
  newDocument() {
    this.forgetNodes();
    const doc = this.document;
    while (doc.firstChild) doc.removeChild(doc.firstChild);
    doc.appendChild(doc.implementation.createDocumentType('html', '', ''));
    const html = doc.createElement('html');
    doc.appendChild(html);
    doc.adoptedStyleSheets = [];
    this.nodes.set(0, html);
  }

  apply(item) {
    const handler = HANDLERS[item.k];
    if (!handler) return;
    try {
      handler.call(this, item);
    } catch (error) {
      // A recorded message the browser refuses (an invalid name, a bad index): skip it.
      console.debug('replay: skipped an item', item.k, error?.name);
    }
  }

  /** What must wait until the DOM of a step is in: selects, then scrolls (layout first). */
  settle() {
    for (const [node, value] of this.pendingSelects) node.value = value;
    this.pendingSelects.clear();
    for (const [id, [x, y]] of this.pendingScrolls) {
      const node = this.nodes.get(id);
      if (!node) continue;
      if (node.nodeType === 9) node.defaultView?.scrollTo(x, y);
      else {
        node.scrollLeft = x;
        node.scrollTop = y;
      }
    }
    this.pendingScrolls.clear();
    if (this.pendingViewportScroll) {
      const [x, y] = this.pendingViewportScroll;
      this.frame.contentWindow?.scrollTo(x, y);
      this.pendingViewportScroll = null;
    }
  }

  insert(node, parentId, index) {
    const parent = this.nodes.get(parentId);
    if (!parent) return false;
    const before = parent.childNodes[index] ?? null;
    if (before !== node) parent.insertBefore(node, before);
    return true;
  }

  ownerDocument(parentId) {
    const parent = this.nodes.get(parentId);
    if (!parent) return null;
    return parent.nodeType === 9 ? parent : parent.ownerDocument;
  }

  options() {
    return { ownOrigin: this.ownOrigin };
  }
}

function element(item) {
  if (BLOCKED_TAGS.has(String(item.tag).toLowerCase())) return;
  const doc = this.ownerDocument(item.p);
  if (!doc) return;
  const node = item.svg ? doc.createElementNS(SVG_NS, item.tag) : doc.createElement(item.tag);
  if (node.localName === 'iframe') {
    // Flags are fixed when the frame's browsing context is made: set before it is attached.
    node.setAttribute('sandbox', FRAME_SANDBOX);
  }
  if (node.localName === 'form' || node.localName === 'input') {
    node.setAttribute('autocomplete', 'off');
  }
  if (this.insert(node, item.p, item.i)) this.nodes.set(item.id, node);
}

function text(item) {
  const doc = this.ownerDocument(item.p);
  if (!doc) return;
  const node = doc.createTextNode('');
  if (this.insert(node, item.p, item.i)) this.nodes.set(item.id, node);
}

function frameDocument(item) {
  const host = this.nodes.get(item.frame);
  if (!host || host.nodeType !== 1) return;
  if (host.localName === 'iframe') {
    const doc = host.contentDocument;
    if (!doc) return;
    while (doc.firstChild) doc.removeChild(doc.firstChild);
    this.nodes.set(item.id, doc);
  } else {
    this.nodes.set(item.id, host.shadowRoot ?? host.attachShadow({ mode: 'open' }));
  }
}

function move(item) {
  const node = this.nodes.get(item.id);
  if (node) this.insert(node, item.p, item.i);
}

function remove(item) {
  const node = this.nodes.get(item.id);
  if (node && node.nodeType !== 9) node.remove();
  this.nodes.delete(item.id);
}

function attribute(item) {
  const node = this.nodes.get(item.id);
  if (!node || node.nodeType !== 1) return;
  if (!safeAttribute(node.localName, item.n, item.v, this.options())) return;
  if (item.n.startsWith('xlink:')) node.setAttributeNS(XLINK_NS, item.n, item.v);
  else node.setAttribute(item.n, item.v);
}

function removeAttribute(item) {
  const node = this.nodes.get(item.id);
  if (node && node.nodeType === 1 && node.localName !== 'iframe') node.removeAttribute(item.n);
}

function data(item) {
  const node = this.nodes.get(item.id);
  if (!node || node.nodeType !== 3) return;
  if (node.parentNode?.localName === 'style' && !safeCss(item.v, this.options())) return;
  node.data = item.v;
}

function input(item) {
  const node = this.nodes.get(item.id);
  if (!node || !('value' in node)) return;
  // mask > 0: the tracker sent the length only; -1: a hidden (password) field.
  const value = item.mask > 0 ? '*'.repeat(item.mask) : item.mask < 0 ? '' : item.v;
  if (node.localName === 'select') this.pendingSelects.set(node, value);
  else node.value = value;
}

function checked(item) {
  const node = this.nodes.get(item.id);
  if (node && 'checked' in node) node.checked = Boolean(item.v);
}

function scroll(item) {
  this.pendingScrolls.set(item.id, [item.x, item.y]);
}

function viewportScroll(item) {
  this.pendingViewportScroll = [item.x, item.y];
}

function sheetOwner(id) {
  if (id === 0) return this.document;
  const node = this.nodes.get(id);
  return node && (node.nodeType === 9 || node.nodeType === 11) ? node : null;
}

function styleSheet(item) {
  let sheet = this.sheets.get(item.sheet);
  if (!sheet) {
    // Made in the frame's realm: a sheet of the dashboard's realm cannot be adopted there.
    const Sheet = this.frame.contentWindow.CSSStyleSheet;
    sheet = new Sheet();
    this.sheets.set(item.sheet, sheet);
  }
  if (item.op === 'replace') {
    if (safeCss(item.v, this.options())) sheet.replaceSync(item.v);
  } else if (item.op === 'insert') {
    if (safeCss(item.v, this.options())) sheet.insertRule(item.v, Math.min(item.i, sheet.cssRules.length));
  } else if (item.op === 'delete') {
    if (item.i < sheet.cssRules.length) sheet.deleteRule(item.i);
  } else if (item.op === 'add' || item.op === 'remove') {
    const owner = sheetOwner.call(this, item.id);
    if (!owner) return;
    const others = owner.adoptedStyleSheets.filter((s) => s !== sheet);
    owner.adoptedStyleSheets = item.op === 'add' ? [...others, sheet] : others;
  }
}

function mouse(item) {
  this.cursor = { x: item.x, y: item.y };
}

function click(item) {
  this.clicks.push(item.t);
  if (this.clicks.length > 20) this.clicks.shift();
}

function location(item) {
  this.location = { url: item.url, title: item.title };
}

function visibility(item) {
  this.hidden = Boolean(item.hidden);
}

const HANDLERS = {
  doc() { this.newDocument(); },
  el: element,
  text,
  frame: frameDocument,
  move,
  rm: remove,
  attr: attribute,
  rmattr: removeAttribute,
  data,
  input,
  checked,
  scroll,
  vscroll: viewportScroll,
  ss: styleSheet,
  mouse,
  click,
  loc: location,
  vis: visibility,
};
