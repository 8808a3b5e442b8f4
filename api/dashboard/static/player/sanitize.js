// The player's own check of every replayed attribute, URL and CSS text (REPLAY.md 5.4 item 7).
// The server already removed all of this; this second pass keeps a forged or stale stream (or a
// server bug) from reaching the frame. Pure functions, no DOM.

export const BLOCKED_TAGS = new Set([
  'script', 'noscript', 'meta', 'title', 'base', 'object', 'embed', 'applet', 'frame',
  'frameset', 'param', 'portal', 'foreignobject', 'handler', 'listener',
]);
const DROPPED_ATTRIBUTES = new Set(['srcdoc', 'formaction', 'http-equiv', 'nonce', 'integrity']);
const URL_ATTRIBUTES = new Set([
  'href', 'xlink:href', 'src', 'action', 'background', 'poster', 'data', 'cite', 'longdesc',
  'ping', 'lowsrc', 'dynsrc', 'manifest', 'codebase', 'icon', 'profile',
]);
const SRCSET_ATTRIBUTES = new Set(['srcset', 'imagesrcset']);
const ATTRIBUTE_NAME = /^[A-Za-z_:][-A-Za-z0-9_:.]*$/;
const HOSTILE_CSS = /expression\s*\(|-moz-binding|behavior\s*:|javascript:|vbscript:|livescript:/i;
const DATA_MEDIA = /^data:\s*(image|audio|video|font)\//i;
// replayd's own API paths: a replayed asset there would be requested with the viewer's cookies.
export const OWN_API_PREFIXES = ['/api/', '/v1/', '/v2/', '/3/', '/auth/', '/ingest/'];

function normalised(url) {
  // As the URL parser reads it: tabs and newlines anywhere, controls and spaces at the ends.
  return String(url).replace(/[\t\n\r]/g, '').replace(/^[\u0000-\u0020]+|[\u0000-\u0020]+$/g, '');
}

/** Whether `url` may be loaded by the replay: absolute http(s), media data:, or a #fragment. */
export function safeUrl(url, { media = false, ownOrigin = globalThis.location?.origin } = {}) {
  const value = normalised(url);
  if (value === '' || value.startsWith('#')) return true;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(value);
  if (!scheme) return false; // the server makes every URL absolute
  const name = scheme[1].toLowerCase();
  if (name === 'data') return media && DATA_MEDIA.test(value);
  if (name !== 'http' && name !== 'https') return false;
  let parsed;
  try {
    parsed = new URL(value);
  } catch {
    return false;
  }
  if (ownOrigin && parsed.origin === ownOrigin) {
    const path = parsed.pathname + '/';
    if (OWN_API_PREFIXES.some((prefix) => path.startsWith(prefix))) return false;
  }
  return true;
}

function cssUrls(text) {
  const urls = [];
  const pattern = /url\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([^)"'\s]*))\s*\)/gi;
  for (const match of text.matchAll(pattern)) urls.push(match[1] ?? match[2] ?? match[3] ?? '');
  return urls;
}

/** Whether CSS text may be given to the frame (no hostile construct, every url() safe). */
export function safeCss(text, options = {}) {
  const value = String(text);
  if (HOSTILE_CSS.test(value)) return false;
  const unescaped = value.replace(/\/\*[\s\S]*?(\*\/|$)/g, '')
    .replace(/\\([0-9A-Fa-f]{1,6})\s?/g, (_, hex) => {
      const code = parseInt(hex, 16);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : '\ufffd';
    })
    .replace(/\\(.)/g, '$1');
  if (HOSTILE_CSS.test(unescaped.replace(/[\t\n\r]/g, ''))) return false;
  return cssUrls(value).every((url) => url === 'about:invalid' || safeUrl(url, { ...options, media: true }));
}

/** Whether attribute `name`=`value` may be set on a `tag` element of the replay. */
export function safeAttribute(tag, name, value, options = {}) {
  const lname = String(name).toLowerCase();
  const ltag = String(tag).toLowerCase();
  if (!ATTRIBUTE_NAME.test(name) || lname.startsWith('on') || DROPPED_ATTRIBUTES.has(lname)) {
    return false;
  }
  if (ltag === 'iframe' && ['src', 'allow', 'sandbox', 'csp'].includes(lname)) return false;
  if (ltag === 'input' && lname === 'name') return false; // keeps the viewer's autofill away
  if (lname === 'autocomplete') return false;
  if (ltag === 'link' && lname === 'rel') return String(value).toLowerCase() === 'stylesheet';
  if (lname === 'style') return safeCss(value, options);
  if (URL_ATTRIBUTES.has(lname)) {
    const media = ['src', 'poster', 'background'].includes(lname) && !['a', 'area', 'form'].includes(ltag);
    return safeUrl(value, { ...options, media });
  }
  if (SRCSET_ATTRIBUTES.has(lname)) {
    return String(value).split(',').every((candidate) => {
      const url = candidate.trim().split(/\s+/)[0] || '';
      return safeUrl(url, { ...options, media: true });
    });
  }
  if (['to', 'from', 'values', 'by', 'attributename'].includes(lname)) {
    const view = normalised(value).toLowerCase();
    if (/(javascript|vbscript|livescript):/.test(view)) return false;
    if (lname === 'attributename' && view.endsWith('href')) return false;
  }
  return true;
}
