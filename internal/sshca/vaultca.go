package sshca

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/incus-access/incus-access/internal/vault"
)

// DefaultMount is the SSH secrets engine's mount when the vault option names none.
const DefaultMount = "ssh-client-signer"

// VaultCASource reads the CA public key of an SSH secrets engine.
type VaultCASource struct {
	Config vault.Config
	// OnSecret receives tokens obtained at run time (approle login), to be masked.
	OnSecret func(string)
	// OnWarn receives what the module should warn about (a token that could not be revoked).
	OnWarn func(string)
}

// Name is how errors and the keys' sources name this source.
func (s VaultCASource) Name() string { return "vault " + s.mount() }

func (s VaultCASource) mount() string {
	m := strings.Trim(s.Config.Mount, "/")
	if m == "" {
		return DefaultMount
	}
	return m
}

// Fetch returns the CA public key text: with auth none from the unauthenticated
// <mount>/public_key endpoint, otherwise from <mount>/config/ca.
func (s VaultCASource) Fetch(ctx context.Context) (string, error) {
	c := s.Config
	if c.Addr == "" {
		return "", fmt.Errorf("vault: addr is required")
	}
	ctx, cancel := context.WithTimeout(ctx, c.TimeoutDuration())
	defer cancel()
	client, err := vault.NewClient(ctx, c, s.OnSecret)
	if err != nil {
		return "", s.describe(err)
	}
	defer func() {
		if err := client.Close(); err != nil && s.OnWarn != nil {
			s.OnWarn(err.Error())
		}
	}()
	if c.Auth == "" || c.Auth == "none" {
		resp, err := client.Logical().ReadRawWithContext(ctx, s.mount()+"/public_key")
		if resp != nil {
			defer resp.Body.Close()
		}
		if err != nil {
			return "", s.describe(err)
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s at %s: HTTP %d on GET /v1/%s/public_key", s.Name(), c.Addr, resp.StatusCode, s.mount())
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return "", fmt.Errorf("%s at %s: reading public_key: %v", s.Name(), c.Addr, err)
		}
		if strings.TrimSpace(string(body)) == "" {
			return "", fmt.Errorf("%s at %s: public_key returned an empty body (is a CA configured on the mount?)", s.Name(), c.Addr)
		}
		return string(body), nil
	}
	secret, err := client.Logical().ReadWithContext(ctx, s.mount()+"/config/ca")
	if err != nil {
		return "", s.describe(err)
	}
	if secret == nil || secret.Data == nil {
		return "", fmt.Errorf("%s at %s: config/ca returned no data (is the mount an SSH secrets engine?)", s.Name(), c.Addr)
	}
	key, err := PublicKeyOf(secret.Data)
	if err != nil {
		return "", fmt.Errorf("%s at %s: %v", s.Name(), c.Addr, err)
	}
	return key, nil
}

// PublicKeyOf decodes the data of an SSH engine's config/ca response.
func PublicKeyOf(data map[string]any) (string, error) {
	key, _ := data["public_key"].(string)
	if strings.TrimSpace(key) == "" {
		return "", fmt.Errorf("config/ca returned an empty public_key")
	}
	return key, nil
}

// describe names the source, the address and the reason; Vault's "no CA" answers (HTTP 400
// on an SSH mount without a signing key) get a sentence of their own.
func (s VaultCASource) describe(err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		if re.StatusCode == http.StatusBadRequest {
			return fmt.Errorf("%s at %s: no CA configured on mount %s (HTTP 400: %s); configure one with `vault write %s/config/ca generate_signing_key=true`",
				s.Name(), s.Config.Addr, s.mount(), strings.Join(re.Errors, "; "), s.mount())
		}
		return fmt.Errorf("%s at %s: %s", s.Name(), s.Config.Addr, vault.Describe(err))
	}
	msg := err.Error()
	if strings.Contains(msg, "approle login") || strings.HasPrefix(msg, "vault") {
		return fmt.Errorf("%s: %s", s.Name(), msg)
	}
	return fmt.Errorf("%s: cannot reach Vault at %s: %s", s.Name(), s.Config.Addr, msg)
}
