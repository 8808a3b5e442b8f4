// Test-site glue: creates the real OpenReplay tracker and wires the page's controls to it.
// The per-run settings (ingest point, project key) come from /config.js, which the test's static
// server writes for each run.
(function () {
  const cfg = window.E2E_CONFIG;
  const tracker = new window.ORTracker({
    projectKey: cfg.projectKey,
    ingestPoint: cfg.ingestPoint,
    revID: 'e2e-rev-1',
    // Plain http on 127.0.0.1: without this the tracker refuses to start.
    __DISABLE_SECURE_MODE: true,
    network: { capturePayload: true },
    // Plain mode for ordinary inputs, so the test can tell a recorded text value from a
    // password (the tracker hides passwords whatever this mode says).
    defaultInputMode: 0,
  });
  window.tracker = tracker;
  window.trackerStart = tracker.start().then((result) => {
    window.trackerStartResult = result;
    return result;
  });

  function on(id, handler) {
    const el = document.getElementById(id);
    if (el) el.addEventListener('click', handler);
  }

  on('identify', () => {
    tracker.setUserID('user-42');
    tracker.setMetadata('plan', 'pro');
  });
  on('checkout', () => {
    tracker.event('checkout', { items: 2, total: 49.5, currency: 'EUR' });
  });
  on('boom', () => {
    // Thrown from a timer so it reaches window.onerror as an uncaught error.
    setTimeout(() => { throw new Error('e2e boom: checkout exploded'); }, 0);
  });
  on('fetch-missing', () => {
    fetch('/api/missing-thing?q=1').then((r) => {
      document.getElementById('fetch-status').textContent = 'status ' + r.status;
    });
  });
  on('spa-nav', () => {
    history.pushState({ step: 2 }, '', '/checkout/step-2');
    document.getElementById('spa-state').textContent = 'SPA step 2';
  });
  on('flush', () => tracker.forceFlushBatch());
})();
