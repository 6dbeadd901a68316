package sessionctx

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

// fuzzNow is the decoders' clock under fuzzing: fixed, so a failure
// replays.
var fuzzNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// answer is what an emulator says to r, seeds for the fuzzers.
func answer(h http.Handler, r *http.Request) []byte {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Body.Bytes()
}

// faultAnswers are an emulator's answers in every failure mode.
func faultAnswers(h interface {
	http.Handler
	SetFault(emulator.Fault)
}, req func() *http.Request) [][]byte {
	var out [][]byte
	for _, f := range []emulator.Fault{emulator.Unavailable, emulator.InternalError, emulator.Garbage, emulator.WrongShape} {
		h.SetFault(f)
		out = append(out, answer(h, req()))
	}
	h.SetFault(emulator.Healthy)
	return out
}

// checkDecoded holds for every decoder on every input: a session with a
// user and the dialect's name, or an error that says which outcome.
func checkDecoded(t *testing.T, dialect string, s *Session, err error) {
	t.Helper()
	if err != nil {
		if s != nil {
			t.Fatalf("both a session and an error: %v", err)
		}
		if !errors.Is(err, ErrUnauthenticated) && !errors.Is(err, ErrUnavailable) {
			t.Fatalf("error wraps neither outcome: %v", err)
		}
		return
	}
	// A session names someone, by name or id (never one copied from the
	// other), and is of a known kind.
	if s == nil || (s.User == "" && s.UserID == "") || s.Dialect != dialect || !json.Valid(s.Raw) || (s.Kind != kindUser && s.Kind != kindApp) {
		t.Fatalf("decoded session incomplete: %+v", s)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Fatalf("session does not marshal: %v", err)
	}
}

func FuzzDecodeAmplify(f *testing.F) {
	emu := emulator.NewAmplify()
	res := emulator.AmplifyResult("g", "ada", "ada@example.com", "administrator")
	res["expiry"] = fuzzNow.Add(time.Hour).UnixMilli()
	emu.AddSession("tok", res)
	emu.RequireDeviceAuth("pending")
	req := func(tok string) func() *http.Request {
		return func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, emulator.AmplifyPath, nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			return r
		}
	}
	for _, tok := range []string{"tok", "pending", "nope"} {
		f.Add(answer(emu, req(tok)()))
	}
	emu.RejectWith401(true)
	f.Add(answer(emu, req("nope")()))
	for _, a := range faultAnswers(emu, req("tok")) {
		f.Add(a)
	}
	f.Add([]byte(`{"success":true,"result":{"user_guid":"g","expiry":"2026-06-01T13:00:00Z","roles":"a b"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := decodeAmplify(raw, fuzzNow)
		checkDecoded(t, "amplify", s, err)
	})
}

func FuzzDecodeTR50(f *testing.F) {
	emu := emulator.NewTR50()
	emu.AddSession("user", emulator.TR50UserParams("u", "ops@acme.example", 600, fuzzNow))
	emu.AddSession("admin", emulator.TR50AdminParams("a", "root", 600, fuzzNow))
	emu.AddSession("app", emulator.TR50AppParams("app", "Agent", 60, fuzzNow))
	req := func(sid, key string) func() *http.Request {
		return func() *http.Request {
			return httptest.NewRequest(http.MethodPost, emulator.TR50Path,
				strings.NewReader(`{"auth":{"sessionId":"`+sid+`"},"`+key+`":{"command":"session.info"}}`))
		}
	}
	for _, sid := range []string{"user", "admin", "app", "nope"} {
		f.Add(answer(emu, req(sid, "1")()))
	}
	f.Add(answer(emu, req("user", "cmd")()))
	emu.FailOnCommand(true)
	f.Add(answer(emu, req("nope", "1")()))
	for _, a := range faultAnswers(emu, req("user", "1")) {
		f.Add(a)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := decodeTR50(raw, fuzzNow)
		checkDecoded(t, "tr50", s, err)
		if err == nil && !s.ExpiresAt.IsZero() && s.ExpiresAt.Before(fuzzNow) {
			t.Fatalf("a live session expiring in the past: %v", s.ExpiresAt)
		}
	})
}

func FuzzDecodeVSphere(f *testing.F) {
	emu := emulator.NewVSphere()
	emu.SetClock(func() time.Time { return fuzzNow })
	emu.AddSession("t", `VSPHERE.LOCAL\Administrator`, fuzzNow.Add(-5*time.Minute))
	for _, path := range []string{emulator.VSphereCurrentPath, emulator.VSphereLegacyPath + "?~action=get"} {
		method := http.MethodGet
		if strings.HasPrefix(path, "/rest") {
			method = http.MethodPost
		}
		for _, tok := range []string{"t", "nope"} {
			r := httptest.NewRequest(method, path, nil)
			r.Header.Set("vmware-api-session-id", tok)
			f.Add(answer(emu, r))
		}
	}
	for _, a := range faultAnswers(emu, func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, emulator.VSphereCurrentPath, nil)
		r.Header.Set("vmware-api-session-id", "t")
		return r
	}) {
		f.Add(a)
	}
	f.Add([]byte(`{"value":{"user":"alice@corp","last_accessed_time":1700000000}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := decodeVSphere(raw, fuzzNow, 0)
		checkDecoded(t, "vsphere", s, err)
		if err == nil && (!s.ExpiresAt.After(fuzzNow) || s.ExpiresAt.After(fuzzNow.Add(defaultVSphereIdleTimeout))) {
			t.Fatalf("ExpiresAt %v outside (now, now+idle]", s.ExpiresAt)
		}
	})
}

func FuzzDecodeEternus(f *testing.F) {
	emu := emulator.NewEternus()
	emu.AddUser("root", "pw", []string{"Status_Display", "User_Management"}, 12)
	login := answer(emu, httptest.NewRequest(http.MethodPost, emulator.EternusPath, strings.NewReader(`{"user_name":"root","password":"pw"}`)))
	f.Add(login)
	var created struct {
		SessionID int64  `json:"session_id"`
		Token     string `json:"token"`
	}
	_ = json.Unmarshal(login, &created)
	req := func(query, tok string) func() *http.Request {
		return func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, emulator.EternusPath+"/"+strconv.FormatInt(created.SessionID, 10)+query, nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			return r
		}
	}
	f.Add(answer(emu, req("", created.Token)()))
	f.Add(answer(emu, req("?fields=user_name", created.Token)()))
	f.Add(answer(emu, req("", "nope")()))
	for _, a := range faultAnswers(emu, req("", created.Token)) {
		f.Add(a)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := decodeEternus(raw, fuzzNow)
		checkDecoded(t, "eternus", s, err)
	})
}

func FuzzDecodeTrifacta(f *testing.F) {
	emu := emulator.NewTrifacta()
	emu.AddSession("ada", emulator.TrifactaPerson(42, "ada@example.com", "Ada", true, false, "admin", "dataAdmin"))
	emu.AddSession("eve", emulator.TrifactaPerson(9, "eve@example.com", "Eve", false, true, "wrangler"))
	req := func(tok string) func() *http.Request {
		return func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, emulator.TrifactaPath, nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			return r
		}
	}
	for _, tok := range []string{"ada", "eve", "nope"} {
		f.Add(answer(emu, req(tok)()))
	}
	for _, a := range faultAnswers(emu, req("ada")) {
		f.Add(a)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := decodeTrifacta(raw, fuzzNow)
		checkDecoded(t, "trifacta", s, err)
	})
}

// TestFuzzSeedsDecode makes sure the seeds are what they claim: each
// emulator's success answer decodes, so the fuzzers start from valid
// sessions and not only from errors.
func TestFuzzSeedsDecode(t *testing.T) {
	emu := emulator.NewAmplify()
	emu.AddSession("tok", emulator.AmplifyResult("g", "ada", "a@b", "developer"))
	r := httptest.NewRequest(http.MethodGet, emulator.AmplifyPath, nil)
	r.Header.Set("Authorization", "Bearer tok")
	if _, err := decodeAmplify(answer(emu, r), fuzzNow); err != nil {
		t.Errorf("amplify seed: %v", err)
	}
	tr := emulator.NewTR50()
	tr.AddSession("s", emulator.TR50UserParams("u", "n", 60, fuzzNow))
	raw := answer(tr, httptest.NewRequest(http.MethodPost, emulator.TR50Path, strings.NewReader(`{"auth":{"sessionId":"s"},"1":{"command":"session.info"}}`)))
	if _, err := decodeTR50(raw, fuzzNow); err != nil {
		t.Errorf("tr50 seed: %v", err)
	}
	tf := emulator.NewTrifacta()
	tf.AddSession("t", emulator.TrifactaPerson(1, "a@b", "A", false, false))
	r = httptest.NewRequest(http.MethodGet, emulator.TrifactaPath, nil)
	r.Header.Set("Authorization", "Bearer t")
	if _, err := decodeTrifacta(answer(tf, r), fuzzNow); err != nil {
		t.Errorf("trifacta seed: %v", err)
	}
}
