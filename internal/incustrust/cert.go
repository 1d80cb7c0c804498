package incustrust

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"github.com/incus-access/incus-access/internal/pemkeys"
)

// Certificate is a client certificate reduced to what trust decisions use: its DER bytes
// and the fingerprint Incus keys the trust store by.
type Certificate struct {
	DER         []byte
	Fingerprint string // hex SHA-256 of DER, as Incus reports it
	NotBefore   time.Time
	NotAfter    time.Time
	Subject     string
}

// PEM is the canonical encoding sent to the API, whatever form the input had.
func (c *Certificate) PEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER}))
}

// Fingerprint is the identity Incus gives a certificate: hex SHA-256 of its DER bytes.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// PrivateKeyError says the certificate text holds a private key. It carries the key
// block's text so that the caller can register it as a secret; Error never shows it.
type PrivateKeyError struct {
	BlockType string
	Blocks    []string
}

func (e *PrivateKeyError) Error() string {
	return fmt.Sprintf("contains a %s block (not shown): give only the public certificate, the private key stays with the client", e.BlockType)
}

// ParseCertificate reads exactly one X.509 certificate from PEM text. Whitespace, CRLF
// line endings, line wrapping and text around the block do not matter: the result is
// keyed by the DER bytes. Errors never quote the input.
func ParseCertificate(text string) (*Certificate, error) {
	// A private key anywhere in the text is refused before anything else, and the
	// blocks' exact text is kept for masking.
	if keyErr := findPrivateKeys(text); keyErr != nil {
		return nil, keyErr
	}
	rest := []byte(normalizeLines(text))
	var certs [][]byte
	var other []string
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			certs = append(certs, block.Bytes)
		} else {
			other = append(other, block.Type)
		}
	}
	switch {
	case len(certs) == 0 && len(other) > 0:
		return nil, fmt.Errorf("is a PEM %s block, not a CERTIFICATE", other[0])
	case len(certs) == 0 && strings.Contains(text, "-----BEGIN"):
		return nil, fmt.Errorf("is not a readable PEM block (bad base64 or no END line)")
	case len(certs) == 0:
		return nil, fmt.Errorf("is not PEM: no -----BEGIN CERTIFICATE----- block found")
	case len(certs) > 1:
		return nil, fmt.Errorf("holds %d certificates: give exactly one (Incus trusts one certificate per entry)", len(certs))
	}
	x, err := x509.ParseCertificate(certs[0])
	if err != nil {
		return nil, fmt.Errorf("is not a valid X.509 certificate: %v", err)
	}
	return &Certificate{
		DER:         certs[0],
		Fingerprint: Fingerprint(certs[0]),
		NotBefore:   x.NotBefore,
		NotAfter:    x.NotAfter,
		Subject:     x.Subject.String(),
	}, nil
}

// findPrivateKeys returns an error holding the text of every private key block (the
// rule is pemkeys'), so that the caller can mask each one.
func findPrivateKeys(text string) *PrivateKeyError {
	blocks := pemkeys.Find(text)
	if len(blocks) == 0 {
		return nil
	}
	e := &PrivateKeyError{BlockType: blocks[0].Type}
	for _, b := range blocks {
		e.Blocks = append(e.Blocks, b.Text)
	}
	return e
}

// Equal reports whether two certificates are the same certificate.
func (c *Certificate) Equal(o *Certificate) bool { return bytes.Equal(c.DER, o.DER) }

// normalizeLines trims every line, so that CRLF endings, indentation (a YAML block
// scalar quoted with its indent) and trailing blanks cannot hide a PEM block.
func normalizeLines(text string) string {
	lines := strings.Split(strings.ReplaceAll(text, "\r", "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, "\n")
}

func base64DER(der []byte) string { return base64.StdEncoding.EncodeToString(der) }
