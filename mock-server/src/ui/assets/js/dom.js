// Small DOM helpers. Text from the mock is only ever set as text, never
// parsed as HTML.

/** `document.getElementById`, failing loudly when the page lacks it. */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) {
    throw new Error(`the page has no #${id}`);
  }
  return el;
}

/**
 * Creates an element. `props` sets properties (`className`, `textContent`,
 * `dataset` entries via `data`), `children` are nodes or strings.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) {
      continue;
    }
    if (key === 'data') {
      Object.assign(el.dataset, value);
    } else {
      el[key] = value;
    }
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      el.append(child);
    }
  }
  return el;
}

/** A table cell with text and an optional class. */
export function td(text, className) {
  const cell = document.createElement('td');
  cell.textContent = text === undefined || text === null ? '' : String(text);
  if (className) {
    cell.className = className;
  }
  return cell;
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren(...children);
}

/** Runs `fn` at most once per `ms`, at the end of a burst of calls. */
export function debounce(ms, fn) {
  let timer = null;
  return () => {
    if (timer !== null) {
      return;
    }
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
}

/** Resolves after `ms`. */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Sets or clears an input's error state. */
export function markInvalid(input, invalid) {
  if (invalid) {
    input.setAttribute('aria-invalid', 'true');
  } else {
    input.removeAttribute('aria-invalid');
  }
}
