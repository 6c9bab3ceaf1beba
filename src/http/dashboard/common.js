"use strict";
// Shared by the dashboard and the block page (served at assets/common.js; no front-end build):
// how durations and times read, fetching with a deadline, and whether a page fits its window.

// A duration for people: ms under a second, then s, min, h, never more precision than a
// reader uses ("840 ms", "2.3 s", "42 s", "4 min 12 s", "1 h 5 min").
function duration(ms) {
  if (ms == null || !Number.isFinite(ms)) return "–";
  ms = Math.max(0, ms);
  if (ms < 999.5) return Math.round(ms) + " ms";
  if (ms < 9950) return (ms / 1000).toFixed(1).replace(/\.0$/, "") + " s";
  const s = Math.round(ms / 1000);
  if (s < 60) return s + " s";
  if (s < 3600) { const m = Math.floor(s / 60), r = s % 60; return r ? m + " min " + r + " s" : m + " min"; }
  const m = Math.round(s / 60), h = Math.floor(m / 60), r = m % 60;
  return r ? h + " h " + r + " min" : h + " h";
}

// A chart axis for durations up to `maxMs`: one unit for every label, a rounded top (1, 2 or 5
// times a power of ten in that unit), labels with at most three significant figures.
function durationAxis(maxMs) {
  const [unit, per] = maxMs < 1000 ? ["ms", 1] : maxMs < 120e3 ? ["s", 1000] : maxMs < 7200e3 ? ["min", 60e3] : ["h", 3600e3];
  const v = Math.max(maxMs / per, 1);
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  const top = [1, 2, 5, 10].map((k) => k * p).find((k) => k >= v * (1 - 1e-9));
  const label = (f) => Number((top * f).toPrecision(3)).toLocaleString("en-US") + " " + unit;
  return { topMs: top * per, label };
}

// "14:03:27 UTC": a moment, in the same zone as the tables.
function clock(ms) { return new Date(ms).toISOString().slice(11, 19) + " UTC"; }

// GET `url` as JSON within `timeoutMs`; throws an Error saying why in words otherwise.
async function getJson(url, timeoutMs) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    const r = await fetch(url, { cache: "no-store", signal: ctl.signal });
    const body = await r.json().catch(() => null);
    if (body == null) throw new Error(r.ok ? "its answer was not JSON" : "it answered HTTP " + r.status);
    return { ok: r.ok, status: r.status, body };
  } catch (e) {
    if (e.name == "AbortError") throw new Error("no answer within " + duration(timeoutMs));
    if (e instanceof TypeError) throw new Error("the connection failed");
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

// Whether the page fits its window without scrolling sideways, and whether every word in its
// tables is whole on one line; the browser test reads both.
function markFit() {
  document.body.dataset.fits = String(document.documentElement.scrollWidth <= window.innerWidth);
  document.body.dataset.wordsWhole = String(wordsWhole());
}

// False when a word of a table cell is laid out over two lines (a column squeezed narrower than
// its words): what a reader sees as "Bloc" above "k".
function wordsWhole() {
  for (const cell of document.querySelectorAll("table th, table td")) {
    const walk = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walk.nextNode(); node; node = walk.nextNode()) {
      for (const m of node.data.matchAll(/\S+/g)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
        if (lines.size > 1) return false;
      }
    }
  }
  return true;
}
