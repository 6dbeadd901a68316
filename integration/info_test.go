package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

// sameAnswer compares Caddy's answer with the service's own, field by
// field, both ways. Fields named in approx are counters that move with the
// clock (remaining lifetimes) and may differ by a couple of seconds.
func sameAnswer(t *testing.T, what string, got, want map[string]any, approx ...string) {
	t.Helper()
	loose := map[string]bool{}
	for _, a := range approx {
		loose[a] = true
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: field %q missing (service answered %v)", what, k, w)
			continue
		}
		if loose[k] {
			gf, gok := g.(float64)
			wf, wok := w.(float64)
			if !gok || !wok || math.Abs(gf-wf) > 2 {
				t.Errorf("%s: field %q = %v, service answered %v", what, k, g, w)
			}
			continue
		}
		if !reflect.DeepEqual(g, w) {
			gj, _ := json.Marshal(g)
			wj, _ := json.Marshal(w)
			t.Errorf("%s: field %q = %s, service answered %s", what, k, gj, wj)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: extra field %q = %v the service does not answer", what, k, g)
		}
	}
}

// infoCase runs one dialect: Caddy's session_info in the dialect's shape
// must answer what the emulated product answers its own clients, for a
// live session and for an unknown token, on every request of reqs. One
// Caddy serves them all.
type infoCase struct {
	dialect string
	svc     http.Handler
	// routes are the session_info routes on the test Caddy (the
	// product's own paths); behind, when set, is what they proxy the
	// requests session_info does not answer to.
	routes []string
	behind string
	reqs   []infoRequest
}

// infoRequest is one client request: method, path and body, with a live
// session's credentials (auth) and an unknown one's (bad). Fields named
// in approx move with the clock; check, when set, looks further at the
// live session's answer.
type infoRequest struct {
	name, method, path, body string
	auth, bad                http.Header
	approx                   []string
	check                    func(t *testing.T, got map[string]any)
}

func runInfoCase(t *testing.T, c infoCase) {
	t.Helper()
	svc := httptest.NewServer(c.svc)
	t.Cleanup(svc.Close)
	var routes strings.Builder
	for _, r := range c.routes {
		fmt.Fprintf(&routes, "\troute %s {\n\t\tsession_info %s\n", r, c.dialect)
		if c.behind != "" {
			fmt.Fprintf(&routes, "\t\treverse_proxy %s\n", c.behind)
		}
		routes.WriteString("\t}\n")
	}
	startCaddyWith(t, "", fmt.Sprintf(`
:%d {
	session_auth %s %s {
		optional
	}
%s	respond "not here" 404
}`, httpPort, c.dialect, svc.URL, routes.String()))

	for _, r := range c.reqs {
		t.Run(r.name, func(t *testing.T) {
			// The product's own answers first: the emulators' clocks are
			// fixed, so reading a session does not change what it
			// answers next.
			wantResp, want := callJSON(t, r.method, svc.URL+r.path, r.auth, r.body)
			if wantResp.StatusCode != 200 {
				t.Fatalf("the emulated service itself answered %d: %v", wantResp.StatusCode, want)
			}
			resp, got := callJSON(t, r.method, siteURL+r.path, r.auth, r.body)
			if resp.StatusCode != wantResp.StatusCode {
				t.Errorf("live session: status %d, service answered %d (%v)", resp.StatusCode, wantResp.StatusCode, got)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			sameAnswer(t, "live session", got, want, r.approx...)
			if r.check != nil {
				r.check(t, got)
			}

			wantResp, want = callJSON(t, r.method, svc.URL+r.path, r.bad, r.body)
			resp, got = callJSON(t, r.method, siteURL+r.path, r.bad, r.body)
			if resp.StatusCode != wantResp.StatusCode {
				t.Errorf("unknown token: status %d, service answered %d", resp.StatusCode, wantResp.StatusCode)
			}
			sameAnswer(t, "unknown token", got, want)
		})
	}
}

// fixedNow is the emulators' clock: close to the real time (sessions are
// live to sessiongate) but still, so two reads answer alike.
func fixedNow() func() time.Time {
	now := time.Now().UTC().Truncate(time.Second)
	return func() time.Time { return now }
}

func TestInfoVSphereMatchesService(t *testing.T) {
	now := fixedNow()
	vs := emulator.NewVSphere()
	vs.SetClock(now)
	vs.AddSession("vs-tok", `VSPHERE.LOCAL\Administrator`, now())
	auth := http.Header{"Vmware-Api-Session-Id": {"vs-tok"}}
	bad := http.Header{"Vmware-Api-Session-Id": {"nope"}}
	runInfoCase(t, infoCase{
		dialect: "vsphere", svc: vs, routes: []string{emulator.VSphereCurrentPath, emulator.VSphereLegacyPath},
		reqs: []infoRequest{
			{name: "GET", method: "GET", path: emulator.VSphereCurrentPath, auth: auth, bad: bad},
			{name: "POST", method: "POST", path: emulator.VSphereLegacyPath + "?~action=get", auth: auth, bad: bad},
		},
	})
}

func TestInfoAmplifyMatchesService(t *testing.T) {
	// The platform answers a dead session on findSession with 200 and a
	// null result; session_info must answer the same.
	amp := emulator.NewAmplify()
	amp.AddSession("s%3Aabc.sig", emulator.AmplifyResult("g-1", "ada", "ada@example.com", "administrator"))
	runInfoCase(t, infoCase{
		dialect: "amplify", svc: amp, routes: []string{emulator.AmplifyPath},
		reqs: []infoRequest{{name: "findSession", method: "GET", path: emulator.AmplifyPath,
			auth: http.Header{"Cookie": {"connect.sid=s%3Aabc.sig"}},
			bad:  http.Header{"Cookie": {"connect.sid=s%3Anope.sig"}},
		}},
	})
}

// TestInfoTR50MatchesService: session_info tr50 on /api answers
// session.info as the platform does, under any command key; a login or
// any other command reaches the product behind it with its body whole.
func TestInfoTR50MatchesService(t *testing.T) {
	now := fixedNow()
	tr := emulator.NewTR50()
	tr.SetClock(now)
	tr.AddSession("tr-sess", emulator.TR50UserParams("u-42", "ops@acme.io", 3600, now()))
	var bodies atomic.Value
	product := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies.Store(string(b))
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"from":"product"}`))
	}))
	t.Cleanup(product.Close)
	auth := http.Header{"Sessionid": {"tr-sess"}, "Content-Type": {"application/json"}}
	bad := http.Header{"Sessionid": {"nope"}, "Content-Type": {"application/json"}}
	var reqs []infoRequest
	for _, key := range []string{"cmd", "1"} {
		reqs = append(reqs, infoRequest{name: key, method: "POST", path: emulator.TR50Path,
			body: `{"` + key + `":{"command":"session.info"}}`, auth: auth, bad: bad})
	}
	runInfoCase(t, infoCase{dialect: "tr50", svc: tr, routes: []string{emulator.TR50Path}, behind: product.Listener.Addr().String(), reqs: reqs})

	for _, body := range []string{
		`{"auth":{"command":"api.authenticate","params":{"username":"ops@acme.io","password":"pw"}}}`,
		`{"1":{"command":"thing.list"}}`,
		`{"1":{"command":"session.info"},"2":{"command":"thing.find","params":{"key":"k"}}}`,
	} {
		_, m := callJSON(t, "POST", siteURL+emulator.TR50Path, auth, body)
		if m["from"] != "product" || bodies.Load() != body {
			t.Errorf("%s: answer %v, product got %q", body, m, bodies.Load())
		}
	}
}

func TestInfoTrifactaMatchesService(t *testing.T) {
	tf := emulator.NewTrifacta()
	tf.AddSession("tf-tok", emulator.TrifactaPerson(31, "wrangler@example.com", "Wren Gler", false, false, "wrangler", "dataAdmin"))
	runInfoCase(t, infoCase{
		dialect: "trifacta", svc: tf, routes: []string{emulator.TrifactaPath},
		reqs: []infoRequest{{name: "session", method: "GET", path: emulator.TrifactaPath, auth: bearer("tf-tok"), bad: bearer("nope")}},
	})
}

func eternusHeader(id int64, tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}, "X-Eternus-Session-Id": {fmt.Sprint(id)}}
}

// TestInfoEternusMatchesService: session_info eternus answers what the
// array answers, fields filter included, and checks the filter on its
// own terms: session_id always, unknown names ignored, and another
// session's id refused.
func TestInfoEternusMatchesService(t *testing.T) {
	now := fixedNow()
	et := emulator.NewEternus()
	et.SetClock(now)
	id, tok := et.AddSession("monitor", []string{"Status_Display", "User_Management"}, 30*time.Minute)
	var reqs []infoRequest
	for _, tc := range []struct {
		query string
		keys  []string // nil: compared with the array's answer only
	}{
		{"", []string{"auth_list", "days_to_password_expiration", "lifetime", "session_id", "user_name"}},
		{"?fields=user_name,auth_list", nil},
		{"?fields=lifetime,nonsense", nil},
		{"?fields=session_id", nil},
		{"?fields=user_name", []string{"session_id", "user_name"}},
		{"?fields=user_name,%20lifetime,bogus", []string{"lifetime", "session_id", "user_name"}},
		{"?fields=bogus", []string{"session_id"}},
	} {
		name := tc.query
		if name == "" {
			name = "all fields"
		}
		reqs = append(reqs, infoRequest{
			name: name, method: "GET", path: fmt.Sprintf("%s/%d%s", emulator.EternusPath, id, tc.query),
			auth: eternusHeader(id, tok), bad: eternusHeader(id, "nope"),
			approx: []string{"lifetime"},
			check: func(t *testing.T, m map[string]any) {
				var keys []string
				for k := range m {
					keys = append(keys, k)
				}
				if tc.keys != nil && !sameSet(keys, tc.keys) {
					t.Errorf("%q: fields %v, want %v", tc.query, keys, tc.keys)
				}
				if m["session_id"] != float64(id) {
					t.Errorf("%q: session_id %v, want %d", tc.query, m["session_id"], id)
				}
				if u, ok := m["user_name"]; ok && u != "monitor" {
					t.Errorf("%q: user_name %v", tc.query, u)
				}
			},
		})
	}
	runInfoCase(t, infoCase{dialect: "eternus", svc: et, routes: []string{emulator.EternusPath + "/*"}, reqs: reqs})

	resp, m := callJSON(t, "GET", fmt.Sprintf("%s%s/%d", siteURL, emulator.EternusPath, id+1), eternusHeader(id, tok), "")
	if resp.StatusCode != http.StatusForbidden || m["error_code"] == nil {
		t.Errorf("another session's id: %d %v, want 403 with an ETERNUS error body", resp.StatusCode, m)
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		seen[x]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// TestInfoTranslatesAcrossDialects: a session from one dialect (http)
// rendered in others' shapes, and only ever the requesting session.
func TestInfoTranslatesAcrossDialects(t *testing.T) {
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	svc.addSession("tok-bob", map[string]any{"user_id": "u-2", "user": "bob", "name": "Bob B"})
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth http %s {
		optional
	}
	handle /session {
		session_info
	}
	handle /api/session {
		session_info vsphere
	}
	handle /v2/session {
		session_info trifacta
	}
	handle /api/v1/* {
		session_info amplify
		respond "platform" 200
	}
}`, httpPort, svc.URL))

	for tok, who := range map[string]string{"tok-alice": "alice", "tok-bob": "bob"} {
		_, m := callJSON(t, "GET", siteURL+"/session", bearer(tok), "")
		if m["user"] != who {
			t.Errorf("/session with %s's token shows %v", who, m["user"])
		}
	}
	_, m := callJSON(t, "GET", siteURL+"/session", bearer("tok-alice"), "")
	for k, v := range map[string]any{"user_id": "u-1", "email": "alice@example.com", "name": "Alice Ä", "org": "acme", "admin": true} {
		if m[k] != v {
			t.Errorf("normalized %s = %v, want %v", k, m[k], v)
		}
	}
	_, m = callJSON(t, "GET", siteURL+"/api/session", bearer("tok-alice"), "")
	if m["user"] != "alice" {
		t.Errorf("vsphere shape: %v", m)
	}
	_, m = callJSON(t, "GET", siteURL+"/v2/session", bearer("tok-alice"), "")
	if m["email"] != "alice@example.com" || m["name"] != "Alice Ä" || m["isAdmin"] != true {
		t.Errorf("trifacta shape: %v", m)
	}
	_, m = callJSON(t, "GET", siteURL+"/api/v1/auth/findSession", bearer("tok-alice"), "")
	if r, _ := m["result"].(map[string]any); m["success"] != true || r["username"] != "alice" || r["role"] != "administrator" {
		t.Errorf("amplify shape: %v", m)
	}
	// A session naming no org still has org as an object and orgs as an
	// array: Axway's SDK dereferences both.
	_, m = callJSON(t, "GET", siteURL+"/api/v1/auth/findSession", bearer("tok-bob"), "")
	r, _ := m["result"].(map[string]any)
	if _, ok := r["org"].(map[string]any); !ok {
		t.Errorf("amplify shape without org: org = %#v", r["org"])
	}
	if _, ok := r["orgs"].([]any); !ok {
		t.Errorf("amplify shape without org: orgs = %#v", r["orgs"])
	}
	// The SDK's next calls are the platform's.
	for _, p := range []string{"/api/v1/team", "/api/v1/org/42"} {
		resp, body := do(t, nil, "GET", p, bearer("tok-alice"))
		if resp.StatusCode != 200 || body != "platform" {
			t.Errorf("GET %s: %d %.100s, want it passed on", p, resp.StatusCode, body)
		}
	}
	_, m = callJSON(t, "GET", siteURL+"/api/v1/auth/findSession", nil, "")
	if len(m) != 2 || m["success"] != true || m["result"] != nil {
		t.Errorf("amplify shape, no session: %v", m)
	}

	resp, m := callJSON(t, "GET", siteURL+"/session", nil, "")
	if resp.StatusCode != 401 || m["error"] != "unauthenticated" {
		t.Errorf("anonymous /session: %d %v", resp.StatusCode, m)
	}
	resp, m = callJSON(t, "GET", siteURL+"/api/v1/auth/findSession", bearer("forged"), "")
	if resp.StatusCode != 200 || len(m) != 2 || m["success"] != true || m["result"] != nil {
		t.Errorf("rejected token, amplify: %d %v", resp.StatusCode, m)
	}
}
