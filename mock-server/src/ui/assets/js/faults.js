// The fault rules in force, from `/_mock/faults`, each with a remove button.
// Removing one sends the list without it (`PUT /_mock/faults`); what is
// left of a `count` rule is kept, because the mock lists remaining counts.

import { api } from './api.js';
import { byId, h, td } from './dom.js';

let rules = [];

/** The rules as last read from the mock. */
export function current() {
  return rules.map((r) => ({ ...r }));
}

/** A short text for a rule's effect. */
export function describeEffect(effect) {
  switch (effect.kind) {
    case 'latency':
      return `latency ${effect.ms} ms`;
    case 'error':
      return `error ${effect.status} ${effect.code}${effect.message ? `: ${effect.message}` : ''}`;
    case 'throttle':
      return `throttle, retry after ${effect.retry_after_s} s`;
    case 'fail_operation':
      return `fail operation ${effect.code}${effect.message ? `: ${effect.message}` : ''}`;
    case 'not_found_reads':
      return `next ${effect.count} reads answer 404`;
    case 'stuck':
      return 'operation never ends';
    default:
      return effect.kind;
  }
}

function fires(rule) {
  if (rule.count !== undefined && rule.count !== null) {
    return rule.count === 0 ? 'used up' : `${rule.count} more`;
  }
  if (rule.probability !== undefined && rule.probability !== null) {
    return `p = ${rule.probability}`;
  }
  return 'always';
}

/** Renders a rule list. */
export function render(list) {
  rules = Array.isArray(list) ? list : [];
  const body = byId('fault-rows');
  body.replaceChildren(...rules.map((rule, i) => {
    const remove = h('button', { type: 'button', textContent: 'remove', data: { remove: String(i) } });
    const actions = td('');
    actions.append(remove);
    return h('tr', { data: { index: String(i), operation: rule.operation, kind: rule.effect.kind } },
      td(i, 'num'),
      td(rule.cloud),
      td(rule.operation, 'mono'),
      td(rule.resource || '', 'mono'),
      td(fires(rule)),
      td(describeEffect(rule.effect), 'wrap effect'),
      actions);
  }));
  byId('fault-none').hidden = rules.length > 0;
  byId('faults-clear').hidden = rules.length === 0;
}

/** Fetches and renders. */
export async function refresh() {
  render(await api.faults());
}

/** Whether some rule counts down (its list changes as calls arrive). */
export function counting() {
  return rules.some((r) => typeof r.count === 'number' && r.count > 0);
}

/** Wires the remove buttons; `fail(message)` shows a refusal. */
export function setUpList(fail) {
  byId('fault-rows').addEventListener('click', async (e) => {
    const index = e.target && e.target.dataset ? e.target.dataset.remove : undefined;
    if (index === undefined) {
      return;
    }
    const keep = current().filter((_, i) => String(i) !== index);
    try {
      render(await api.putFaults(keep));
    } catch (err) {
      fail(err.message);
    }
  });
  byId('faults-clear').addEventListener('click', async () => {
    try {
      render(await api.deleteFaults());
    } catch (err) {
      fail(err.message);
    }
  });
}
