package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os/exec"
	"reflect"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

// amplifySDKDir holds the pinned @axway/amplify-sdk and find.js, which
// drives the SDK's own auth.find.
const amplifySDKDir = "testdata/amplify-sdk"

// sdkOutcome is what find.js prints: the account the SDK built, or the
// error it threw, and the platform requests it made to get there.
type sdkOutcome struct {
	Account  map[string]any `json:"account"`
	Error    *sdkError      `json:"error"`
	Requests []sdkRequest   `json:"requests"`
}

type sdkError struct {
	Message string `json:"message"`
	Code    any    `json:"code"`
	Status  int    `json:"status"`
}

type sdkRequest struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Cred   string `json:"cred"`
}

// needAmplifySDK installs Axway's SDK from its lock file where it is
// missing, as .ci/run does.
func needAmplifySDK(t *testing.T) {
	t.Helper()
	needNodePackage(t, amplifySDKDir, "@axway/amplify-sdk")
}

// runAmplifySDK runs find.js with the SDK's platform at platformURL and
// its Axway ID at baseURL.
func runAmplifySDK(t *testing.T, platformURL, baseURL string, args map[string]any) sdkOutcome {
	t.Helper()
	in := map[string]any{"platformUrl": platformURL, "baseUrl": baseURL}
	for k, v := range args {
		in[k] = v
	}
	js, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "find.js", string(js))
	cmd.Dir = amplifySDKDir
	out, err := cmd.Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		t.Fatalf("find.js: %v\n%s%s", err, out, exit.Stderr)
	} else if err != nil {
		t.Fatalf("find.js: %v", err)
	}
	var o sdkOutcome
	if err := json.Unmarshal(out, &o); err != nil {
		t.Fatalf("find.js printed %q: %v", out, err)
	}
	return o
}

// TestAmplifySDKFindsAccountThroughCaddy: Axway's published SDK, a client
// nobody on this project wrote, looks its account up through a Caddy with
// session_auth amplify and session_info amplify in front of the platform
// exactly as it does against the platform itself (siteURL, optional).
//
// Without optional (altURL), session_auth amplify lets only live sessions
// through to the platform. A live session still builds the platform's
// account; an unknown token and a service-account token (findSession
// knows no session for either) still see findSession's result null, then
// a 401 from Caddy on the SDK's next call, so the SDK throws on a 401 as
// it does for a dead token against the platform, and never on a 200
// holding something else.
func TestAmplifySDKFindsAccountThroughCaddy(t *testing.T) {
	needAmplifySDK(t)
	amp := emulator.NewAmplify()
	live := emulator.AmplifyResult("user-guid-1", "ada", "ada@example.com", "administrator")
	amp.AddSession("s%3Alive-sid.sig", live)
	amp.AddSession("access-live", live)
	amp.AddServiceAccount("access-service", map[string]any{"guid": "org-guid-1", "org_id": 100001, "name": "Acme"})
	amp.AddSession("access-pending", live)
	amp.RequireDeviceAuth("access-pending")
	svc := httptest.NewServer(amp)
	t.Cleanup(svc.Close)

	site := func(port int, optional string) string {
		return fmt.Sprintf(`
:%d {
	handle /api/v1/* {
		session_auth amplify %s {
			%s
		}
		session_info amplify
		reverse_proxy %s
	}
	respond "not the platform" 404
}`, port, svc.URL, optional, svc.URL)
	}
	startCaddy(t, site(httpPort, "optional")+site(altPort, ""))

	org := map[string]any{"guid": "org-guid-1", "id": 100001, "name": "Acme"}
	cases := []struct {
		name  string
		args  map[string]any
		check func(t *testing.T, o sdkOutcome)
	}{
		{"live session", map[string]any{"sid": "s%3Alive-sid.sig", "token": "access-live", "user": "user-guid-1", "org": org},
			func(t *testing.T, o sdkOutcome) {
				a := o.Account
				if o.Error != nil || a["isPlatform"] != true {
					t.Fatalf("want a platform account: %+v", o)
				}
				if team, _ := a["team"].(map[string]any); team["guid"] != "team-1" {
					t.Errorf("team = %v, want the default team-1", a["team"])
				}
				if u, _ := a["user"].(map[string]any); u["email"] != "ada@example.com" {
					t.Errorf("user = %v", a["user"])
				}
			}},
		{"unknown token", map[string]any{"token": "access-unknown", "user": "user-guid-1"},
			func(t *testing.T, o sdkOutcome) {
				if o.Error == nil || o.Error.Status != 401 {
					t.Fatalf("want the SDK to throw on the platform's 401: %+v", o)
				}
			}},
		{"stale cookie, valid bearer", map[string]any{"sid": "s%3Astale-sid.sig", "token": "access-live", "user": "user-guid-1", "org": org},
			func(t *testing.T, o sdkOutcome) {
				// Requests[0] is Axway ID's userinfo.
				if len(o.Requests) < 3 || o.Requests[2] != (sdkRequest{"GET", emulator.AmplifyPath, "bearer"}) {
					t.Errorf("want the SDK to retry findSession with its bearer token: %+v", o.Requests)
				}
			}},
		// The platform answers findSession 400 with internalCode 232,
		// on which the SDK stops for device authorization: Caddy must
		// give it that answer, not "no session".
		{"awaiting device authorization", map[string]any{"token": "access-pending", "user": "user-guid-1", "org": org},
			func(t *testing.T, o sdkOutcome) {
				if o.Error == nil || o.Error.Status != 400 {
					t.Fatalf("want the SDK to stop on the platform's 400 (internalCode 232): %+v", o)
				}
			}},
		{"service account", map[string]any{"token": "access-service", "org": org},
			func(t *testing.T, o sdkOutcome) {
				a := o.Account
				if o.Error != nil || a["isPlatform"] != false {
					t.Fatalf("want a service account (isPlatform false): %+v", o)
				}
				if g, _ := a["org"].(map[string]any); g["guid"] != "org-guid-1" {
					t.Errorf("org = %v", a["org"])
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			direct := runAmplifySDK(t, svc.URL, svc.URL, c.args)
			c.check(t, direct)
			proxied := runAmplifySDK(t, siteURL, svc.URL, c.args)
			c.check(t, proxied)
			if js, err := json.Marshal(direct); err == nil {
				t.Logf("the SDK against the platform: %s", js)
			}
			if !reflect.DeepEqual(direct, proxied) {
				t.Errorf("the SDK differs through Caddy:\nplatform: %+v\ncaddy:    %+v", direct, proxied)
			}
		})
	}

	t.Run("required, live session", func(t *testing.T) {
		args := cases[0].args
		direct := runAmplifySDK(t, svc.URL, svc.URL, args)
		proxied := runAmplifySDK(t, altURL, svc.URL, args)
		if direct.Error != nil || !reflect.DeepEqual(direct, proxied) {
			t.Errorf("live session differs through Caddy:\nplatform: %+v\ncaddy:    %+v", direct, proxied)
		}
	})
	t.Run("required, awaiting device authorization", func(t *testing.T) {
		args := map[string]any{"token": "access-pending", "user": "user-guid-1", "org": org}
		direct := runAmplifySDK(t, svc.URL, svc.URL, args)
		proxied := runAmplifySDK(t, altURL, svc.URL, args)
		if direct.Error == nil || !reflect.DeepEqual(direct, proxied) {
			t.Errorf("a session awaiting device authorization differs through Caddy:\nplatform: %+v\ncaddy:    %+v", direct, proxied)
		}
	})
	for name, args := range map[string]map[string]any{
		"unknown token":   {"token": "access-unknown", "user": "user-guid-1"},
		"service account": {"token": "access-service", "org": org},
	} {
		t.Run("required, "+name, func(t *testing.T) {
			o := runAmplifySDK(t, altURL, svc.URL, args)
			if o.Error == nil || o.Error.Status != 401 {
				t.Fatalf("want the SDK to throw on Caddy's 401: %+v", o)
			}
			// findSession answered result null (the SDK went on), and the
			// 401 came on the platform call after it.
			if n := len(o.Requests); n < 3 || o.Requests[1].Path != emulator.AmplifyPath || o.Requests[n-1].Path == emulator.AmplifyPath {
				t.Errorf("requests: %+v", o.Requests)
			}
		})
	}
}

// TestAmplifySDKReadsSessionOfAnotherBackend: session_info amplify in
// front of an http session service. The SDK builds a platform account from
// the rendered session, with or without an org, instead of crashing on a
// missing org or orgs.
func TestAmplifySDKReadsSessionOfAnotherBackend(t *testing.T) {
	needAmplifySDK(t)
	svc := newSessionService(t)
	svc.addSession("tok-alice", aliceSession())
	svc.addSession("tok-bob", map[string]any{"user_id": "u-2", "user": "bob", "name": "Bob B"})
	startCaddy(t, fmt.Sprintf(`
:%d {
	handle /api/v1/* {
		session_auth http %s
		session_info amplify
		respond /api/v1/team `+"`"+`{"success":true,"result":[]}`+"`"+` 200
	}
	respond "not the platform" 404
}`, httpPort, svc.URL))
	for _, tok := range []string{"tok-alice", "tok-bob"} {
		t.Run(tok, func(t *testing.T) {
			o := runAmplifySDK(t, siteURL, siteURL, map[string]any{"token": tok, "user": "u"})
			if o.Error != nil || o.Account["isPlatform"] != true {
				t.Fatalf("want a platform account: %+v", o)
			}
			if _, ok := o.Account["org"].(map[string]any); !ok {
				t.Errorf("org = %#v", o.Account["org"])
			}
			if _, ok := o.Account["orgs"].([]any); !ok {
				t.Errorf("orgs = %#v", o.Account["orgs"])
			}
			if u, _ := o.Account["user"].(map[string]any); u["guid"] == nil {
				t.Errorf("user = %v", o.Account["user"])
			}
		})
	}
}
