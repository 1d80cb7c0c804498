// Package clientcerts is the workstation side of the seed's client certificate workflow
// (seed 000, "Helper Script Usage"): generate a client certificate like the incus CLI
// does, back it up, extract the public part for the inventory, show it, add an Incus
// server as a remote the incus CLI can use, and add the client to a seed-shaped inventory.
// cmd/incus-client-certs is a thin main around Main.
package clientcerts

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/incus-access/incus-access/internal/pemkeys"
)

// DefaultValidityDays is the seed's default lifetime of a client certificate (10 years).
const DefaultValidityDays = 3650

// ExpiryWarningDays is how close to its end a certificate makes info warn.
const ExpiryWarningDays = 30

// clientName is what a client name may be: it becomes the certificate's common name and
// the inventory's <name>.crt file name, so no path separators, spaces or colons.
var clientName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// ValidateClientName says why name cannot be a client name, or nil.
func ValidateClientName(name string) error {
	if !clientName.MatchString(name) {
		return fmt.Errorf("client name %q: use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", name)
	}
	return nil
}

// NewClientCertificate makes what `incus remote generate-certificate` makes (ECDSA P-384
// key, self-signed, clientAuth, key as "EC PRIVATE KEY"), with the client's name as the
// common name so that the server's trust list says whose certificate it is.
func NewClientCertificate(name string, notBefore time.Time, days int) (certPEM, keyPEM []byte, err error) {
	if err := ValidateClientName(name); err != nil {
		return nil, nil, err
	}
	if days < 1 {
		return nil, nil, fmt.Errorf("validity of %d days: give at least 1", days)
	}
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot generate a key: %v", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("cannot generate a serial number: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             notBefore,
		NotAfter:              notBefore.AddDate(0, 0, days),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot create the certificate: %v", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot encode the key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// Fingerprint is the hex SHA-256 of the DER bytes: the identity Incus keys its trust store by.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// ShortFingerprint is the fingerprint as the FINGERPRINT column of `incus config trust list` shows it.
func ShortFingerprint(fp string) string {
	if len(fp) < 12 {
		return fp
	}
	return fp[:12]
}

// OpenSSLFingerprint is the form `openssl x509 -fingerprint -sha256` prints (seed: Troubleshooting).
func OpenSSLFingerprint(fp string) string {
	var parts []string
	for i := 0; i+2 <= len(fp); i += 2 {
		parts = append(parts, strings.ToUpper(fp[i:i+2]))
	}
	return strings.Join(parts, ":")
}

// NormalizeFingerprint accepts a SHA-256 fingerprint as hex, with or without colons, any case.
func NormalizeFingerprint(s string) (string, error) {
	fp := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	if len(fp) != 64 {
		return "", fmt.Errorf("fingerprint %q: give the whole SHA-256 (64 hex digits, colons allowed)", s)
	}
	if _, err := hex.DecodeString(fp); err != nil {
		return "", fmt.Errorf("fingerprint %q: not hexadecimal", s)
	}
	return fp, nil
}

// PublicCertificate is the one certificate of a client.crt file, and whether the file
// also held private key material (which is never shown).
type PublicCertificate struct {
	Cert          *x509.Certificate
	HadPrivateKey bool
}

// PEM is the certificate alone, re-encoded from its DER bytes: nothing else the file
// held can come through.
func (p *PublicCertificate) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Cert.Raw})
}

// Fingerprint is the certificate's identity in Incus.
func (p *PublicCertificate) Fingerprint() string { return Fingerprint(p.Cert.Raw) }

// ParsePublicCertificate reads exactly one certificate from PEM text. Errors describe
// the text, never quote it.
func ParsePublicCertificate(data []byte) (*PublicCertificate, error) {
	var certs [][]byte
	var other []string
	hadKey := pemkeys.Contains(string(data))
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch {
		case block.Type == "CERTIFICATE":
			certs = append(certs, block.Bytes)
		case pemkeys.IsKeyType(block.Type):
		default:
			other = append(other, block.Type)
		}
	}
	switch {
	case len(certs) == 0 && hadKey:
		return nil, errors.New("holds a private key but no certificate")
	case len(certs) == 0 && len(other) > 0:
		return nil, fmt.Errorf("is a PEM %s, not a CERTIFICATE", other[0])
	case len(certs) == 0:
		return nil, errors.New("is not a PEM certificate (no -----BEGIN CERTIFICATE----- block)")
	case len(certs) > 1:
		return nil, fmt.Errorf("holds %d certificates, expected one", len(certs))
	}
	cert, err := x509.ParseCertificate(certs[0])
	if err != nil {
		return nil, fmt.Errorf("is not a valid X.509 certificate: %v", err)
	}
	return &PublicCertificate{Cert: cert, HadPrivateKey: hadKey}, nil
}

// ParsePrivateKey reads the one private key of a client.key file (EC, PKCS#8 or PKCS#1).
// Errors never quote the key.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("is not a PEM private key")
	}
	if x509.IsEncryptedPEMBlock(block) { //nolint:staticcheck // only detected, never decrypted
		return nil, errors.New("is password protected: this tool needs an unencrypted key, as written by generate")
	}
	switch block.Type {
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("is not a readable PKCS#8 private key")
		}
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, errors.New("holds an unsupported key type")
	}
	return nil, fmt.Errorf("is a PEM %s, not a private key", block.Type)
}

// KeyMatches reports whether key is the private half of cert's public key.
func KeyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// KeyType names a certificate's key the way people compare them: "ECDSA P-384", "RSA 4096".
func KeyType(cert *x509.Certificate) string {
	switch k := cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return cert.PublicKeyAlgorithm.String()
}

// HasClientAuth reports whether the certificate may authenticate a TLS client.
func HasClientAuth(cert *x509.Certificate) bool {
	if len(cert.ExtKeyUsage) == 0 {
		return true // no restriction at all
	}
	for _, u := range cert.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

// ClientPair is the client certificate and key of an INCUS_CONF directory, read and
// checked to belong together.
type ClientPair struct {
	CertPath, KeyPath string
	Cert              *PublicCertificate
	CertPEM, KeyPEM   []byte
}

// LoadClientPair reads client.crt and client.key of dir and checks that they match.
func LoadClientPair(dir string) (*ClientPair, error) {
	p := &ClientPair{CertPath: dir + "/client.crt", KeyPath: dir + "/client.key"}
	cert, certData, err := loadCertFile(p.CertPath)
	if err != nil {
		return nil, err
	}
	keyData, err := os.ReadFile(p.KeyPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", p.KeyPath, readReason(err)+pairHint(err))
	}
	key, err := ParsePrivateKey(keyData)
	if err != nil {
		return nil, fmt.Errorf("%s %v", p.KeyPath, err)
	}
	if !KeyMatches(cert.Cert, key) {
		return nil, fmt.Errorf("%s is not the key of %s (they do not belong together)", p.KeyPath, p.CertPath)
	}
	p.Cert, p.CertPEM, p.KeyPEM = cert, certData, keyData
	return p, nil
}

// loadCertFile reads and parses a client.crt.
func loadCertFile(path string) (*PublicCertificate, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %s", path, readReason(err)+pairHint(err))
	}
	cert, err := ParsePublicCertificate(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %v", path, err)
	}
	return cert, data, nil
}

// pairHint says what to do when the client pair is missing.
func pairHint(err error) string {
	if errors.Is(err, os.ErrNotExist) {
		return " (run `incus-client-certs generate <client-name>` first, or set INCUS_CONF)"
	}
	return ""
}

// readReason says why a file could not be read, with what to do for the usual cases.
func readReason(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such file"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
