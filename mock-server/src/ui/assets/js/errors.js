// Error reporting, loaded as a classic script before any module so that
// nothing goes unnoticed: uncaught exceptions, rejected promises, files
// that fail to load and Content-Security-Policy violations are shown in
// the page's error bar and kept in `window.__dashboardErrors` (which the
// browser test reads).
'use strict';

(function () {
  const MAX_ERRORS = 50;
  const errors = [];
  window.__dashboardErrors = errors;

  function show(message) {
    const box = document.getElementById('errors');
    if (!box) {
      return;
    }
    while (box.childElementCount >= MAX_ERRORS) {
      box.firstElementChild.remove();
    }
    const p = document.createElement('p');
    p.textContent = message;
    box.append(p);
    box.hidden = false;
  }

  function report(message) {
    const text = String(message);
    if (errors.length < MAX_ERRORS) {
      errors.push(text);
    }
    if (document.readyState === 'loading') {
      document.addEventListener('DOMContentLoaded', () => show(text), { once: true });
    } else {
      show(text);
    }
  }
  window.dashboardReport = report;

  window.addEventListener('error', (e) => {
    if (e.target && e.target !== window && (e.target.src || e.target.href)) {
      report(`could not load ${e.target.src || e.target.href}`);
    } else {
      report(`${e.message} (${e.filename}:${e.lineno})`);
    }
  }, true);
  window.addEventListener('unhandledrejection', (e) => {
    const r = e.reason;
    report(`unhandled: ${r && r.message ? r.message : r}`);
  });
  document.addEventListener('securitypolicyviolation', (e) => {
    report(`blocked by the content security policy: ${e.violatedDirective} ${e.blockedURI}`);
  });
})();
