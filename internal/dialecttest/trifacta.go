package dialecttest

import (
	"net/http"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

func init() {
	Register(Case{
		Dialect: "trifacta",
		Sources: []Source{{"bearer", ""}},
		NewService: func() *Service {
			emu := emulator.NewTrifacta()
			emu.AddSession("tf-conf", emulator.TrifactaPerson(42, "ada@example.com", "Ada L", true, false, "admin"))
			return &Service{
				Handler: emu, Token: "tf-conf", Unknown: "tf-nope",
				Revoke: func() { emu.RemoveSession("tf-conf") }, Calls: emu.Calls,
			}
		},
		InfoReads: []InfoRead{
			{Request{http.MethodGet, emulator.TrifactaPath, ""}, http.StatusUnauthorized, "exception"},
		},
		ProductReads: true,
		InfoPasses: []Request{
			{http.MethodPut, emulator.TrifactaPath, ""},
		},
	})
}
