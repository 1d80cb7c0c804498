package incustrust

import (
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/incus-access/incus-access/internal/testlab"
)

// The same certificate written in every way people and tools write it must give one
// fingerprint, equal to the hex SHA-256 of its DER bytes (what Incus reports).
func TestFingerprintIgnoresPEMForm(t *testing.T) {
	c := testlab.NewIncusClientCert(t, "alice")
	block, _ := pem.Decode([]byte(c.CertPEM))
	b64 := base64.StdEncoding.EncodeToString(block.Bytes)
	wrap := func(width int) string {
		var lines []string
		for s := b64; len(s) > 0; {
			n := min(width, len(s))
			lines = append(lines, s[:n])
			s = s[n:]
		}
		return "-----BEGIN CERTIFICATE-----\n" + strings.Join(lines, "\n") + "\n-----END CERTIFICATE-----\n"
	}
	variants := map[string]string{
		"as generated":                c.CertPEM,
		"no trailing newline":         strings.TrimRight(c.CertPEM, "\n"),
		"CRLF line endings":           strings.ReplaceAll(c.CertPEM, "\n", "\r\n"),
		"blank lines around":          "\n\n  " + c.CertPEM + "\n\n\n",
		"trailing spaces on lines":    strings.ReplaceAll(c.CertPEM, "\n", "  \n"),
		"indented (YAML block quote)": "    " + strings.ReplaceAll(strings.TrimRight(c.CertPEM, "\n"), "\n", "\n    ") + "\n",
		"re-encoded at 76 columns":    wrap(76),
		"re-encoded on one line":      wrap(1 << 20),
		"re-encoded at 40 columns":    wrap(40),
		"with openssl text dump":      "Certificate:\n    Data:\n        Version: 3 (0x2)\n" + c.CertPEM,
	}
	for name, text := range variants {
		got, err := ParseCertificate(text)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got.Fingerprint != c.FP {
			t.Errorf("%s: fingerprint %s, want %s", name, got.Fingerprint, c.FP)
		}
		if got.PEM() != c.CertPEM {
			t.Errorf("%s: canonical PEM differs from the original encoding", name)
		}
	}
	other := testlab.NewIncusClientCert(t, "alice")
	if o, _ := ParseCertificate(other.CertPEM); o.Fingerprint == c.FP {
		t.Fatal("a different certificate with the same subject must have another fingerprint")
	}
}

func TestParseCertificateRejects(t *testing.T) {
	c := testlab.NewIncusClientCert(t, "bob")
	d := testlab.NewIncusClientCert(t, "carol")
	cases := map[string]struct {
		text string
		want string
	}{
		"empty":          {"", "is not PEM"},
		"plain text":     {"hello world", "is not PEM"},
		"public key":     {"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n", "is a PEM PUBLIC KEY block"},
		"CSR":            {string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1, 2, 3}})), "is a PEM CERTIFICATE REQUEST block"},
		"truncated":      {c.CertPEM[:len(c.CertPEM)/2], "not a readable PEM block"},
		"garbage DER":    {string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER at all")})), "not a valid X.509 certificate"},
		"two certs":      {c.CertPEM + d.CertPEM, "holds 2 certificates"},
		"ssh public key": {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB9 user@host", "is not PEM"},
	}
	for name, tc := range cases {
		_, err := ParseCertificate(tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", name, err, tc.want)
		}
	}
}

// A private key pasted into the certificate is refused, its text is handed back for
// masking, and the error never contains it.
func TestPrivateKeyBlockRefusedAndNeverEchoed(t *testing.T) {
	c := testlab.NewIncusClientCert(t, "dave")
	rsaStyle := strings.ReplaceAll(c.KeyPEM, "PRIVATE KEY", "EC PRIVATE KEY")
	truncated := c.KeyPEM[:len(c.KeyPEM)-30]
	for name, text := range map[string]string{
		"key after cert":        c.CertPEM + c.KeyPEM,
		"key before cert":       c.KeyPEM + c.CertPEM,
		"EC PRIVATE KEY":        c.CertPEM + rsaStyle,
		"key only, CRLF":        strings.ReplaceAll(c.KeyPEM, "\n", "\r\n"),
		"key without END line":  c.CertPEM + truncated,
		"ENCRYPTED PRIVATE KEY": strings.ReplaceAll(c.KeyPEM, "PRIVATE KEY", "ENCRYPTED PRIVATE KEY"),
	} {
		_, err := ParseCertificate(text)
		var pk *PrivateKeyError
		if !errors.As(err, &pk) {
			t.Errorf("%s: error %v, want a PrivateKeyError", name, err)
			continue
		}
		body := strings.Split(c.KeyPEM, "\n")[1]
		if strings.Contains(err.Error(), body) || strings.Contains(err.Error(), "-----BEGIN") {
			t.Errorf("%s: the error echoes the key: %s", name, err)
		}
		joined := strings.Join(pk.Blocks, "\n")
		if !strings.Contains(joined, body) {
			t.Errorf("%s: the key block was not handed back for masking", name)
		}
		if strings.Contains(joined, strings.Split(c.CertPEM, "\n")[1]) && name != "key without END line" {
			t.Errorf("%s: the certificate was taken for part of the key", name)
		}
	}
}
