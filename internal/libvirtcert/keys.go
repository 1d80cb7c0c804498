package libvirtcert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
)

// KeySpec is the kind of private key a certificate has: rsa 2048/3072/4096 or ecdsa 256/384.
type KeySpec struct {
	Type string // rsa | ecdsa
	Size int    // RSA modulus bits, or the ECDSA curve's bits
}

func (k KeySpec) String() string {
	if k.Type == "ecdsa" {
		return fmt.Sprintf("ecdsa P-%d", k.Size)
	}
	return fmt.Sprintf("%s %d", k.Type, k.Size)
}

// Validate checks the combinations the module supports.
func (k KeySpec) Validate() error {
	switch k.Type {
	case "rsa":
		if k.Size != 2048 && k.Size != 3072 && k.Size != 4096 {
			return fmt.Errorf("key_size %d is not supported for rsa (2048, 3072 or 4096)", k.Size)
		}
	case "ecdsa":
		if k.Size != 256 && k.Size != 384 {
			return fmt.Errorf("key_size %d is not supported for ecdsa (256 for P-256, 384 for P-384)", k.Size)
		}
	default:
		return fmt.Errorf("key_type %q is not supported (rsa or ecdsa)", k.Type)
	}
	return nil
}

// Generate makes a new private key of this kind.
func (k KeySpec) Generate() (crypto.Signer, error) {
	switch k.Type {
	case "rsa":
		return rsa.GenerateKey(rand.Reader, k.Size)
	case "ecdsa":
		curve := elliptic.P256()
		if k.Size == 384 {
			curve = elliptic.P384()
		}
		return ecdsa.GenerateKey(curve, rand.Reader)
	}
	return nil, fmt.Errorf("key_type %q is not supported", k.Type)
}

// SpecOf describes a public key; ok is false for kinds the module does not make.
func SpecOf(pub crypto.PublicKey) (KeySpec, bool) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return KeySpec{"rsa", p.N.BitLen()}, true
	case *ecdsa.PublicKey:
		return KeySpec{"ecdsa", p.Curve.Params().BitSize}, true
	}
	return KeySpec{Type: fmt.Sprintf("%T", pub)}, false
}

// MarshalKey encodes a private key as unencrypted PKCS #8 PEM (GnuTLS reads it).
func MarshalKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKey reads the first private key block of PEM text (PKCS #8, PKCS #1 or SEC 1).
// Its errors never quote the text.
func ParseKey(data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM private key block")
		}
		var key any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the private key is encrypted (a passphrase-protected key is not supported)")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s block does not parse", b.Type)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", key)
		}
		return s, nil
	}
}

type publicKeyEqualer interface{ Equal(crypto.PublicKey) bool }

// KeyMatches reports whether a private key belongs to a public key.
func KeyMatches(key crypto.Signer, pub crypto.PublicKey) bool {
	e, ok := key.Public().(publicKeyEqualer)
	return ok && e.Equal(pub)
}

// keyID is the RFC 5280 (method 1) key identifier: SHA-1 of the subjectPublicKey bits.
func keyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	var spki struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, err
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:], nil
}
