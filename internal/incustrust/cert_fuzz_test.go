package incustrust

import (
	"errors"
	"strings"
	"testing"

	"github.com/incus-access/incus-access/internal/testlab"
)

// FuzzParseCertificate: arbitrary certificate text never panics; an error never quotes
// the input (a base64 line could be a key); what parses keeps its fingerprint through
// the canonical PEM and through CRLF line endings and YAML-style indentation.
func FuzzParseCertificate(f *testing.F) {
	certPEM := testlab.FuzzSeedCertPEM
	f.Add(certPEM)
	f.Add(certPEM + "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END EC PRIVATE KEY-----\n")
	f.Add("  " + strings.ReplaceAll(certPEM, "\n", "\r\n  "))
	f.Add(certPEM + certPEM)
	f.Add("-----BEGIN PRIVATE KEY-----\nMIIEvQ\n")
	f.Add("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----")
	f.Fuzz(func(t *testing.T, text string) {
		cert, err := ParseCertificate(text)
		if err != nil {
			msg := err.Error()
			for _, line := range strings.Split(text, "\n") {
				line = strings.TrimSpace(line)
				if len(line) >= 24 && !strings.ContainsAny(line, " -") && strings.Contains(msg, line) {
					t.Fatalf("the error quotes the input line %q: %s", line, msg)
				}
			}
			var pk *PrivateKeyError
			if errors.As(err, &pk) && len(pk.Blocks) == 0 {
				t.Fatal("a private key error without the blocks to mask")
			}
			return
		}
		if len(cert.Fingerprint) != 64 || cert.Fingerprint != Fingerprint(cert.DER) {
			t.Fatalf("fingerprint %q", cert.Fingerprint)
		}
		for _, variant := range []string{cert.PEM(), strings.ReplaceAll(cert.PEM(), "\n", "\r\n    ")} {
			again, err := ParseCertificate(variant)
			if err != nil || again.Fingerprint != cert.Fingerprint {
				t.Fatalf("the same certificate written another way: %v", err)
			}
		}
	})
}
