package dialecttest

import (
	"net/http"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

func init() {
	Register(Case{
		Dialect: "amplify",
		Sources: []Source{{"cookie", "connect.sid"}, {"bearer", ""}},
		NewService: func() *Service {
			emu := emulator.NewAmplify()
			// An express-signed connect.sid, percent signs and all.
			sid := "s%3Aconf.sig"
			emu.AddSession(sid, emulator.AmplifyResult("g-conf", "ada", "ada@example.com", "administrator"))
			return &Service{
				Handler: emu, Token: sid, Unknown: "s%3Anope.sig",
				Revoke: func() { emu.RemoveSession(sid) }, Calls: emu.Calls,
			}
		},
		InfoReads: []InfoRead{
			{Request{http.MethodGet, emulator.AmplifyPath, ""}, http.StatusOK, "result"},
		},
		ProductReads: true,
		InfoPasses: []Request{
			{http.MethodGet, emulator.AmplifyTeamPath, ""},
			{http.MethodGet, emulator.AmplifyOrgPath + "42", ""},
		},
	})
}
