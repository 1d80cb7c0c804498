package testlab

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
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
		// OpenBao's error body names what is wrong, never a token
		return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return out, nil
}

// Vault is one OpenBao API call with the lab's root token; any failure fails the test.
func (l *Lab) Vault(t testing.TB, method, path string, body any) map[string]any {
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
	l.Vault(t, "POST", "auth/approle/role/"+name, map[string]any{"token_policies": []string{"incus-access"}, "token_ttl": "15m"})
	t.Cleanup(func() { l.vaultCall("DELETE", "auth/approle/role/"+name, nil) })
	roleID = l.Vault(t, "GET", "auth/approle/role/"+name+"/role-id", nil)["data"].(map[string]any)["role_id"].(string)
	secretID = l.Vault(t, "POST", "auth/approle/role/"+name+"/secret-id", map[string]any{})["data"].(map[string]any)["secret_id"].(string)
	return name, roleID, secretID
}

// LiveTokensOf counts the live tokens that logins of AppRole role made (by accessor).
func (l *Lab) LiveTokensOf(t testing.TB, role string) int {
	t.Helper()
	list := l.Vault(t, "LIST", "auth/token/accessors", nil)["data"].(map[string]any)["keys"].([]any)
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

// SSHCAPublicKey is the lab's SSH user CA key as the unauthenticated endpoint serves it.
func (l *Lab) SSHCAPublicKey(t testing.TB) string {
	t.Helper()
	l.RequireVault(t)
	resp, err := http.Get(l.VaultAddr + "/v1/ssh-client-signer/public_key")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(data))
}

// SignSSHKey has a public key signed as a user certificate by one of seed 003's roles
// (principals and ttl: the role's defaults when empty).
func (l *Lab) SignSSHKey(t testing.TB, role, pubKey, principals, ttl string) string {
	t.Helper()
	body := map[string]any{"public_key": pubKey, "cert_type": "user"}
	if principals != "" {
		body["valid_principals"] = principals
	}
	if ttl != "" {
		body["ttl"] = ttl
	}
	return l.Vault(t, "POST", "ssh-client-signer/sign/"+role, body)["data"].(map[string]any)["signed_key"].(string)
}

// ChildToken is a short-lived token with the given policies. Never "root" itself: the
// lab's root token is the word root, which a test cannot look for in output.
func (l *Lab) ChildToken(t testing.TB, policies ...string) string {
	t.Helper()
	l.RequireVault(t)
	res := l.Vault(t, "POST", "auth/token/create", map[string]any{"policies": policies, "ttl": "15m"})
	return res["auth"].(map[string]any)["client_token"].(string)
}

// VaultMount enables a secrets engine of type typ under a unique path, removed when the
// test ends.
func (l *Lab) VaultMount(t testing.TB, typ string) string {
	t.Helper()
	path := fmt.Sprintf("test-%s-%d", typ, time.Now().UnixNano())
	l.Vault(t, "POST", "sys/mounts/"+path, map[string]any{"type": typ})
	t.Cleanup(func() { l.vaultCall("DELETE", "sys/mounts/"+path, nil) })
	return path
}
