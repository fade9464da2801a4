/* Small helpers for the elements' shadow DOM. Text only ever goes in as text (textContent), never as HTML:
 * job output, reasons and errors are the job's or a caller's words. */

/** `tag` with `attrs` (a value of null or false leaves the attribute out; `text` sets the text) and children. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === false || value === undefined) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children);
  return node;
}

export function setText(node, value) {
  if (node.textContent !== value) node.textContent = value;
}

/** Set (or with null, remove) an attribute, touching the DOM only on a change (a live region would
 * otherwise be read out again). */
export function setAttr(node, name, value) {
  if (value === null || value === undefined) {
    if (node.hasAttribute(name)) node.removeAttribute(name);
  } else if (node.getAttribute(name) !== String(value)) {
    node.setAttribute(name, String(value));
  }
}

const sheets = new Map(); // css text -> CSSStyleSheet, shared by every element of a kind

/** Give `root` (a shadow root) the style sheet `css`. Constructed style sheets are CSSOM, not inline style:
 * a host page's Content-Security-Policy without 'unsafe-inline' still lets them apply. */
export function adoptStyles(root, ...css) {
  root.adoptedStyleSheets = css.map((text) => {
    if (!sheets.has(text)) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(text);
      sheets.set(text, sheet);
    }
    return sheets.get(text);
  });
}

/** The origin the elements' modules were loaded from: where `server` points when it is not given. */
export const SCRIPT_ORIGIN = new URL(import.meta.url).origin;

/** An element's `server` attribute as an origin ("https://snap.example.com"), or the modules' own origin. */
export function serverOf(element) {
  const given = element.getAttribute("server");
  if (!given) return SCRIPT_ORIGIN;
  try {
    return new URL(given, document.baseURI).origin;
  } catch (e) {
    return SCRIPT_ORIGIN;
  }
}

/** Define a custom element once: including the script twice (or by two URLs) is harmless. */
export function define(name, constructor) {
  if (!customElements.get(name)) customElements.define(name, constructor);
}
