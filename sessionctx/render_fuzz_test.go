package sessionctx

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"
)

// FuzzRenderInfo feeds every shape arbitrary raw answers, request bodies,
// paths and field filters: the answer is always a JSON object with a
// status, never a panic, and the session's raw answer is only echoed when
// it is valid JSON.
func FuzzRenderInfo(f *testing.F) {
	f.Add("tr50", `{"id":"s"}`, `{"cmd":{"command":"session.info"}}`, "/api", "", "123")
	f.Add("eternus", `{"session_id":1,"user_name":"x"}`, "", "/api/v1/session/1", "user_name,lifetime", "1")
	f.Add("vsphere", `{"user":"a"}`, "", "/rest/com/vmware/cis/session", "", "")
	f.Add("amplify", `null`, "", "/", "", "")
	f.Add("trifacta", `[1,2]`, "", "/v2/session", "", "007")
	for _, c := range conformanceCases(f) {
		for _, read := range c.InfoReads {
			u, _ := url.Parse(read.Target)
			f.Add(c.Dialect, `{"id":"1"}`, read.Body, u.Path, u.Query().Get("fields"), "1")
		}
	}
	f.Fuzz(func(t *testing.T, shape, raw, body, path, fields, id string) {
		shapes := infoShapeNames()
		found := false
		for _, s := range shapes {
			found = found || s == shape
		}
		if !found {
			shape = shapes[len(raw)%len(shapes)]
		}
		req := InfoRequest{Method: "POST", Path: path, Body: []byte(body), Query: url.Values{"fields": {fields}}, Now: time.Unix(1e9, 0)}
		for _, s := range []*Session{nil, {ID: id, User: "u", Dialect: shape, Raw: []byte(raw), ExpiresAt: time.Unix(1e9+60, 0)}} {
			a := infoShapeOf(t, shape).Render(s, req)
			if a.Status < 200 || a.Status > 499 {
				t.Fatalf("%s: status %d", shape, a.Status)
			}
			var obj map[string]any
			if err := json.Unmarshal(a.Body, &obj); err != nil {
				t.Fatalf("%s: not a JSON object: %v: %q", shape, err, a.Body)
			}
		}
	})
}
