// verify.mjs checks session_auth's signed assertions with npm's jose, the
// way a Node app behind sessiongate does: the key set fetched from the
// JWKS path, then jwtVerify with the issuer and audience the app expects.
//
// Input (argv[2], JSON): {"jwks": "<url>", "checks": [{"token": "...",
// "issuer": "...", "audience": "...", "now": <unix seconds, optional>}]}.
// Output (stdout, JSON): one result per check, {"ok": true, "header": {...},
// "payload": {...}} or {"ok": false, "code": "<jose error code>",
// "message": "..."}.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const input = JSON.parse(process.argv[2]);
const keys = createRemoteJWKSet(new URL(input.jwks));
const results = [];
for (const c of input.checks) {
  const opts = { issuer: c.issuer, audience: c.audience, algorithms: ['ES256', 'EdDSA'] };
  if (c.now) {
    opts.currentDate = new Date(c.now * 1000);
  }
  try {
    const { payload, protectedHeader } = await jwtVerify(c.token, keys, opts);
    results.push({ ok: true, header: protectedHeader, payload });
  } catch (err) {
    results.push({ ok: false, code: err.code || 'ERR', message: String(err.message) });
  }
}
process.stdout.write(JSON.stringify(results));
