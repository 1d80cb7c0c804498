// Package vault builds one Vault API client from module options, for every module that
// reads from Vault (SSH CA keys, PKI signing). The token never appears in an error.
package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// Config is the `vault`/`vault_pki` option shared by the modules (decoded by the runtime).
type Config struct {
	Addr          string `ansible:"addr"`
	Mount         string `ansible:"mount"`
	Auth          string `ansible:"auth"` // none | token | approle
	Token         string `ansible:"token"`
	RoleID        string `ansible:"role_id"`
	SecretID      string `ansible:"secret_id"`
	Namespace     string `ansible:"namespace"`
	CACert        string `ansible:"ca_cert"` // PEM text or a path on the target
	TLSSkipVerify bool   `ansible:"tls_skip_verify"`
	Timeout       int    `ansible:"timeout"` // seconds
	Role          string `ansible:"role"`    // PKI role (libvirt_cert only)
}

// TimeoutDuration is the per-request timeout, 30 s when unset.
func (c Config) TimeoutDuration() time.Duration {
	if c.Timeout <= 0 {
		return 30 * time.Second
	}
	return time.Duration(c.Timeout) * time.Second
}

// NewClient returns a client ready for requests: TLS settings applied, namespace set,
// and logged in (approle) or given its token. onSecret receives tokens obtained by a
// login, so the caller can mask them.
func NewClient(ctx context.Context, c Config, onSecret func(string)) (*api.Client, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault: %w", cfg.Error)
	}
	cfg.Address = c.Addr
	cfg.Timeout = c.TimeoutDuration()
	cfg.MaxRetries = 0
	tls := &api.TLSConfig{Insecure: c.TLSSkipVerify}
	if c.CACert != "" {
		if strings.Contains(c.CACert, "-----BEGIN") {
			tls.CACertBytes = []byte(c.CACert)
		} else {
			tls.CACert = c.CACert
		}
	}
	if err := cfg.ConfigureTLS(tls); err != nil {
		return nil, fmt.Errorf("vault %s: TLS settings: %w", c.Addr, err)
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", c.Addr, err)
	}
	// NewClient reads VAULT_TOKEN from the environment; only the module's options count.
	client.ClearToken()
	if c.Namespace != "" {
		client.SetNamespace(c.Namespace)
	}
	switch c.Auth {
	case "", "none":
	case "token":
		client.SetToken(c.Token)
	case "approle":
		secret, err := client.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{
			"role_id": c.RoleID, "secret_id": c.SecretID,
		})
		if err != nil {
			return nil, fmt.Errorf("vault %s: approle login failed: %s", c.Addr, Describe(err))
		}
		if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
			return nil, fmt.Errorf("vault %s: approle login returned no token", c.Addr)
		}
		if onSecret != nil {
			onSecret(secret.Auth.ClientToken)
		}
		client.SetToken(secret.Auth.ClientToken)
	default:
		return nil, fmt.Errorf("vault: unknown auth method %q", c.Auth)
	}
	return client, nil
}

// Describe turns a Vault API error into one line: the HTTP status and Vault's own error
// strings, without the request URL's query or headers.
func Describe(err error) string {
	var re *api.ResponseError
	if errors.As(err, &re) {
		msg := strings.Join(re.Errors, "; ")
		switch re.StatusCode {
		case http.StatusForbidden:
			return fmt.Sprintf("permission denied (HTTP 403) on %s %s: check the token or approle and its policy%s", re.HTTPMethod, re.URL, suffix(msg))
		case http.StatusNotFound:
			return fmt.Sprintf("not found (HTTP 404) on %s %s: is the mount path right?%s", re.HTTPMethod, re.URL, suffix(msg))
		}
		return fmt.Sprintf("HTTP %d on %s %s%s", re.StatusCode, re.HTTPMethod, re.URL, suffix(msg))
	}
	return err.Error()
}

func suffix(msg string) string {
	if msg == "" {
		return ""
	}
	return ": " + msg
}
