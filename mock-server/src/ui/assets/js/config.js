// The configuration in force (`/_mock/config`): time scale, hang cap and
// each cloud's throttles, with a form for the time scale and a switch per
// cloud's throttling. A cloud section sent back replaces that cloud's
// settings as a whole, so the switch sends the whole section it read.

import { ApiError, api } from './api.js';
import { byId, h, markInvalid, replace } from './dom.js';

const CLOUDS = ['aws', 'azure', 'gcp'];

let config = null;

function limitText(value) {
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).map(([k, v]) => `${k} ${v}`).join(', ');
  }
  return String(value);
}

function throttleBlock(cloud, section) {
  const throttle = (section && section.throttle) || {};
  const on = Boolean(throttle.enabled);
  const toggle = h('button', {
    type: 'button',
    textContent: on ? 'turn off' : 'turn on',
    data: { throttleToggle: cloud },
  });
  const list = h('dl', { className: 'config' });
  for (const [key, value] of Object.entries(throttle)) {
    if (key !== 'enabled') {
      list.append(h('dt', { textContent: key }), h('dd', { textContent: limitText(value) }));
    }
  }
  const details = h('details', {}, h('summary', { textContent: 'limits' }), list);
  const all = h('details', {},
    h('summary', { textContent: `all ${cloud} settings` }),
    h('pre', { className: 'mono', textContent: JSON.stringify(section, null, 2) }));
  return h('div', { data: { cloud } },
    h('h4', {},
      `${cloud} throttling `,
      h('span', { className: 'badge', textContent: on ? 'on' : 'off', data: { tone: on ? 'wait' : 'off' } }),
      ' ', toggle),
    details, all);
}

/** Renders a configuration document. */
export function render(doc) {
  config = doc;
  const input = byId('time-scale');
  if (document.activeElement !== input) {
    input.value = String(doc.time_scale);
  }
  const top = h('dl', { className: 'config' },
    h('dt', { textContent: 'time scale' }),
    h('dd', { id: 'config-time-scale', textContent: `${doc.time_scale} (a 60 s creation takes ${(60 * doc.time_scale).toPrecision(3)} s)` }),
    h('dt', { textContent: 'hang cap' }),
    h('dd', { textContent: `${doc.max_hang_ms} ms` }));
  replace(byId('config'), top, ...CLOUDS.map((c) => throttleBlock(c, doc[c])));
}

/** Fetches and renders. */
export async function refresh() {
  render(await api.config());
}

async function apply(doc, error) {
  error.textContent = '';
  try {
    render(await api.putConfig(doc));
  } catch (e) {
    error.dataset.source = e instanceof ApiError ? 'mock' : 'page';
    error.textContent = e.message;
  }
}

/** Wires the time scale form and the throttle switches. */
export function setUpConfig() {
  const error = byId('time-error');
  byId('time-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = byId('time-scale');
    const text = input.value.trim();
    const scale = Number(text);
    const bad = text === '' || !Number.isFinite(scale) || scale < 0;
    markInvalid(input, bad);
    if (bad) {
      error.dataset.source = 'page';
      error.textContent = `time scale: must be a number >= 0, got "${text}"`;
      return;
    }
    apply({ time_scale: scale }, error);
    input.blur();
  });
  byId('config').addEventListener('click', (e) => {
    const cloud = e.target && e.target.dataset ? e.target.dataset.throttleToggle : undefined;
    if (!cloud || !config || !config[cloud]) {
      return;
    }
    const section = structuredClone(config[cloud]);
    section.throttle = { ...(section.throttle || {}), enabled: !(section.throttle && section.throttle.enabled) };
    apply({ [cloud]: section }, error);
  });
}
