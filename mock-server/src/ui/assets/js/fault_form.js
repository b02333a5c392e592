// The "add a rule" form. A rule is checked here before it is sent, with
// the mock's own limits (see FaultRule::validate in faults.rs), so a typo
// gets an answer naming the field without a round trip. A rule pasted as
// JSON is only checked for its shape: the mock checks its fields, and its
// refusal is shown as it wrote it.

import { ApiError, api } from './api.js';
import { byId, h, markInvalid } from './dom.js';
import { current, render } from './faults.js';

const CLOUDS = ['aws', 'azure', 'gcp'];
const KINDS = ['latency', 'hang', 'error', 'throttle', 'fail_operation', 'reset', 'lose_answer', 'not_found_reads', 'stuck'];
const U32_MAX = 4294967295;

/** Operation names worth suggesting before the journal has any. */
const COMMON_OPERATIONS = [
  'RunInstances', 'DescribeInstances', 'TerminateInstances', 'StopInstances', 'StartInstances', 'CreateTags',
  'VirtualMachines_CreateOrUpdate', 'VirtualMachines_Get', 'VirtualMachines_Delete',
  'NetworkInterfaces_CreateOrUpdate', 'PublicIPAddresses_CreateOrUpdate', 'Disks_CreateOrUpdate',
  'compute.instances.insert', 'compute.instances.get', 'compute.instances.delete', 'compute.zoneOperations.get',
];

/** A failed check: which input, and why. */
class Invalid extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

function wholeNumber(form, name, label, min, max) {
  const text = form.elements[name].value.trim();
  if (!/^\d+$/.test(text)) {
    throw new Invalid(name, `${label}: must be a whole number, got "${text}"`);
  }
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new Invalid(name, `${label}: must be within ${min} to ${max}, got ${text}`);
  }
  return n;
}

function requiredText(form, name, label) {
  const text = form.elements[name].value.trim();
  if (text === '') {
    throw new Invalid(name, `${label}: must not be empty`);
  }
  return text;
}

function effectFrom(form) {
  const kind = form.elements.kind.value;
  switch (kind) {
    case 'latency':
      return { kind, ms: wholeNumber(form, 'ms', 'delay (ms)', 0, Number.MAX_SAFE_INTEGER) };
    case 'error':
      return {
        kind,
        status: wholeNumber(form, 'status', 'status', 400, 599),
        code: requiredText(form, 'code', 'code'),
        message: form.elements.message.value.trim(),
      };
    case 'throttle':
      return { kind, retry_after_s: wholeNumber(form, 'retry_after_s', 'retry after (s)', 0, Number.MAX_SAFE_INTEGER) };
    case 'fail_operation':
      return { kind, code: requiredText(form, 'code', 'code'), message: form.elements.message.value.trim() };
    case 'not_found_reads':
      return { kind, count: wholeNumber(form, 'reads', 'reads', 0, U32_MAX) };
    case 'hang':
    case 'reset':
    case 'lose_answer':
    case 'stuck':
      return { kind };
    default:
      throw new Invalid('kind', `effect: unknown kind "${kind}"`);
  }
}

/** Builds and checks the rule the fields describe. */
export function ruleFromFields(form) {
  const cloud = form.elements.cloud.value;
  if (!CLOUDS.includes(cloud)) {
    throw new Invalid('cloud', `cloud: must be one of ${CLOUDS.join(', ')}`);
  }
  const rule = { cloud, operation: requiredText(form, 'operation', 'operation (use * for any)') };
  const resource = form.elements.resource.value.trim();
  if (resource !== '') {
    rule.resource = resource;
  }
  const fires = form.elements.fires.value;
  if (fires === 'count') {
    rule.count = wholeNumber(form, 'count', 'N', 0, Number.MAX_SAFE_INTEGER);
  } else if (fires === 'probability') {
    const text = form.elements.probability.value.trim();
    const p = Number(text);
    if (text === '' || !Number.isFinite(p) || p < 0 || p > 1) {
      throw new Invalid('probability', `p: must be a number from 0 to 1, got "${text}"`);
    }
    rule.probability = p;
  }
  rule.effect = effectFrom(form);
  return rule;
}

/** Parses the JSON box: one rule object with its required members. */
export function ruleFromJson(text) {
  let rule;
  try {
    rule = JSON.parse(text);
  } catch (e) {
    throw new Invalid('json', `JSON: ${e.message}`);
  }
  if (rule === null || typeof rule !== 'object' || Array.isArray(rule)) {
    throw new Invalid('json', 'JSON: must be one rule object, {"cloud": ..., "operation": ..., "effect": {...}}');
  }
  for (const key of ['cloud', 'operation', 'effect']) {
    if (!(key in rule)) {
      throw new Invalid('json', `JSON: the rule needs "${key}"`);
    }
  }
  if (rule.effect === null || typeof rule.effect !== 'object' || typeof rule.effect.kind !== 'string') {
    throw new Invalid('json', `JSON: effect needs a "kind" (one of ${KINDS.join(', ')})`);
  }
  return rule;
}

function showFor(form) {
  const kind = form.elements.kind.value;
  const fires = form.elements.fires.value;
  for (const label of form.querySelectorAll('[data-for-kind]')) {
    label.hidden = !label.dataset.forKind.split(' ').includes(kind);
  }
  for (const label of form.querySelectorAll('[data-for-fires]')) {
    label.hidden = label.dataset.forFires !== fires;
  }
}

function clearMarks(form) {
  for (const el of form.querySelectorAll('[aria-invalid]')) {
    markInvalid(el, false);
  }
}

async function submit(event) {
  event.preventDefault();
  const form = event.target;
  const error = byId('fault-error');
  error.textContent = '';
  delete error.dataset.source;
  clearMarks(form);
  let rule;
  try {
    const json = form.elements.json.value.trim();
    rule = json === '' ? ruleFromFields(form) : ruleFromJson(json);
  } catch (e) {
    if (!(e instanceof Invalid)) {
      throw e;
    }
    markInvalid(form.elements[e.field], true);
    error.dataset.source = 'page';
    error.textContent = e.message;
    form.elements[e.field].focus();
    return;
  }
  try {
    render(await api.putFaults([...current(), rule]));
    form.elements.json.value = '';
  } catch (e) {
    error.dataset.source = e instanceof ApiError ? 'mock' : 'page';
    error.textContent = e.message;
  }
}

/** Keeps the operation suggestions in step with what the journal saw. */
export function suggestOperation(name) {
  const list = byId('operation-names');
  if (![...list.options].some((o) => o.value === name)) {
    list.append(h('option', { value: name }));
  }
}

/** Wires the form. */
export function setUpForm() {
  const form = byId('fault-form');
  COMMON_OPERATIONS.forEach(suggestOperation);
  form.addEventListener('change', () => showFor(form));
  form.addEventListener('submit', submit);
  showFor(form);
}
