/* The look every element shares, as CSS custom properties a host page may set on the element (or any
 * ancestor): --snapshot-bg, --snapshot-fg, --snapshot-muted, --snapshot-accent, --snapshot-ok,
 * --snapshot-error, --snapshot-warn, --snapshot-border, --snapshot-on-accent (text on the accent),
 * --snapshot-font, --snapshot-font-size.
 * Light or dark by prefers-color-scheme, unless the element says theme="light" or theme="dark". */

export const THEME_CSS = `
:host {
  --_bg: var(--snapshot-bg, #ffffff);
  --_fg: var(--snapshot-fg, #1b1f24);
  --_muted: var(--snapshot-muted, #57606a);
  --_accent: var(--snapshot-accent, #0969da);
  --_ok: var(--snapshot-ok, #1a7f37);
  --_error: var(--snapshot-error, #cf222e);
  --_warn: var(--snapshot-warn, #9a6700);
  --_border: var(--snapshot-border, #d0d7de);
  --_track: color-mix(in srgb, var(--_fg) 14%, transparent);
  --_on-accent: var(--snapshot-on-accent, #ffffff);
  color-scheme: light;
  font-family: var(--snapshot-font, system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif);
  font-size: var(--snapshot-font-size, 14px);
  line-height: 1.4;
  color: var(--_fg);
  box-sizing: border-box;
}
:host([hidden]) { display: none !important; }
*, *::before, *::after { box-sizing: inherit; }
[hidden] { display: none !important; }
@media (prefers-color-scheme: dark) {
  :host(:not([theme="light"])) {
    --_bg: var(--snapshot-bg, #161b22);
    --_fg: var(--snapshot-fg, #e6edf3);
    --_muted: var(--snapshot-muted, #9da7b3);
    --_accent: var(--snapshot-accent, #1f6feb);
    --_ok: var(--snapshot-ok, #3fb950);
    --_error: var(--snapshot-error, #ff7b72);
    --_warn: var(--snapshot-warn, #d29922);
    --_border: var(--snapshot-border, #30363d);
    --_on-accent: var(--snapshot-on-accent, #ffffff);
    color-scheme: dark;
  }
}
:host([theme="dark"]) {
  --_bg: var(--snapshot-bg, #161b22);
  --_fg: var(--snapshot-fg, #e6edf3);
  --_muted: var(--snapshot-muted, #9da7b3);
  --_accent: var(--snapshot-accent, #1f6feb);
  --_ok: var(--snapshot-ok, #3fb950);
  --_error: var(--snapshot-error, #ff7b72);
  --_warn: var(--snapshot-warn, #d29922);
  --_border: var(--snapshot-border, #30363d);
  --_on-accent: var(--snapshot-on-accent, #ffffff);
  color-scheme: dark;
}
button {
  font: inherit;
  min-height: 2em;
  padding: 0.2em 0.8em;
  border-radius: 6px;
  border: 1px solid var(--_border);
  background: transparent;
  color: var(--_fg);
  cursor: pointer;
}
button:disabled { opacity: 0.55; cursor: default; }
button:focus-visible, input:focus-visible, [tabindex]:focus-visible {
  outline: 2px solid var(--_accent);
  outline-offset: 2px;
}
input {
  font: inherit;
  color: var(--_fg);
  background: var(--_bg);
  border: 1px solid var(--_border);
  border-radius: 6px;
  padding: 0.2em 0.4em;
  min-width: 0;
}
.visually-hidden {
  position: absolute;
  width: 1px;
  height: 1px;
  margin: -1px;
  overflow: hidden;
  clip: rect(0 0 0 0);
  white-space: nowrap;
}
`;
