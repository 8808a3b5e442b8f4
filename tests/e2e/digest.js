// The canonical DOM digest of REPLAY.md 4.2, evaluated the same way on the live page and on the
// replay frame's document: `(doc) => string`. Skips what the tracker never sends (scripts, meta,
// title, base, comments, links other than stylesheets) and what is not structure (style text);
// per element its tag and allow-listed attributes, per text node its trimmed text, plus input
// values, checked boxes, the scroll offsets of marked scrollers and the window's.
(doc) => {
  const SKIPPED = new Set(['script', 'noscript', 'meta', 'title', 'base', 'style', 'template']);
  const KEPT = ['id', 'class', 'type', 'data-step'];
  const out = [];
  const walk = (node, depth) => {
    const pad = ' '.repeat(depth);
    if (node.nodeType === 3) {
      const text = node.data.trim();
      if (text) out.push(pad + '"' + text + '"');
      return;
    }
    if (node.nodeType !== 1) return;
    const tag = node.localName;
    if (SKIPPED.has(tag)) return;
    if (tag === 'link' && node.getAttribute('rel') !== 'stylesheet') return;
    const attrs = KEPT.filter((n) => node.hasAttribute(n)).map((n) => {
      const value = n === 'class' ? node.getAttribute(n).split(/\s+/).filter(Boolean).sort().join(' ')
        : node.getAttribute(n);
      return n + '=' + value;
    });
    if (tag === 'input' || tag === 'textarea' || tag === 'select') {
      attrs.push('value=' + node.value);
      if (node.type === 'checkbox' || node.type === 'radio') attrs.push('checked=' + node.checked);
    }
    if (node.hasAttribute('data-digest-scroll')) {
      attrs.push('scroll=' + Math.round(node.scrollLeft) + ',' + Math.round(node.scrollTop));
    }
    out.push(pad + '<' + tag + (attrs.length ? ' ' + attrs.join(' ') : '') + '>');
    for (const child of node.childNodes) walk(child, depth + 1);
    if (node.shadowRoot) for (const child of node.shadowRoot.childNodes) walk(child, depth + 1);
  };
  walk(doc.documentElement, 0);
  const view = doc.defaultView;
  out.push('window.scroll=' + Math.round(view.scrollX) + ',' + Math.round(view.scrollY));
  return out.join('\n');
}
