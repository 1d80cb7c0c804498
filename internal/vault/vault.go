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

// Client is a Vault API client that knows whether its token came from a login here.
type Client struct {
	*api.Client
	loggedIn bool
}

// Close revokes a token this process obtained by a login (auth/token/revoke-self), so no
// live token outlives the module; a token given by the user is left alone.
func (c *Client) Close() error {
	if c == nil || !c.loggedIn {
		return nil
	}
	// Its own deadline: the caller's context may have expired by now.
	ctx, cancel := context.WithTimeout(context.Background(), c.Client.ClientTimeout())
	defer cancel()
	err := c.Auth().Token().RevokeSelfWithContext(ctx, "")
	c.loggedIn = false
	c.ClearToken()
	if err != nil {
		return fmt.Errorf("vault: revoking the approle login's token failed (it expires with its TTL): %s", Describe(err))
	}
	return nil
}

// SkipVerifyWarning is the warning every use of tls_skip_verify: true gets.
func SkipVerifyWarning(option string) string {
	return option + ".tls_skip_verify is true: the Vault server's certificate is not checked, so anyone on the network path can pose as it; give ca_cert instead"
}

// NewClient returns a client ready for requests: TLS settings applied, namespace set,
// and logged in (approle) or given its token. onSecret receives tokens obtained by a
// login, so the caller can mask them. Close the client when done: it revokes such a token.
func NewClient(ctx context.Context, c Config, onSecret func(string)) (*Client, error) {
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
		return &Client{Client: client, loggedIn: true}, nil
	default:
		return nil, fmt.Errorf("vault: unknown auth method %q", c.Auth)
	}
	return &Client{Client: client}, nil
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
