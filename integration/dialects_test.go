package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/sessiongate/caddy-sessiongate/internal/dialecttest"
	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

// dialectCase is one dialect behind a real Caddy configured with nothing
// but `session_auth <dialect> <url>`.
type dialectCase struct {
	dialect string
	// user is a request for a user session and want the X-Session-*
	// headers the upstream must see for it ("" = absent).
	user http.Header
	want map[string]string
	// rejected are requests the service rejects: each must be a 401.
	rejected map[string]http.Header
	// fresh is a request for a live session not cached yet, tried under
	// each service fault: each must be a 503.
	fresh http.Header
	// fault switches the service's failure mode.
	fault func(emulator.Fault)
}

func runDialectCase(t *testing.T, svcURL string, c dialectCase) {
	t.Helper()
	up := newUpstream(t)
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth %s %s
	reverse_proxy %s
}`, httpPort, c.dialect, svcURL, up.Listener.Addr()))

	t.Run("user", func(t *testing.T) {
		forged := c.user.Clone()
		forged.Set("X-Session-User", "mallory")
		forged.Set("X-Session-Admin", "true")
		resp, body := do(t, nil, "GET", "/app", forged)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, body %q", resp.StatusCode, body)
		}
		got := upstreamSaw(t, body).Headers
		for k, v := range c.want {
			switch g := got[k]; {
			case v == "" && len(g) != 0:
				t.Errorf("upstream got %s = %q, want none", k, g)
			case v != "" && (len(g) != 1 || g[0] != v):
				t.Errorf("upstream got %s = %q, want exactly [%q]", k, g, v)
			}
		}
	})
	t.Run("401", func(t *testing.T) {
		hits := up.hits.Load()
		cases := map[string]http.Header{"no token": {}}
		for k, v := range c.rejected {
			cases[k] = v
		}
		for name, h := range cases {
			resp, body := do(t, nil, "GET", "/app", h)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s: status %d, want 401 (body %q)", name, resp.StatusCode, body)
			}
		}
		if n := up.hits.Load() - hits; n != 0 {
			t.Errorf("%d rejected requests reached the upstream", n)
		}
	})
	t.Run("503", func(t *testing.T) {
		hits := up.hits.Load()
		for _, f := range []emulator.Fault{emulator.Unavailable, emulator.InternalError, emulator.Garbage, emulator.WrongShape} {
			c.fault(f)
			resp, body := do(t, nil, "GET", "/app", c.fresh)
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Errorf("fault %d: status %d (Retry-After %q), want 503 with Retry-After (body %q)",
					f, resp.StatusCode, resp.Header.Get("Retry-After"), body)
			}
		}
		c.fault(emulator.Healthy)
		if n := up.hits.Load() - hits; n != 0 {
			t.Errorf("%d requests reached the upstream while the service failed", n)
		}
		// Service errors are not cached: the same token works once the
		// service is back.
		if resp, body := do(t, nil, "GET", "/app", c.fresh); resp.StatusCode != http.StatusOK {
			t.Errorf("after recovery: status %d, body %q", resp.StatusCode, body)
		}
	})
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestDialectAmplify(t *testing.T) {
	emu := emulator.NewAmplify()
	emu.AddSession("s%3AxYz.sig%2Bnature", emulator.AmplifyResult("u-guid-1", "ada", "ada@example.com", "administrator"))
	emu.AddSession("access-2", emulator.AmplifyResult("u-guid-2", "bob", "bob@example.com", "developer"))
	emu.RequireDeviceAuth("pending")
	runDialectCase(t, serve(t, emu), dialectCase{
		dialect: "amplify",
		user:    http.Header{"Cookie": {"other=1; connect.sid=s%3AxYz.sig%2Bnature"}},
		want: map[string]string{
			"X-Session-User": "ada", "X-Session-User-Id": "u-guid-1", "X-Session-Email": "ada@example.com",
			"X-Session-Name": "Ada Lovelace", "X-Session-Org": "Acme", "X-Session-Org-Id": "org-guid-1",
			"X-Session-Roles": "administrator,usage_reporter", "X-Session-Perms": "", "X-Session-Admin": "true",
		},
		rejected: map[string]http.Header{
			"unknown cookie (result null)": {"Cookie": {"connect.sid=s%3Anope.sig"}},
			"unknown bearer":               bearer("nope"),
			"device authorization":         bearer("pending"),
		},
		fresh: bearer("access-2"),
		fault: emu.SetFault,
	})

	// Amplify's guarded routes answer a dead session 401 "Sign-in
	// Required" instead of findSession's 200 with result null.
	t.Run("401 variant", func(t *testing.T) {
		emu.RejectWith401(true)
		defer emu.RejectWith401(false)
		if resp, body := do(t, nil, "GET", "/", bearer("gone")); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d, want 401 (body %q)", resp.StatusCode, body)
		}
	})
}

func TestDialectTR50(t *testing.T) {
	emu := emulator.NewTR50()
	now := time.Now()
	emu.AddSession("sess-user", emulator.TR50UserParams("u-17", "ops@acme.example", 3600, now))
	emu.AddSession("sess-fresh", emulator.TR50UserParams("u-18", "dev", 3600, now))
	emu.AddSession("sess-app", emulator.TR50AppParams("app-9", "Gateway Agent", 3600, now))
	emu.AddSession("sess-admin", emulator.TR50AdminParams("u-1", "root", 3600, now))
	url := serve(t, emu)
	runDialectCase(t, url, dialectCase{
		dialect: "tr50",
		user:    http.Header{"Sessionid": {"sess-user"}},
		want: map[string]string{
			"X-Session-User": "ops@acme.example", "X-Session-User-Id": "u-17", "X-Session-Email": "ops@acme.example",
			"X-Session-Name": "", "X-Session-Org": "ACME", "X-Session-Org-Id": "org-4711",
			"X-Session-Roles": "operator,viewer", "X-Session-Perms": "alarm.ack,thing.list", "X-Session-Admin": "true",
		},
		rejected: map[string]http.Header{
			"unknown session (header)": {"Sessionid": {"nope"}},
			"unknown session (cookie)": {"Cookie": {"sessionId=nope2"}},
		},
		fresh: http.Header{"Cookie": {"sessionId=sess-fresh"}},
		fault: emu.SetFault,
	})

	t.Run("app and admin sessions", func(t *testing.T) {
		for _, tc := range []struct {
			token string
			want  map[string]string
		}{
			{"sess-app", map[string]string{"X-Session-User": "", "X-Session-User-Id": "", "X-Session-App": "Gateway Agent", "X-Session-App-Id": "app-9",
				"X-Session-Kind": "app", "X-Session-Perms": "property.publish", "X-Session-Admin": "false"}},
			{"sess-admin", map[string]string{"X-Session-User": "root", "X-Session-Kind": "user", "X-Session-App": "", "X-Session-Roles": "", "X-Session-Perms": "", "X-Session-Admin": "true"}},
		} {
			resp, body := do(t, nil, "GET", "/", http.Header{"Sessionid": {tc.token}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: status %d, body %q", tc.token, resp.StatusCode, body)
			}
			got := upstreamSaw(t, body).Headers
			for k, v := range tc.want {
				if g := got.Get(k); g != v {
					t.Errorf("%s: %s = %q, want %q", tc.token, k, g, v)
				}
			}
		}
	})
	t.Run("failure on the command", func(t *testing.T) {
		emu.FailOnCommand(true)
		defer emu.FailOnCommand(false)
		if resp, body := do(t, nil, "GET", "/", http.Header{"Sessionid": {"nope3"}}); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d, want 401 (body %q)", resp.StatusCode, body)
		}
	})
}

// TestTR50SessionIDFromBody: TR50 clients send the session id in the
// envelope's auth.sessionId; session_auth reads it there and hands the
// body on whole.
func TestTR50SessionIDFromBody(t *testing.T) {
	tr := emulator.NewTR50()
	tr.AddSession("tr-sess", emulator.TR50UserParams("u-42", "ops@acme.io", 3600, time.Now()))
	var got atomic.Value
	product := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(string(b) + "|" + r.Header.Get("X-Session-User-Id"))
		w.Write([]byte(`{"from":"product"}`))
	}))
	t.Cleanup(product.Close)
	svc := httptest.NewServer(tr)
	t.Cleanup(svc.Close)
	startCaddyWith(t, "", fmt.Sprintf(`
:%d {
	session_auth tr50 %s
	handle /api {
		session_info tr50
		reverse_proxy %s
	}
}`, httpPort, svc.URL, product.Listener.Addr()))

	ct := http.Header{"Content-Type": {"application/json"}}
	resp, m := callJSON(t, "POST", siteURL+"/api", ct, `{"auth":{"sessionId":"tr-sess"},"1":{"command":"session.info"}}`)
	if c, _ := m["1"].(map[string]any); resp.StatusCode != 200 || c == nil || c["success"] != true {
		t.Errorf("session.info with auth.sessionId: %d %v", resp.StatusCode, m)
	}
	body := `{"auth":{"sessionId":"tr-sess"},"1":{"command":"thing.list"}}`
	resp, m = callJSON(t, "POST", siteURL+"/api", ct, body)
	if resp.StatusCode != 200 || m["from"] != "product" || got.Load() != body+"|u-42" {
		t.Errorf("thing.list with auth.sessionId: %d %v, product got %q", resp.StatusCode, m, got.Load())
	}
	for _, b := range []string{`{"auth":{"sessionId":"nope"},"1":{"command":"thing.list"}}`, `{"1":{"command":"thing.list"}}`} {
		resp, err := testClient.Post(siteURL+"/api", "application/json", strings.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s: %d, want 401", b, resp.StatusCode)
		}
	}
}

func TestDialectVSphere(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy only %v", legacy), func(t *testing.T) {
			emu := emulator.NewVSphere()
			emu.LegacyOnly(legacy)
			emu.AddSession("vs-1", `VSPHERE.LOCAL\Administrator`, time.Time{})
			emu.AddSession("vs-2", "bob@corp.example", time.Time{})
			runDialectCase(t, serve(t, emu), dialectCase{
				dialect: "vsphere",
				user:    http.Header{"Vmware-Api-Session-Id": {"vs-1"}},
				want: map[string]string{
					"X-Session-User": `VSPHERE.LOCAL\Administrator`, "X-Session-User-Id": `VSPHERE.LOCAL\Administrator`,
					"X-Session-Email": "", "X-Session-Name": "", "X-Session-Org": "VSPHERE.LOCAL", "X-Session-Org-Id": "",
					"X-Session-Roles": "", "X-Session-Perms": "", "X-Session-Admin": "false",
				},
				rejected: map[string]http.Header{
					"unknown header token": {"Vmware-Api-Session-Id": {"nope"}},
					"unknown cookie token": {"Cookie": {"vmware-api-session-id=nope2"}},
				},
				fresh: http.Header{"Cookie": {"vmware-api-session-id=vs-2"}},
				fault: emu.SetFault,
			})
			if legacy && emu.CurrentCalls() != 1 {
				t.Errorf("the current API was asked %d times on a legacy-only server, want once", emu.CurrentCalls())
			}
		})
	}
}

func TestDialectEternus(t *testing.T) {
	emu := emulator.NewEternus()
	rootID, rootTok := emu.AddSession("root", []string{"Status_Display", "User_Management"}, time.Hour)
	freshID, freshTok := emu.AddSession("monitor", []string{"Status_Display"}, time.Hour)
	otherID, _ := emu.AddSession("other", []string{"Status_Display"}, time.Hour)
	id := strconv.FormatInt
	runDialectCase(t, serve(t, emu), dialectCase{
		dialect: "eternus",
		user:    http.Header{"Authorization": {"Bearer " + rootTok}, "X-Eternus-Session-Id": {id(rootID, 10)}},
		want: map[string]string{
			"X-Session-User": "root", "X-Session-User-Id": "root", "X-Session-Email": "", "X-Session-Name": "",
			"X-Session-Org": "", "X-Session-Roles": "", "X-Session-Perms": "Status_Display,User_Management", "X-Session-Admin": "true",
		},
		rejected: map[string]http.Header{
			"no session id":           bearer(rootTok),
			"session id not a number": {"Authorization": {"Bearer " + rootTok}, "X-Eternus-Session-Id": {"1/../2"}},
			"wrong token (401)":       {"Authorization": {"Bearer nope"}, "X-Eternus-Session-Id": {id(rootID, 10)}},
			"another session (403)":   {"Authorization": {"Bearer " + rootTok}, "X-Eternus-Session-Id": {id(otherID, 10)}},
			"no such session (404)":   bearer("999:" + rootTok),
		},
		fresh: bearer(id(freshID, 10) + ":" + freshTok),
		fault: emu.SetFault,
	})
}

func TestDialectEternusSessionIDFrom(t *testing.T) {
	emu := emulator.NewEternus()
	sid, tok := emu.AddSession("root", []string{"User_Management"}, time.Hour)
	up := newUpstream(t)
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth {
		backend eternus %s {
			session_id_from cookie eternus_sid
		}
	}
	reverse_proxy %s
}`, httpPort, serve(t, emu), up.Listener.Addr()))
	h := bearer(tok)
	h.Set("Cookie", "eternus_sid="+strconv.FormatInt(sid, 10))
	if resp, body := do(t, nil, "GET", "/", h); resp.StatusCode != http.StatusOK || upstreamSaw(t, body).Headers.Get("X-Session-User") != "root" {
		t.Errorf("session id from the cookie: status %d, body %q", resp.StatusCode, body)
	}
	h = bearer(tok)
	h.Set("X-Eternus-Session-Id", strconv.FormatInt(sid, 10))
	if resp, body := do(t, nil, "GET", "/", h); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the default header must not count once session_id_from is set: status %d, body %q", resp.StatusCode, body)
	}
}

func TestDialectTrifacta(t *testing.T) {
	emu := emulator.NewTrifacta()
	emu.AddSession("tf-ada", emulator.TrifactaPerson(42, "ada@example.com", "Ada L", true, false, "admin", "dataAdmin"))
	emu.AddSession("tf-bob", emulator.TrifactaPerson(7, "bob@example.com", "Bob", false, false, "wrangler"))
	emu.AddSession("tf-eve", emulator.TrifactaPerson(9, "eve@example.com", "Eve", false, true, "wrangler"))
	runDialectCase(t, serve(t, emu), dialectCase{
		dialect: "trifacta",
		user:    bearer("tf-ada"),
		want: map[string]string{
			"X-Session-User": "ada@example.com", "X-Session-User-Id": "42", "X-Session-Email": "ada@example.com",
			"X-Session-Name": "Ada L", "X-Session-Org": "", "X-Session-Org-Id": "7",
			"X-Session-Roles": "admin,dataAdmin", "X-Session-Perms": "", "X-Session-Admin": "true",
		},
		rejected: map[string]http.Header{
			"unknown token":   bearer("nope"),
			"disabled person": bearer("tf-eve"),
		},
		fresh: bearer("tf-bob"),
		fault: emu.SetFault,
	})
}

func TestDialectTrifactaCookie(t *testing.T) {
	emu := emulator.NewTrifacta()
	emu.AddSession("browser-1", emulator.TrifactaPerson(5, "wren@example.com", "Wren", false, false, "wrangler"))
	up := newUpstream(t)
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth {
		backend trifacta %s
		token cookie %s
	}
	reverse_proxy %s
}`, httpPort, serve(t, emu), emulator.TrifactaCookie, up.Listener.Addr()))
	resp, body := do(t, nil, "GET", "/", http.Header{"Cookie": {emulator.TrifactaCookie + "=browser-1"}})
	if resp.StatusCode != http.StatusOK || upstreamSaw(t, body).Headers.Get("X-Session-User-Id") != "5" {
		t.Errorf("status %d, body %q", resp.StatusCode, body)
	}
}

// TestReadmeDialectSnippetsAdapt keeps every Caddyfile snippet of the
// README's dialects section valid: each adapts, with a session_auth whose
// backend is the dialect of its heading.
func TestReadmeDialectSnippetsAdapt(t *testing.T) {
	raw, err := os.ReadFile("../docs/dialects.md")
	if err != nil {
		t.Fatal(err)
	}
	section, _, _ := strings.Cut(string(raw), "\n## What `session_info` answers")
	seen := map[string]bool{}
	for _, part := range strings.Split(section, "\n## ")[1:] {
		dialect, _, _ := strings.Cut(part, "\n")
		_, rest, ok := strings.Cut(part, "```caddyfile\n")
		if !ok {
			continue
		}
		block, _, _ := strings.Cut(rest, "```")
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(block), nil)
		if err != nil {
			t.Errorf("README snippet for %s does not adapt: %v\n%s", dialect, err, block)
			continue
		}
		if !strings.Contains(string(out), `"dialect":"`+dialect+`"`) {
			t.Errorf("README snippet for %s configures another dialect:\n%s", dialect, out)
		}
		c, _ := dialecttest.Lookup(dialect)
		if want := c.DocsSnippet; !strings.Contains(string(out), want) {
			t.Errorf("README snippet for %s: adapted JSON lacks %s:\n%s", dialect, want, out)
		}
		seen[dialect] = true
	}
	for _, d := range dialecttest.Names() {
		if !seen[d] {
			t.Errorf("README's dialects section has no Caddyfile snippet for %s", d)
		}
	}
}
