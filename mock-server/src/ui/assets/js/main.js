// The dashboard: wires the sections to the control API and the live feed.
//
// Every cloud request the mock answers arrives on the feed; the journal
// shows it at once, and the resource list (and any counting fault rule) is
// re-read shortly after, since the request may have changed them. While a
// resource is between states (pending, Updating, STAGING...) the list is
// also re-read every second, because the mock's states advance with time.

import { ApiError, api } from './api.js';
import { byId, debounce } from './dom.js';
import * as config from './config.js';
import * as faults from './faults.js';
import { setUpForm, suggestOperation } from './fault_form.js';
import * as journal from './journal.js';
import { follow } from './live.js';
import * as resources from './resources.js';
import { needToken, setUpToken } from './token.js';

const POLL_MS = 1000;
const AFTER_REQUEST_MS = 100;

/** Shows an error, except a 401: the token dialog deals with those. */
function report(e) {
  if (e instanceof ApiError && e.status === 401) {
    return;
  }
  window.dashboardReport(e && e.message ? e.message : String(e));
}

const totals = { total: 0, byCloud: {} };

function showTotals() {
  const parts = Object.entries(totals.byCloud).map(([cloud, n]) => `${cloud} ${n}`);
  byId('totals').textContent = `${totals.total} requests${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

async function loadStats() {
  const stats = await api.stats();
  totals.total = stats.total;
  totals.byCloud = { ...stats.by_cloud };
  showTotals();
}

const refreshResources = debounce(AFTER_REQUEST_MS, () => resources.refresh().catch(report));
const refreshFaults = debounce(AFTER_REQUEST_MS, () => faults.refresh().catch(report));
const refreshConfig = debounce(AFTER_REQUEST_MS, () => config.refresh().catch(report));

async function loadAll() {
  const loads = [resources.refresh(), faults.refresh(), config.refresh()];
  const results = await Promise.allSettled(loads);
  results.filter((r) => r.status === 'rejected').forEach((r) => report(r.reason));
}

let caughtUp = false;

function onHello() {
  journal.hold();
  const done = () => {
    if (!caughtUp) {
      caughtUp = true;
      document.body.dataset.ready = 'true';
    }
  };
  api.requests(journal.latestSeq())
    .then((list) => {
      journal.catchUp(list);
      done();
    })
    .catch((e) => {
      journal.catchUp([]);
      report(e);
    });
  loadStats().catch(report);
  // Whatever happened while the stream was down.
  refreshResources();
  refreshFaults();
  refreshConfig();
}

function onRequest(entry) {
  journal.push(entry);
  totals.total += 1;
  totals.byCloud[entry.cloud] = (totals.byCloud[entry.cloud] || 0) + 1;
  showTotals();
  refreshResources();
  if (faults.counting()) {
    refreshFaults();
  }
}

function onControl(change) {
  const path = String(change.path);
  if (path.startsWith('/_mock/faults')) {
    refreshFaults();
  } else if (path.startsWith('/_mock/config')) {
    refreshConfig();
  } else {
    // A reset, or anything else: resources may have gone.
    refreshResources();
    refreshFaults();
  }
}

function onState(state) {
  const badge = byId('live');
  badge.dataset.state = state;
  badge.textContent = {
    live: 'live',
    reconnecting: 'reconnecting',
    offline: 'mock not reachable',
    locked: 'token needed',
  }[state] || state;
}

function start() {
  setUpToken(() => loadAll());
  journal.setUpFilters();
  journal.onNewOperation(suggestOperation);
  setUpForm();
  faults.setUpList((message) => {
    const error = byId('fault-error');
    error.dataset.source = 'mock';
    error.textContent = message;
  });
  config.setUpConfig();
  loadAll();
  follow({
    hello: onHello,
    request: onRequest,
    control: onControl,
    state: onState,
    needToken,
  });
  setInterval(() => {
    if (resources.anyTransitional()) {
      refreshResources();
    }
  }, POLL_MS);
}

start();
