package dialecttest

import (
	"net/http"
	"strconv"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

func init() {
	Register(Case{
		Dialect: "eternus",
		Sources: []Source{{"bearer", ""}},
		NewService: func() *Service {
			emu := emulator.NewEternus()
			id, tok := emu.AddSession("root", []string{"Status_Display", "User_Management"}, time.Hour)
			return &Service{
				Handler: emu, Token: tok, Unknown: "nope",
				// The token alone is the credential's secret; the session
				// id goes beside it, as ETERNUS clients send it.
				Parts:  http.Header{"X-Eternus-Session-Id": {strconv.FormatInt(id, 10)}},
				Revoke: func() { emu.RemoveSession(id) }, Calls: emu.Calls,
			}
		},
		InfoReads: []InfoRead{
			{Request{http.MethodGet, emulator.EternusPath + "/1", ""}, http.StatusUnauthorized, "error_code"},
		},
		ProductReads: true,
		InfoPasses: []Request{
			{http.MethodDelete, emulator.EternusPath + "/1000001", ""},
			{http.MethodPost, emulator.EternusPath, ""},
		},
		DocsSnippet: `"options":{"session_id_from":{"from":"header","name":"X-Eternus-Session-Id"}}`,
	})
}
