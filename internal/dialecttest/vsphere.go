package dialecttest

import (
	"net/http"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

func init() {
	Register(Case{
		Dialect: "vsphere",
		Sources: []Source{{"header", "vmware-api-session-id"}, {"cookie", "vmware-api-session-id"}},
		NewService: func() *Service {
			emu := emulator.NewVSphere()
			emu.AddSession("vs-conf", `VSPHERE.LOCAL\Administrator`, time.Time{})
			return &Service{
				Handler: emu, Token: "vs-conf", Unknown: "vs-nope",
				Revoke: func() { emu.RemoveSession("vs-conf") }, Calls: emu.Calls,
			}
		},
		InfoReads: []InfoRead{
			{Request{http.MethodGet, emulator.VSphereCurrentPath, ""}, http.StatusUnauthorized, "error_type"},
			{Request{http.MethodPost, emulator.VSphereLegacyPath + "?~action=get", ""}, http.StatusUnauthorized, "type"},
		},
		ProductReads: true,
		InfoPasses: []Request{
			{http.MethodPost, emulator.VSphereCurrentPath, ""},
			{http.MethodDelete, emulator.VSphereCurrentPath, ""},
			{http.MethodPost, emulator.VSphereLegacyPath, ""},
			{http.MethodDelete, emulator.VSphereLegacyPath, ""},
		},
		DocsSnippet: `"options":{"api":"auto","idle_timeout":"30m"}`,
	})
}
