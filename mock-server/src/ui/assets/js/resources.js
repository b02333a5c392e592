// Resources of every cloud and partition with their states, from
// `/_mock/resources` (which carries no credentials: cloud, partition id,
// kind, id, name, state, tags, creation time).

import { api } from './api.js';
import { byId, h, td, replace } from './dom.js';

const CLOUDS = ['aws', 'azure', 'gcp'];

/** Settled states by tone; anything else is on its way somewhere. */
const OK = new Set(['running', 'succeeded']);
const OFF = new Set(['stopped', 'terminated', 'suspended']);
const BAD = new Set(['failed', 'canceled']);

/** `ok`, `wait`, `bad` or `off` for a cloud's own state string. */
export function tone(state) {
  const s = String(state).toLowerCase();
  if (OK.has(s)) {
    return 'ok';
  }
  if (OFF.has(s)) {
    return 'off';
  }
  if (BAD.has(s)) {
    return 'bad';
  }
  return 'wait';
}

function tagList(tags) {
  const cell = td('', 'tags wrap');
  for (const [k, v] of Object.entries(tags || {})) {
    cell.append(h('span', { textContent: `${k}=${v}` }));
  }
  return cell;
}

function row(r) {
  const tr = h('tr', { data: { id: r.id, state: r.state, kind: r.kind } });
  const state = td('');
  state.append(h('span', { className: 'badge', textContent: r.state, data: { tone: tone(r.state) } }));
  tr.append(td(r.kind), td(r.name, 'mono'), td(r.id, 'mono wrap'), state, tagList(r.tags), td(r.created));
  return tr;
}

function table(resources) {
  const head = h('tr', {}, ...['kind', 'name', 'id', 'state', 'tags', 'created'].map((t) => h('th', { textContent: t })));
  const body = h('tbody');
  body.append(...resources.map(row));
  return h('table', {}, h('thead', {}, head), body);
}

let shown = '';
let transitional = false;

/** Renders a resource list (re-renders only when it changed). */
export function render(list) {
  const text = JSON.stringify(list);
  if (text === shown) {
    return;
  }
  shown = text;
  transitional = list.some((r) => tone(r.state) === 'wait');
  byId('resource-count').textContent = `(${list.length})`;
  const byCloud = new Map(CLOUDS.map((c) => [c, new Map()]));
  for (const r of list) {
    if (!byCloud.has(r.cloud)) {
      byCloud.set(r.cloud, new Map());
    }
    const parts = byCloud.get(r.cloud);
    if (!parts.has(r.partition)) {
      parts.set(r.partition, []);
    }
    parts.get(r.partition).push(r);
  }
  const blocks = [];
  for (const [cloud, parts] of byCloud) {
    const block = h('div', { className: 'cloud', data: { cloud } }, h('h3', { textContent: cloud }));
    if (parts.size === 0) {
      block.append(h('p', { className: 'muted', textContent: 'nothing' }));
    }
    for (const [partition, resources] of [...parts].sort(([a], [b]) => a.localeCompare(b))) {
      resources.sort((a, b) => a.created.localeCompare(b.created) || a.id.localeCompare(b.id));
      block.append(
        h('h4', { textContent: `${partitionLabel(cloud)} ${partition} (${resources.length})` }),
        table(resources),
      );
    }
    blocks.push(block);
  }
  replace(byId('resources'), ...blocks);
}

function partitionLabel(cloud) {
  return { aws: 'account', azure: 'subscription', gcp: 'project' }[cloud] || 'partition';
}

/** Fetches and renders. */
export async function refresh() {
  render(await api.resources());
}

/** Whether any resource is between states (worth polling for). */
export function anyTransitional() {
  return transitional;
}
