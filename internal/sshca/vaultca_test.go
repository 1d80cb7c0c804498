package sshca

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/incus-access/incus-access/internal/pemkeys"
)

// FuzzVaultCAResponse: any body Vault could answer config/ca with decodes to CA keys or
// an error, never a panic, and an error never shows a private key given as public_key.
func FuzzVaultCAResponse(f *testing.F) {
	f.Add([]byte(`{"data":{"public_key":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"}}`))
	f.Add([]byte(`{"data":{"public_key":["x"]}}`))
	f.Add([]byte(`{"data":{"public_key":"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		secret, err := api.ParseSecret(bytes.NewReader(body))
		if err != nil || secret == nil {
			return
		}
		key, err := PublicKeyOf(secret.Data)
		if err != nil {
			return
		}
		keys, err := ParseCAKeys("vault ssh-client-signer", key)
		if err != nil {
			for _, line := range strings.Split(key, "\n") {
				if line = strings.TrimSpace(line); len(line) >= 24 && pemkeys.Contains(key) && !strings.ContainsAny(line, " -") && strings.Contains(err.Error(), line) {
					t.Fatalf("the error shows private key material: %v", err)
				}
			}
			return
		}
		if len(keys) == 0 {
			t.Fatal("no error and no key")
		}
	})
}
