package dialecttest

import (
	"net/http"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

func init() {
	Register(Case{
		Dialect: "tr50",
		Sources: []Source{{"header", "sessionId"}, {"cookie", "sessionId"}, {"body", "auth.sessionId"}},
		NewService: func() *Service {
			emu := emulator.NewTR50()
			emu.AddSession("tr-conf", emulator.TR50UserParams("u-conf", "ops@acme.example", 3600, time.Now()))
			return &Service{
				Handler: emu, Token: "tr-conf", Unknown: "tr-nope",
				Revoke: func() { emu.RemoveSession("tr-conf") }, Calls: emu.Calls,
			}
		},
		InfoReads: []InfoRead{
			{Request{http.MethodPost, emulator.TR50Path, `{"cmd":{"command":"session.info"}}`}, http.StatusOK, "auth"},
			{Request{http.MethodPost, emulator.TR50Path, `{"1":{"command":"session.info"}}`}, http.StatusOK, "auth"},
		},
		ProductReads:  true,
		InfoReadsBody: true,
		InfoPasses: []Request{
			{http.MethodGet, emulator.TR50Path, ""},
			{http.MethodPost, emulator.TR50Path, `{"1":{"command":"thing.list"}}`},
			{http.MethodPost, emulator.TR50Path, `{"auth":{"command":"api.authenticate","params":{"username":"u"}}}`},
		},
	})
}
