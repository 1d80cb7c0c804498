package sshca

import (
	"testing"

	"github.com/incus-access/incus-access/internal/testlab"
)

// After ssh_ca_trust ends, successful or failed, no token its AppRole login made is alive.
func TestLabApproleTokenDoesNotOutliveTheModule(t *testing.T) {
	l := testlab.Get(t)
	s := startSSHD(t)
	role, roleID, secretID := l.OwnAppRole(t)
	vaultOpt := map[string]any{"addr": l.VaultAddr, "auth": "approle", "role_id": roleID, "secret_id": secretID}
	res, _ := runModule(t, s.args(map[string]any{"vault": vaultOpt, "reload": false}))
	if res["failed"] == true {
		t.Fatalf("module failed: %v", res["msg"])
	}
	if fps, _ := res["fingerprints"].([]any); len(fps) != 1 {
		t.Fatalf("the module did not read the CA through its login: %v", res)
	}
	if n := l.LiveTokensOf(t, role); n != 0 {
		t.Fatalf("%d token(s) of the module's approle login are alive after it ended", n)
	}
	// A failure after the login (a mount without an SSH CA) revokes too.
	bad := map[string]any{"addr": l.VaultAddr, "auth": "approle", "role_id": roleID, "secret_id": secretID, "mount": "no-such-mount"}
	res, _ = runModule(t, s.args(map[string]any{"vault": bad, "reload": false}))
	if res["failed"] != true {
		t.Fatalf("a missing mount did not fail: %v", res)
	}
	if n := l.LiveTokensOf(t, role); n != 0 {
		t.Fatalf("%d token(s) alive after a failed run", n)
	}
}
