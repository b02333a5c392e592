// The live feed: `/_mock/events` read with fetch() and a stream reader
// rather than EventSource, because EventSource cannot send the
// Authorization header that a token-protected mock requires (and a token
// in the URL would end up in logs and history).

import { authHeaders, reportUnauthorized } from './api.js';
import { sleep } from './dom.js';

/** Largest event accepted; a bigger one means something is wrong. */
const MAX_EVENT_CHARS = 1 << 20;
const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5000;

/** Splits one SSE block into `{event, data, id}`. */
function parseBlock(block) {
  let event = 'message';
  let id = null;
  const data = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) {
      continue;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) {
      value = value.slice(1);
    }
    if (field === 'event') {
      event = value;
    } else if (field === 'data') {
      data.push(value);
    } else if (field === 'id') {
      id = value;
    }
  }
  return { event, id, data: data.join('\n') };
}

/** Reads an SSE body to its end, calling `dispatch` for each event. */
async function readEvents(body, dispatch) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      return;
    }
    buffer += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const parsed = parseBlock(block);
      if (parsed.data !== '' || parsed.event !== 'message') {
        dispatch(parsed);
      }
    }
    if (buffer.length > MAX_EVENT_CHARS) {
      await reader.cancel();
      throw new Error('the event stream sent an event over 1 MiB');
    }
  }
}

/**
 * Keeps a connection to the feed open, reconnecting with backoff.
 *
 * handlers: `hello(data)` at each (re)connection, `request(entry)`,
 * `control(change)`, `state(name)` with `live`, `reconnecting`, `offline`
 * or `locked` (a token is needed), and `needToken()` returning a promise
 * that resolves once a token was entered.
 */
export function follow(handlers) {
  let retry = FIRST_RETRY_MS;
  const dispatch = ({ event, data }) => {
    const parsed = data ? JSON.parse(data) : null;
    if (event === 'hello') {
      handlers.hello(parsed);
    } else if (event === 'request') {
      handlers.request(parsed);
    } else if (event === 'control') {
      handlers.control(parsed);
    }
  };
  (async () => {
    for (;;) {
      let response;
      try {
        response = await fetch('/_mock/events', {
          cache: 'no-store',
          headers: authHeaders({ Accept: 'text/event-stream' }),
        });
      } catch {
        handlers.state('offline');
        await sleep(retry);
        retry = Math.min(retry * 2, MAX_RETRY_MS);
        continue;
      }
      if (response.status === 401) {
        handlers.state('locked');
        reportUnauthorized('the event stream needs the control token');
        await handlers.needToken();
        continue;
      }
      if (!response.ok || !response.body) {
        handlers.state('offline');
        await sleep(retry);
        retry = Math.min(retry * 2, MAX_RETRY_MS);
        continue;
      }
      handlers.state('live');
      retry = FIRST_RETRY_MS;
      try {
        await readEvents(response.body, dispatch);
      } catch {
        // A broken connection: reconnect below.
      }
      // The mock ends a stream that fell too far behind; reconnecting and
      // catching up from the journal brings the page back in step.
      handlers.state('reconnecting');
      await sleep(retry);
    }
  })();
}
