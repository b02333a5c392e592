// The request journal: the mock keeps the last 2,000 cloud requests; the
// page holds the same window, filters it by cloud, operation and status,
// and adds live entries at the top, at most once per animation frame.
//
// Rendering stays cheap at full size. Rows are grid rows grouped in
// blocks of 100 with `content-visibility: auto`, so the browser lays out
// and paints only the blocks in view (a 2,000-row <table> is laid out
// whole, which took ten times longer in the browser test). A filter change
// rebuilds the list in one detached fragment; live entries only add their
// own rows and trim the oldest. The last rebuild's time is shown next to
// the filters and kept in `data-render-ms` on the list.

import { byId, h } from './dom.js';

/** As many entries as the mock's journal keeps. */
export const CAPACITY = 2000;
/** Rows per block (the unit the browser skips when out of view). */
const BLOCK = 100;
/** Live batches larger than this are not highlighted (animating many rows costs). */
const HIGHLIGHT_MAX = 20;

const entries = [];
let lastSeq = 0;
let pending = [];
let frameQueued = false;
let held = true;
let shownRows = 0;
const operations = new Set();
const listeners = [];

const filter = { cloud: '', operation: '', status: '' };

function statusClass(status) {
  return status === 0 ? 'status-0' : `status-${Math.floor(status / 100)}xx`;
}

function matches(e) {
  if (filter.cloud && e.cloud !== filter.cloud) {
    return false;
  }
  if (filter.operation && e.operation !== filter.operation) {
    return false;
  }
  switch (filter.status) {
    case '':
      return true;
    case 'errors':
      return e.status >= 400 || e.status === 0;
    case 'dropped':
      return e.status === 0;
    default:
      return statusClass(e.status) === `status-${filter.status}`;
  }
}

function cell(text, className) {
  const span = document.createElement('span');
  span.textContent = String(text);
  if (className) {
    span.className = className;
  }
  return span;
}

function row(e, fresh) {
  const r = document.createElement('div');
  r.className = fresh ? `jrow ${statusClass(e.status)} fresh` : `jrow ${statusClass(e.status)}`;
  r.dataset.seq = e.seq;
  r.append(
    cell(e.seq, 'num'),
    cell(String(e.time).slice(11, 23), 'mono'),
    cell(e.cloud),
    cell(e.method),
    cell(e.operation),
    cell(e.status === 0 ? 'dropped' : e.status, 'num status'),
    cell(Number(e.ms).toFixed(1), 'num'),
    cell(e.path, 'mono'),
  );
  return r;
}

function block() {
  const b = document.createElement('div');
  b.className = 'jblock';
  return b;
}

function updateCount() {
  byId('journal-count').textContent = `(${entries.length} kept, ${shownRows} shown)`;
  byId('journal-list').dataset.rows = shownRows;
}

/** Drops rows beyond the capacity, and rows whose entries left the window. */
function trim(list) {
  const oldest = entries.length ? entries[0].seq : Infinity;
  for (;;) {
    const last = list.lastElementChild;
    if (!last) {
      return;
    }
    const r = last.lastElementChild;
    if (!r) {
      last.remove();
      continue;
    }
    if (shownRows <= CAPACITY && Number(r.dataset.seq) >= oldest) {
      return;
    }
    r.remove();
    shownRows--;
  }
}

/** Rebuilds the whole list from the kept entries and the filters. */
export function renderAll() {
  const started = performance.now();
  const list = byId('journal-rows');
  const fragment = document.createDocumentFragment();
  let current = null;
  shownRows = 0;
  for (let i = entries.length - 1; i >= 0; i--) {
    if (!matches(entries[i])) {
      continue;
    }
    if (shownRows % BLOCK === 0) {
      current = block();
      fragment.append(current);
    }
    current.append(row(entries[i], false));
    shownRows++;
  }
  list.replaceChildren(fragment);
  // Force the layout now, so the figure includes it.
  void list.offsetHeight;
  const ms = performance.now() - started;
  byId('journal-list').dataset.renderMs = ms.toFixed(1);
  byId('journal-render').textContent = `${shownRows} rows rendered in ${ms.toFixed(0)} ms`;
  updateCount();
}

function remember(list) {
  let added = [];
  for (const e of list) {
    if (e.seq <= lastSeq) {
      continue; // already have it (catch-up and stream overlap)
    }
    lastSeq = e.seq;
    entries.push(e);
    added.push(e);
    if (!operations.has(e.operation)) {
      operations.add(e.operation);
      addOperationOption(e.operation);
    }
  }
  if (entries.length > CAPACITY) {
    entries.splice(0, entries.length - CAPACITY);
  }
  if (added.length > CAPACITY) {
    added = added.slice(added.length - CAPACITY);
  }
  return added;
}

function addOperationOption(name) {
  const select = byId('journal-filters').elements.operation;
  const options = [...select.options].slice(1);
  const before = options.find((o) => o.value.localeCompare(name) > 0) || null;
  select.add(h('option', { value: name, textContent: name }), before);
  listeners.forEach((l) => l(name));
}

function flush() {
  frameQueued = false;
  const added = remember(pending).filter(matches);
  pending = [];
  if (added.length === 0) {
    updateCount();
    return;
  }
  const list = byId('journal-rows');
  const fresh = added.length <= HIGHLIGHT_MAX;
  const newestFirst = added.reverse().map((e) => row(e, fresh));
  let first = list.firstElementChild;
  if (first && first.childElementCount + newestFirst.length <= BLOCK) {
    first.prepend(...newestFirst);
  } else {
    // A big batch gets blocks of its own, so each stays skippable.
    const fragment = document.createDocumentFragment();
    for (let i = 0; i < newestFirst.length; i += BLOCK) {
      first = block();
      first.append(...newestFirst.slice(i, i + BLOCK));
      fragment.append(first);
    }
    list.prepend(fragment);
  }
  shownRows += added.length;
  trim(list);
  updateCount();
}

function schedule() {
  if (!frameQueued && !held && pending.length > 0) {
    frameQueued = true;
    requestAnimationFrame(flush);
  }
}

/**
 * Adds one live entry (rendered on the next animation frame, or after the
 * catch-up in progress).
 */
export function push(entry) {
  if (pending.length >= CAPACITY * 2) {
    pending.splice(0, pending.length - CAPACITY);
  }
  pending.push(entry);
  schedule();
}

/**
 * Holds live entries back until `catchUp`: the stream has (re)connected and
 * the entries recorded before it must come first.
 */
export function hold() {
  held = true;
}

/** Adds the entries fetched from the journal, renders, then lets live ones in. */
export function catchUp(list) {
  remember(list);
  renderAll();
  held = false;
  schedule();
}

/** The highest sequence number held. */
export function latestSeq() {
  return lastSeq;
}

/** Operation names seen so far. */
export function knownOperations() {
  return [...operations];
}

/** Calls `listener(name)` for every new operation name. */
export function onNewOperation(listener) {
  listeners.push(listener);
}

/** Wires the filter form. */
export function setUpFilters() {
  const form = byId('journal-filters');
  form.addEventListener('change', () => {
    filter.cloud = form.elements.cloud.value;
    filter.operation = form.elements.operation.value;
    filter.status = form.elements.status.value;
    renderAll();
  });
  form.addEventListener('submit', (e) => e.preventDefault());
}
