package vault

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/incus-access/incus-access/internal/testlab"
)

func labConfig(t *testing.T) Config {
	t.Helper()
	l := testlab.Get(t)
	l.RequireVault(t)
	return Config{Addr: l.VaultAddr, Timeout: 10}
}

func TestLabTokenReadsConfigCA(t *testing.T) {
	c := labConfig(t)
	c.Auth, c.Token = "token", testlab.Get(t).ChildToken(t, "incus-access")
	client, err := NewClient(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.Logical().Read("ssh-client-signer/config/ca")
	if err != nil || s == nil || !strings.HasPrefix(s.Data["public_key"].(string), "ssh-rsa ") {
		t.Fatalf("read config/ca: %v %v", s, err)
	}
}

func TestLabApproleLoginHandsOverItsToken(t *testing.T) {
	c := labConfig(t)
	c.Auth, c.RoleID, c.SecretID = "approle", os.Getenv("LAB_VAULT_ROLE_ID"), os.Getenv("LAB_VAULT_SECRET_ID")
	var got []string
	client, err := NewClient(context.Background(), c, func(s string) { got = append(got, s) })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] == "" || client.Token() != got[0] {
		t.Fatalf("onSecret got %d tokens; the client's token must be the one handed over", len(got))
	}
	if _, err := client.Logical().Read("ssh-client-signer/config/ca"); err != nil {
		t.Fatalf("the approle token cannot read config/ca: %v", err)
	}
	// Its policy does not reach the signing roles: 403, described without the token.
	_, err = client.Logical().Write("ssh-client-signer/sign/admin-role", map[string]any{"public_key": "x"})
	if d := Describe(err); !strings.Contains(d, "permission denied (HTTP 403) on PUT") || strings.Contains(d, got[0]) {
		t.Fatalf("403: %s", d)
	}
}

func TestLabNoneIgnoresVaultTokenFromEnvironment(t *testing.T) {
	c := labConfig(t)
	t.Setenv("VAULT_TOKEN", os.Getenv("LAB_VAULT_TOKEN"))
	client, err := NewClient(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if client.Token() != "" {
		t.Fatal("auth none must not pick up VAULT_TOKEN")
	}
	resp, err := client.Logical().ReadRaw("ssh-client-signer/public_key")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("public_key: HTTP %d", resp.StatusCode)
	}
}

func TestLabWrongTokenIs403WithoutTheToken(t *testing.T) {
	c := labConfig(t)
	c.Auth, c.Token = "token", "hvs.not-a-real-token-0123456789abcdef"
	client, err := NewClient(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Logical().Read("ssh-client-signer/config/ca")
	d := Describe(err)
	if !strings.Contains(d, "permission denied (HTTP 403) on GET") || !strings.Contains(d, "/v1/ssh-client-signer/config/ca") || strings.Contains(d, c.Token) || strings.Contains(err.Error(), c.Token) {
		t.Fatalf("403: %s", d)
	}
}

func TestLabBadSecretIDFailsLoginWithoutTheSecret(t *testing.T) {
	c := labConfig(t)
	c.Auth, c.RoleID, c.SecretID = "approle", os.Getenv("LAB_VAULT_ROLE_ID"), "6b1c2d3e-0000-4000-8000-feedfacecafe"
	_, err := NewClient(context.Background(), c, nil)
	if err == nil || !strings.Contains(err.Error(), "approle login failed") || strings.Contains(err.Error(), c.SecretID) {
		t.Fatalf("login: %v", err)
	}
}

func TestUnreachableAndUnknownAuth(t *testing.T) {
	c := Config{Addr: "http://127.0.0.1:1", Auth: "token", Token: "hvs.unreachable-secret-token", Timeout: 2}
	client, err := NewClient(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = client.Logical().Read("ssh-client-signer/config/ca")
	if err == nil || !strings.Contains(Describe(err), "connection refused") || strings.Contains(Describe(err), c.Token) {
		t.Fatalf("unreachable: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("no retries expected, took %s", time.Since(start))
	}
	if _, err := NewClient(context.Background(), Config{Addr: c.Addr, Auth: "kerberos"}, nil); err == nil || !strings.Contains(err.Error(), `unknown auth method "kerberos"`) {
		t.Fatalf("unknown auth: %v", err)
	}
	if (Config{}).TimeoutDuration() != 30*time.Second {
		t.Fatal("default timeout")
	}
}

// A token from an approle login is revoked by Close: OpenBao then rejects it (403). A
// token the user gave is never revoked.
func TestLabCloseRevokesTheLoginTokenOnly(t *testing.T) {
	c := labConfig(t)
	c.Auth, c.RoleID, c.SecretID = "approle", os.Getenv("LAB_VAULT_ROLE_ID"), os.Getenv("LAB_VAULT_SECRET_ID")
	client, err := NewClient(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	token := client.Token()
	lookup := func(tok string) error {
		tc := labConfig(t)
		tc.Auth, tc.Token = "token", tok
		cl, err := NewClient(context.Background(), tc, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.Auth().Token().LookupSelf()
		return err
	}
	if err := lookup(token); err != nil {
		t.Fatalf("the fresh login token does not work: %v", err)
	}
	if err := client.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := lookup(token); !strings.Contains(Describe(err), "HTTP 403") {
		t.Fatalf("after Close the login token is not rejected with 403: %v", Describe(err))
	}
	if client.Close() != nil {
		t.Fatal("a second Close must do nothing")
	}

	given := testlab.Get(t).ChildToken(t, "incus-access")
	tc := labConfig(t)
	tc.Auth, tc.Token = "token", given
	cl, err := NewClient(context.Background(), tc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	if err := lookup(given); err != nil {
		t.Fatalf("Close revoked a token the user gave: %v", err)
	}
}
