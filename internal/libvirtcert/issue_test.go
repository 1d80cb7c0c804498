package libvirtcert

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/incus-access/incus-access/internal/testlab"
)

// FuzzVaultSignResponse: any HTTP body Vault could answer sign/<role> with decodes to a
// certificate or an error, never a panic.
func FuzzVaultSignResponse(f *testing.F) {
	f.Add([]byte(`{"data":{"certificate":` + quoteJSON(testlab.FuzzSeedCertPEM) + `,"issuing_ca":"x","serial_number":"01"}}`))
	f.Add([]byte(`{"data":{"certificate":42}}`))
	f.Add([]byte(`{"data":null,"warnings":["w"]}`))
	f.Add([]byte(`{"errors":["permission denied"]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		secret, err := api.ParseSecret(bytes.NewReader(body))
		if err != nil || secret == nil {
			return
		}
		c, err := SignedCertificate(secret.Data)
		if err == nil && c == nil {
			t.Fatal("no error and no certificate")
		}
	})
}

func quoteJSON(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r == '\n' {
			b.WriteString(`\n`)
			continue
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}
