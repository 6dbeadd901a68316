'use strict';
// Drives Axway's Amplify SDK (@axway/amplify-sdk, pinned in package.json)
// through its own account lookup, auth.find, against a given platform.
//
// Usage: node find.js '<json>' where json is
//   {"platformUrl": "...", "baseUrl": "...", "sid": "...", "token": "...",
//    "user": "<user guid or empty>", "org": {"guid": "...", "id": 1, "name": "..."}}
// The account is put in the SDK's in-memory token store, as the SDK's login
// leaves it (access token valid for an hour, connect.sid when it has one).
// Prints one JSON line: {"account": ...} or {"error": {"message", "code", "status"}},
// with "requests": the platform requests the SDK made, in order, each with
// the credential it carried.
const { default: AmplifySDK } = require('@axway/amplify-sdk');
const MemoryStore = require('@axway/amplify-sdk/dist/stores/memory-store').default;

const args = JSON.parse(process.argv[2] || '{}');
const allowed = [args.platformUrl, args.baseUrl].map(u => new URL(u).host);
const requests = [];

const tokenStore = new MemoryStore();
const sdk = new AmplifySDK({
	baseUrl: args.baseUrl,
	platformUrl: args.platformUrl,
	clientId: 'sessiongate-test',
	realm: 'Broker',
	tokenStore,
	requestOptions: {
		timeout: { request: 10000 },
		hooks: {
			beforeRequest: [opts => {
				const url = new URL(opts.url);
				// Nothing leaves the test: the SDK's logout of an invalidated
				// account calls the production platform.
				if (!allowed.includes(url.host)) {
					throw new Error(`refused request to ${url.host}`);
				}
				const h = opts.headers;
				requests.push({
					method: opts.method,
					path: url.pathname + url.search,
					cred: h.cookie ? 'cookie' : h.authorization ? 'bearer' : 'none'
				});
			}]
		}
	}
});

async function main() {
	const now = Date.now();
	await tokenStore.set({
		auth: {
			authenticator: 'PKCE',
			baseUrl: args.baseUrl,
			clientId: 'sessiongate-test',
			env: 'prod',
			expires: { access: now + 3600e3, refresh: now + 7200e3 },
			realm: 'Broker',
			tokens: { access_token: args.token, id_token: 'id-token', refresh_token: 'refresh-token' }
		},
		hash: 'sessiongate-test:hash',
		name: 'sessiongate-test:account',
		sid: args.sid || undefined,
		org: args.org || {},
		orgs: args.org ? [ args.org ] : [],
		user: { guid: args.user || undefined }
	});
	try {
		const account = await sdk.auth.find('sessiongate-test:account');
		if (account && account.auth) {
			// The tokens are the caller's own; the expiry is the clock's.
			delete account.auth.tokens;
			delete account.auth.expires;
		}
		return { account: account || null, requests };
	} catch (err) {
		const status = err.response ? err.response.statusCode : null;
		return { error: { message: err.message, code: err.code === undefined ? null : err.code, status }, requests };
	}
}

main().then(out => {
	process.stdout.write(JSON.stringify(out) + '\n');
}, err => {
	process.stdout.write(JSON.stringify({ error: { message: String(err), code: 'SCRIPT' }, requests }) + '\n');
	process.exitCode = 1;
});
