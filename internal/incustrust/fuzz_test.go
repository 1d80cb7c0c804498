package incustrust

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseCertificate: arbitrary certificate text never panics; an error never quotes
// the input (a base64 line could be a key); what parses keeps its fingerprint through
// the canonical PEM and through CRLF line endings and YAML-style indentation.
func FuzzParseCertificate(f *testing.F) {
	// Seeds must be the same in every fuzzing process: a fixed certificate.
	const certPEM = `-----BEGIN CERTIFICATE-----
MIICETCCAbegAwIBAgIUHSeuRwW4BkXqTvq964bbOLaB73IwCgYIKoZIzj0EAwIw
XTELMAkGA1UEBhMCQVUxEzARBgNVBAgMClF1ZWVuc2xhbmQxETAPBgNVBAcMCEJy
aXNiYW5lMRQwEgYDVQQKDAtsaWJ2aXJ0Lm9yZzEQMA4GA1UEAwwHZnV6eiBDQTAg
Fw0yNjEyMDIwODM5MTRaGA8yMTI2MTEwODA4MzkxNFowXTELMAkGA1UEBhMCQVUx
EzARBgNVBAgMClF1ZWVuc2xhbmQxETAPBgNVBAcMCEJyaXNiYW5lMRQwEgYDVQQK
DAtsaWJ2aXJ0Lm9yZzEQMA4GA1UEAwwHZnV6eiBDQTBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABBXer7jBUo8Yd4cYwFqXVtUQB8m3jWPAShhTmxCJn4iY0FkMYxET
WRW90wFthq1nNZgv+8eFCWzPak7cNGTM2vejUzBRMB0GA1UdDgQWBBRgrigHlJU4
p1fSXy7m80kZmppdbjAfBgNVHSMEGDAWgBRgrigHlJU4p1fSXy7m80kZmppdbjAP
BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQDSpB2Fp0s/elyyTE88
oBxr+CfMkOfPeS7LJ9omZHnr/QIgVeqMk+T6iP3tH1dDgq+g9fodx0TpXThnmSC3
WunZlU8=
-----END CERTIFICATE-----
`
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
