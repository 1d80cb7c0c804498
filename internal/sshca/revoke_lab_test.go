package sshca

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
)

// approle makes an AppRole of the test's own (policy incus-access) and returns its name,
// role_id and secret_id; it is deleted when the test ends.
func (b *bao) approle(t *testing.T) (name, roleID, secretID string) {
	t.Helper()
	r := make([]byte, 4)
	rand.Read(r)
	name = "gotest-" + hex.EncodeToString(r)
	b.call(t, "POST", "auth/approle/role/"+name, map[string]any{"token_policies": []string{"incus-access"}, "token_ttl": "15m"})
	t.Cleanup(func() { b.call(t, "DELETE", "auth/approle/role/"+name, nil) })
	roleID = b.call(t, "GET", "auth/approle/role/"+name+"/role-id", nil)["data"].(map[string]any)["role_id"].(string)
	secretID = b.call(t, "POST", "auth/approle/role/"+name+"/secret-id", map[string]any{})["data"].(map[string]any)["secret_id"].(string)
	return name, roleID, secretID
}

// liveTokensOf counts the live tokens an AppRole login of role made (by accessor).
func (b *bao) liveTokensOf(t *testing.T, role string) int {
	t.Helper()
	list := b.call(t, "LIST", "auth/token/accessors", nil)["data"].(map[string]any)["keys"].([]any)
	n := 0
	for _, a := range list {
		res := b.lookupAccessor(a.(string))
		if res == nil {
			continue // revoked or expired between the list and the lookup
		}
		if meta, _ := res["meta"].(map[string]any); meta != nil && meta["role_name"] == role {
			n++
		}
	}
	return n
}

func (b *bao) lookupAccessor(accessor string) map[string]any {
	out, err := b.try("POST", "auth/token/lookup-accessor", map[string]any{"accessor": accessor})
	if err != nil {
		return nil
	}
	d, _ := out["data"].(map[string]any)
	return d
}

// After ssh_ca_trust ends, successful or failed, no token its AppRole login made is alive.
func TestLabApproleTokenDoesNotOutliveTheModule(t *testing.T) {
	b := labVault(t)
	s := startSSHD(t)
	role, roleID, secretID := b.approle(t)
	vaultOpt := map[string]any{"addr": b.addr, "auth": "approle", "role_id": roleID, "secret_id": secretID}
	res, _ := runModule(t, s.args(map[string]any{"vault": vaultOpt, "reload": false}))
	if res["failed"] == true {
		t.Fatalf("module failed: %v", res["msg"])
	}
	if fps, _ := res["fingerprints"].([]any); len(fps) != 1 {
		t.Fatalf("the module did not read the CA through its login: %v", res)
	}
	if n := b.liveTokensOf(t, role); n != 0 {
		t.Fatalf("%d token(s) of the module's approle login are alive after it ended", n)
	}
	// A failure after the login (a mount without an SSH CA) revokes too.
	bad := map[string]any{"addr": b.addr, "auth": "approle", "role_id": roleID, "secret_id": secretID, "mount": "no-such-mount"}
	res, _ = runModule(t, s.args(map[string]any{"vault": bad, "reload": false}))
	if res["failed"] != true {
		t.Fatalf("a missing mount did not fail: %v", res)
	}
	if n := b.liveTokensOf(t, role); n != 0 {
		t.Fatalf("%d token(s) alive after a failed run", n)
	}
}

// try is call without failing the test: the error says the HTTP status.
func (b *bao) try(method, path string, body any) (map[string]any, error) {
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, b.addr+"/v1/"+path, rd)
	req.Header.Set("X-Vault-Token", b.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return out, nil
}
