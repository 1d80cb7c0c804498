package testlab

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

// vaultCall is one OpenBao API call with the lab's root token; the error names the status.
func (l *Lab) vaultCall(method, path string, body any) (map[string]any, error) {
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, l.VaultAddr+"/v1/"+path, rd)
	req.Header.Set("X-Vault-Token", l.VaultToken)
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

func (l *Lab) mustVault(t testing.TB, method, path string, body any) map[string]any {
	t.Helper()
	out, err := l.vaultCall(method, path, body)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// OwnAppRole makes an AppRole of the test's own with the lab's incus-access policy, so
// the tokens its logins make can be told from everyone else's; deleted after the test.
func (l *Lab) OwnAppRole(t testing.TB) (name, roleID, secretID string) {
	t.Helper()
	l.RequireVault(t)
	r := make([]byte, 4)
	rand.Read(r)
	name = "gotest-" + hex.EncodeToString(r)
	l.mustVault(t, "POST", "auth/approle/role/"+name, map[string]any{"token_policies": []string{"incus-access"}, "token_ttl": "15m"})
	t.Cleanup(func() { l.vaultCall("DELETE", "auth/approle/role/"+name, nil) })
	roleID = l.mustVault(t, "GET", "auth/approle/role/"+name+"/role-id", nil)["data"].(map[string]any)["role_id"].(string)
	secretID = l.mustVault(t, "POST", "auth/approle/role/"+name+"/secret-id", map[string]any{})["data"].(map[string]any)["secret_id"].(string)
	return name, roleID, secretID
}

// LiveTokensOf counts the live tokens that logins of AppRole role made (by accessor).
func (l *Lab) LiveTokensOf(t testing.TB, role string) int {
	t.Helper()
	list := l.mustVault(t, "LIST", "auth/token/accessors", nil)["data"].(map[string]any)["keys"].([]any)
	n := 0
	for _, a := range list {
		out, err := l.vaultCall("POST", "auth/token/lookup-accessor", map[string]any{"accessor": a})
		if err != nil {
			continue // revoked or expired between the list and the lookup
		}
		d, _ := out["data"].(map[string]any)
		if meta, _ := d["meta"].(map[string]any); meta != nil && meta["role_name"] == role {
			n++
		}
	}
	return n
}
