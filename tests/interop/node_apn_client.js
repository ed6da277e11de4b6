// Interop client: @parse/node-apn (npm), pointed at the herald mock APNs server.
// Usage: node node_apn_client.js <config.json>
// The config (written by tests/mock_interop.rs) names the module directory, the mock's address,
// its CA, a .p8 key, a push certificate and three device tokens (ok, unregistered, unknown).
// Prints one JSON object: for each auth mode, what node-apn itself reported for each token.
'use strict';
const fs = require('fs');
const path = require('path');

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const apn = require(path.join(cfg.node_modules, '@parse/node-apn'));

function summarize(result) {
  const out = [];
  for (const s of result.sent) {
    out.push({ device: s.device, sent: true, status: 200, apns_id: s['apns-id'] || null,
               unique_id: s['apns-unique-id'] || null });
  }
  for (const f of result.failed) {
    out.push({
      device: f.device,
      sent: false,
      status: f.status === undefined ? null : Number(f.status),
      reason: f.response ? f.response.reason : null,
      timestamp: f.response && f.response.timestamp !== undefined ? f.response.timestamp : null,
      error: f.error ? String(f.error) : null,
    });
  }
  return out;
}

async function run(mode) {
  const options = {
    production: false,
    address: `${cfg.host}:${cfg.port}`,
    port: cfg.port,
    ca: fs.readFileSync(cfg.ca),
    connectionRetryLimit: 1,
    requestTimeout: 5000,
  };
  if (mode === 'token') {
    options.token = { key: fs.readFileSync(cfg.p8), keyId: cfg.key_id, teamId: cfg.team_id };
  } else {
    options.cert = fs.readFileSync(cfg.cert);
    options.key = fs.readFileSync(cfg.cert_key);
  }
  const provider = new apn.Provider(options);
  const results = [];
  try {
    // One recipient at a time, so the answers map to tokens without ambiguity.
    for (const token of [cfg.tokens.ok, cfg.tokens.ok, cfg.tokens.unregistered, cfg.tokens.unknown]) {
      const note = new apn.Notification();
      note.alert = `hello from node-apn (${mode})`;
      note.topic = cfg.topic;
      note.pushType = 'alert';
      note.payload = { interop: 'node-apn', mode };
      results.push(...summarize(await provider.send(note, token)));
    }
  } finally {
    provider.shutdown();
  }
  return results;
}

(async () => {
  const report = { client: 'node-apn', token: await run('token'), certificate: await run('certificate') };
  process.stdout.write(JSON.stringify(report) + '\n');
  // node-apn keeps timers briefly after shutdown; do not wait for them.
  process.exit(0);
})().catch(e => {
  process.stderr.write(`node-apn interop failed: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
