/* A run's log as the log element keeps it: byte offsets into the log file, the tail fetched by a Range
 * request, chunks that overlap what is shown already, and the cap on lines kept in the page. Pure (no DOM,
 * no network), so node tests drive it. Offsets are in bytes of the file (UTF-8), never in characters: the
 * service resumes a log stream from a byte offset. */

/** How much of a log is fetched when it is opened; the rest is a link away. */
export const LOG_TAIL_BYTES = 256 * 1024;
/** Lines kept in the page: a log of millions of lines must not take the tab down. */
export const LOG_MAX_LINES = 5000;

const encoder = new TextEncoder();

export function byteLength(value) {
  return encoder.encode(value).length;
}

/** The first byte of a `206 Partial Content` answer (its Content-Range "bytes 100-199/200"), or 0. */
export function rangeStart(status, contentRange) {
  const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(contentRange || "");
  return status === 206 && range ? Number(range[1]) : 0;
}

/** A tail that starts at byte `start` > 0 starts mid-line (maybe mid-character): its first partial line is
 * dropped. Returns the text left and the byte it starts at. */
export function dropPartialLine(body, start) {
  if (start <= 0) return { body, start };
  const cut = body.indexOf("\n");
  const dropped = cut < 0 ? body : body.slice(0, cut + 1);
  // A cut inside a character leaves up to 3 of its continuation bytes first; the decoder turns each into one
  // U+FFFD, which re-encodes as 3 bytes: counted as such, the offset would pass bytes the file never had.
  const stray = /^\uFFFD{0,3}/.exec(dropped)[0].length;
  return { body: body.slice(dropped.length), start: start + byteLength(dropped) - 2 * stray };
}

/** The part of `chunk` (starting at byte `at`) after byte `offset` (what is shown already), or "" if none. */
export function unseenPart(chunk, at, offset) {
  if (at >= offset) return chunk;
  const bytes = encoder.encode(chunk);
  const skip = offset - at;
  if (skip >= bytes.length) return "";
  return new TextDecoder().decode(bytes.slice(skip));
}

/** The lines of a chunk of whole lines (a last newline ends the last line; it does not start another). */
export function splitLines(chunk) {
  if (chunk === "") return [];
  const lines = chunk.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/** "out" or "err" for a line the service wrote as "HH:MM:SS.mmm out ...", else null. */
export function lineStream(line) {
  const kind = /^\d\d:\d\d:\d\d\.\d{3} (out|err) /.exec(line);
  return kind ? kind[1] : null;
}

/** How many of the oldest lines to remove so that `count` lines fit in `max`. */
export function excessLines(count, max = LOG_MAX_LINES) {
  return Math.max(0, count - max);
}
