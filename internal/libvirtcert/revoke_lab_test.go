package libvirtcert

import (
	"strings"
	"testing"

	"github.com/incus-access/incus-access/internal/testlab"
)

// After libvirt_cert ends, having issued through Vault PKI or failed after its login, no
// token its AppRole login made is alive; tls_skip_verify warns.
func TestApproleTokenDoesNotOutliveTheModuleLab(t *testing.T) {
	l := testlab.Get(t)
	role, roleID, secretID := l.OwnAppRole(t)
	vp := map[string]any{"addr": l.VaultAddr, "role": "libvirt-client", "auth": "approle", "role_id": roleID, "secret_id": secretID,
		"timeout": 10, "tls_skip_verify": true}
	dir := t.TempDir()
	res := mustRun(t, merge(pkiArgs(dir), map[string]any{"subject": seedSubject("host1"), "vault_pki": vp}))
	if res["changed"] != true {
		t.Fatalf("nothing issued: %v", res["msg"])
	}
	if w, _ := res["warnings"].([]any); len(w) == 0 || !contains(w, "tls_skip_verify is true") {
		t.Fatalf("no tls_skip_verify warning: %v", res["warnings"])
	}
	if n := l.LiveTokensOf(t, role); n != 0 {
		t.Fatalf("%d token(s) of the module's approle login are alive after it ended", n)
	}
	bad := merge(vp, map[string]any{"role": "no-such-role"})
	if res, failed := run(t, merge(pkiArgs(t.TempDir()), map[string]any{"subject": seedSubject("host1"), "vault_pki": bad})); !failed {
		t.Fatalf("an unknown PKI role did not fail: %v", res)
	}
	if n := l.LiveTokensOf(t, role); n != 0 {
		t.Fatalf("%d token(s) alive after a failed run", n)
	}
}

func contains(list []any, s string) bool {
	for _, v := range list {
		if str, _ := v.(string); strings.Contains(str, s) {
			return true
		}
	}
	return false
}
