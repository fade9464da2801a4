// web/lib/logbuffer.js: a run log's byte offsets, the tail's first partial line, overlapping chunks and the
// line cap, as tables. The bytes are the file's (UTF-8): the rows put multi-byte characters where cuts fall.

import { describe, it } from "node:test";
import assert from "node:assert/strict";

import {
  LOG_MAX_LINES,
  LOG_TAIL_BYTES,
  byteLength,
  dropPartialLine,
  excessLines,
  lineStream,
  rangeStart,
  splitLines,
  unseenPart,
} from "../../../web/lib/logbuffer.js";

const encoder = new TextEncoder();

/** A value as the test's name shows it (JSON.stringify turns NaN into "null" and drops undefined). */
function show(value) {
  return typeof value === "number" || value === undefined ? String(value) : JSON.stringify(value);
}

/** One `it` per row, named after its input, so a failure names the row. */
function table(fn, rows) {
  for (const [args, expected] of rows) {
    it(`${fn.name}(${args.map(show).join(", ")}) → ${show(expected)}`, () => {
      assert.deepEqual(fn(...args), expected);
    });
  }
}

/** What a browser's `response.text()` makes of the file's bytes from `start` on: UTF-8, a cut character
 * decoded as replacement characters. */
function fetchedFrom(file, start) {
  return new TextDecoder().decode(encoder.encode(file).slice(start));
}

describe("the limits", () => {
  it("fetches a 256 KiB tail and keeps 5,000 lines", () => {
    assert.equal(LOG_TAIL_BYTES, 262144);
    assert.equal(LOG_MAX_LINES, 5000);
  });
});

describe("byteLength counts UTF-8 bytes, not characters", () => {
  table(byteLength, [
    [[""], 0],
    [["abc"], 3],
    [["a\n"], 2],
    [["é"], 2],
    [["€"], 3],
    [["😀"], 4],
    [["12:00:00.000 out — done ✓\n"], 30],
    [["\uFFFD"], 3],
  ]);
});

describe("rangeStart", () => {
  table(rangeStart, [
    [[206, "bytes 100-199/200"], 100],
    [[206, "bytes 0-99/100"], 0],
    [[206, "bytes 5-9/10"], 5],
    [[206, "bytes 1048576-1310719/1310720"], 1048576],
    // A whole file (200, or a 206 without a usable Content-Range) starts at byte 0.
    [[200, "bytes 100-199/200"], 0],
    [[200, null], 0],
    [[206, null], 0],
    [[206, undefined], 0],
    [[206, ""], 0],
    [[206, "bytes */200"], 0],
    [[206, "bytes 100-199"], 0],
    [[206, " bytes 100-199/200"], 0],
    [[206, "bytes 100-199/200 "], 0],
    [[206, "items 100-199/200"], 0],
    [[206, "bytes -100-199/200"], 0],
    [[416, "bytes */200"], 0],
  ]);
});

describe("dropPartialLine", () => {
  table(dropPartialLine, [
    // A tail from byte 0 is the whole file: nothing is dropped.
    [["abc\ndef\n", 0], { body: "abc\ndef\n", start: 0 }],
    [["abc", 0], { body: "abc", start: 0 }],
    [["", 0], { body: "", start: 0 }],
    [["abc\n", -1], { body: "abc\n", start: -1 }],
    // From byte 100, the text up to the first newline is the end of a line already cut.
    [["abc\ndef\n", 100], { body: "def\n", start: 104 }],
    [["\ndef\n", 100], { body: "def\n", start: 101 }],
    [["abc\n", 100], { body: "", start: 104 }],
    [["abc", 100], { body: "", start: 103 }],
    [["", 100], { body: "", start: 100 }],
    [["é€\nx\n", 10], { body: "x\n", start: 16 }],
    [["a\n\nb\n", 7], { body: "\nb\n", start: 9 }],
  ]);

  // The tail as a browser fetches it: bytes from `start`, decoded. Wherever the cut falls, even inside a
  // character, the kept text starts at a line of the file and `start` is that line's byte in the file: the
  // log stream resumes from it, so a byte too far loses the start of the next line written.
  const file = "12:00:00.000 out ab€c😀\n12:00:01.000 err é — ü\n12:00:02.000 out fin\n";
  const bytes = encoder.encode(file);
  const lineStarts = [0];
  bytes.forEach((byte, index) => {
    if (byte === 0x0a) lineStarts.push(index + 1);
  });
  for (let start = 1; start < bytes.length; start++) {
    it(`a tail from byte ${start} of ${bytes.length} keeps whole lines at their own offsets`, () => {
      const tail = dropPartialLine(fetchedFrom(file, start), start);
      // A tail that starts right at a line cannot know it (the byte before is not fetched): that line goes too.
      const next = lineStarts.find((at) => at > start);
      assert.equal(tail.start, next);
      assert.equal(tail.body, new TextDecoder().decode(bytes.slice(next)));
      assert.equal(tail.start + byteLength(tail.body), bytes.length);
    });
  }
});

describe("unseenPart", () => {
  table(unseenPart, [
    // A chunk at or after what is shown is all new.
    [["def\n", 4, 4], "def\n"],
    [["def\n", 10, 4], "def\n"],
    [["abc\n", 0, 0], "abc\n"],
    // A chunk that overlaps what is shown: only the bytes after `offset`.
    [["abc\ndef\n", 0, 4], "def\n"],
    [["abc\ndef\nghi\n", 100, 108], "ghi\n"],
    [["abc\ndef\n", 0, 7], "\n"],
    // A chunk shown already, wholly or beyond.
    [["abc\n", 0, 4], ""],
    [["abc\n", 0, 10], ""],
    [["", 0, 0], ""],
    [["", 0, 5], ""],
    // Offsets are bytes: multi-byte characters before the cut move it.
    [["é\nx\n", 0, 3], "x\n"],
    [["€😀\nnext\n", 50, 58], "next\n"],
    [["ab\n€\n", 0, 3], "€\n"],
  ]);

  const rows = [
    // [name, shown (the offset), chunk, at]: after the append, the offset is the chunk's end in the file.
    ["a chunk right after", 10, "more\n", 10],
    ["a chunk overlapping by a line", 10, "tail\nmore\n", 5],
    ["a chunk that repeats everything", 10, "0123456789", 0],
    ["a chunk with multi-byte text overlapping", 12, "é€\nü\n", 6],
  ];
  for (const [name, offset, chunk, at] of rows) {
    it(`the offset moves to the chunk's end: ${name}`, () => {
      const fresh = unseenPart(chunk, at, offset);
      const moved = fresh === "" ? offset : Math.max(at, offset) + byteLength(fresh);
      assert.equal(moved, Math.max(offset, at + byteLength(chunk)));
    });
  }
});

describe("splitLines", () => {
  table(splitLines, [
    [[""], []],
    [["\n"], [""]],
    [["a"], ["a"]],
    [["a\n"], ["a"]],
    [["a\nb"], ["a", "b"]],
    [["a\nb\n"], ["a", "b"]],
    [["a\n\nb\n"], ["a", "", "b"]],
    [["a\n\n"], ["a", ""]],
    [["é\n€\n"], ["é", "€"]],
  ]);
});

describe("lineStream", () => {
  table(lineStream, [
    [["12:34:56.789 out hello"], "out"],
    [["12:34:56.789 err Traceback (most recent call last):"], "err"],
    [["00:00:00.000 out "], "out"],
    [["12:34:56.789 info hello"], null],
    [["12:34:56.789 out"], null],
    [["12:34:56 out hello"], null],
    [["12:34:56.78 out hello"], null],
    [[" 12:34:56.789 out hello"], null],
    [["hello 12:34:56.789 err x"], null],
    [["12:34:56.789 OUT hello"], null],
    [[""], null],
  ]);
});

describe("excessLines", () => {
  table(excessLines, [
    [[0], 0],
    [[4999], 0],
    [[5000], 0],
    [[5001], 1],
    [[12000], 7000],
    [[2, 3], 0],
    [[3, 3], 0],
    [[10, 3], 7],
    [[1, 0], 1],
  ]);
});
