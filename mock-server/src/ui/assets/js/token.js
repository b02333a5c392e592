// The control token: asked once when the mock answers 401, checked against
// the mock, then kept in sessionStorage for this tab. The page never shows
// it back.

import { ApiError, call, forgetToken, onUnauthorized, storedToken, storeToken } from './api.js';
import { byId } from './dom.js';

let waiters = [];
let unlocked = () => {};

function ask(message) {
  const dialog = byId('token-dialog');
  const error = byId('token-error');
  if (storedToken()) {
    // The kept token stopped working (the mock restarted with another).
    forgetToken();
    error.textContent = `The kept token no longer works: ${message}`;
  } else if (!dialog.open) {
    error.textContent = '';
  }
  byId('forget-token').hidden = true;
  if (!dialog.open) {
    dialog.showModal();
  }
  byId('token-input').focus();
}

async function submit(event) {
  event.preventDefault();
  const input = byId('token-input');
  const error = byId('token-error');
  const token = input.value.trim();
  if (token === '') {
    error.textContent = 'Enter the token the mock was started with.';
    return;
  }
  storeToken(token);
  try {
    await call('GET', '/_mock/health');
  } catch (e) {
    forgetToken();
    error.textContent = e instanceof ApiError && e.status === 401
      ? 'The mock refused this token.'
      : `Could not check the token: ${e.message}`;
    input.select();
    return;
  }
  input.value = '';
  error.textContent = '';
  byId('token-dialog').close();
  byId('forget-token').hidden = false;
  const resolve = waiters;
  waiters = [];
  resolve.forEach((w) => w());
  unlocked();
}

/**
 * Wires the dialog. `onUnlock` runs after a good token was entered (to
 * reload what the page could not read without it).
 */
export function setUpToken(onUnlock) {
  unlocked = onUnlock;
  onUnauthorized(ask);
  byId('token-form').addEventListener('submit', submit);
  byId('token-dialog').addEventListener('cancel', (e) => e.preventDefault());
  const forget = byId('forget-token');
  forget.hidden = storedToken() === null;
  forget.addEventListener('click', () => {
    forgetToken();
    window.location.reload();
  });
}

/** Resolves once a token has been entered and accepted. */
export function needToken() {
  return new Promise((resolve) => waiters.push(resolve));
}
