package libvirtcert

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/incus-access/incus-access/internal/vault"
)

// IssuingCA signs certificates: a CA given inline, or a Vault/OpenBao PKI role.
type IssuingCA interface {
	// Describe names the CA in messages.
	Describe() string
	// Chain is the issuing CA first, then the rest of its chain.
	Chain() []*x509.Certificate
	// Issue returns a certificate for key's public half, as want describes.
	Issue(ctx context.Context, key crypto.Signer, want *Desired, now time.Time) (*x509.Certificate, error)
}

// InlineCA is a CA certificate and its key handed to the module.
type InlineCA struct {
	chain []*x509.Certificate
	key   crypto.Signer
}

// NewInlineCA validates a CA certificate (PEM, the issuer first) and its key: the
// certificate must be a CA that may sign certificates, valid now, and the key its own.
// Errors never quote the key.
func NewInlineCA(certPEM, keyPEM string, now time.Time) (*InlineCA, error) {
	chain, err := ParseCerts([]byte(certPEM))
	if err != nil {
		return nil, fmt.Errorf("ca_cert: %v", err)
	}
	ca := chain[0]
	name := certDN(ca)
	switch {
	case !ca.BasicConstraintsValid || !ca.IsCA:
		return nil, fmt.Errorf("ca_cert (%s) is not a CA certificate: its basicConstraints do not say CA:TRUE", name)
	case ca.KeyUsage != 0 && ca.KeyUsage&x509.KeyUsageCertSign == 0:
		return nil, fmt.Errorf("ca_cert (%s) may not sign certificates: its keyUsage lacks keyCertSign", name)
	case now.After(ca.NotAfter):
		return nil, fmt.Errorf("ca_cert (%s) expired on %s", name, utc(ca.NotAfter))
	case now.Before(ca.NotBefore):
		return nil, fmt.Errorf("ca_cert (%s) is not valid before %s", name, utc(ca.NotBefore))
	}
	key, err := ParseKey([]byte(keyPEM))
	if err != nil {
		return nil, fmt.Errorf("ca_key: %v", err)
	}
	if !KeyMatches(key, ca.PublicKey) {
		return nil, fmt.Errorf("ca_key does not match ca_cert (%s): it is the key of another certificate", name)
	}
	return &InlineCA{chain: chain, key: key}, nil
}

func (c *InlineCA) Describe() string           { return "CA " + certDN(c.chain[0]) }
func (c *InlineCA) Chain() []*x509.Certificate { return c.chain }

// Issue signs a certificate with the extensions libvirt's GnuTLS checks: CA:FALSE (critical), keyUsage
// digitalSignature + keyEncipherment (critical), the type's purpose, SKI and AKI.
func (c *InlineCA) Issue(_ context.Context, key crypto.Signer, want *Desired, now time.Time) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	ski, err := keyID(key.Public())
	if err != nil {
		return nil, err
	}
	ca := c.chain[0]
	aki := ca.SubjectKeyId
	if len(aki) == 0 {
		if aki, err = keyID(ca.PublicKey); err != nil {
			return nil, err
		}
	}
	notAfter := now.Add(want.Validity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter // a certificate cannot outlive its CA (GnuTLS rejects it)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial.Add(serial, big.NewInt(1)),
		Subject:               want.Name,
		NotBefore:             now.Add(-5 * time.Minute), // clock skew between hosts
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{ExtKeyUsage(want.Type)},
		BasicConstraintsValid: true,
		IsCA:                  false,
		DNSNames:              want.DNSNames,
		IPAddresses:           want.IPs,
		SubjectKeyId:          ski,
		AuthorityKeyId:        aki,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), c.key)
	if err != nil {
		return nil, fmt.Errorf("signing with %s: %v", c.Describe(), err)
	}
	return x509.ParseCertificate(der)
}

// VaultPKI signs through a Vault/OpenBao PKI role (<mount>/sign/<role>): only a CSR
// leaves the host, the private key never does.
type VaultPKI struct {
	cfg    vault.Config
	vc     *vault.Client
	client apiClient
	chain  []*x509.Certificate
}

// DefaultPKIMount is where the PKI engine is mounted unless vault_pki.mount says otherwise.
const DefaultPKIMount = "pki"

func (v *VaultPKI) mount() string {
	if m := strings.Trim(v.cfg.Mount, "/"); m != "" {
		return m
	}
	return DefaultPKIMount
}

// Describe names the role and server in messages.
func (v *VaultPKI) Describe() string {
	return fmt.Sprintf("vault_pki %s/sign/%s at %s", v.mount(), v.cfg.Role, v.cfg.Addr)
}

func (v *VaultPKI) Chain() []*x509.Certificate { return v.chain }

// Close revokes the token of an approle login.
func (v *VaultPKI) Close() error { return v.vc.Close() }

// NewVaultPKI logs in and reads the CA chain (<mount>/cert/ca_chain, else cert/ca), which
// the decision needs before anything is signed. onSecret receives login tokens.
func NewVaultPKI(ctx context.Context, cfg vault.Config, onSecret func(string)) (_ *VaultPKI, err error) {
	v := &VaultPKI{cfg: cfg}
	switch {
	case cfg.Addr == "":
		return nil, errors.New("vault_pki.addr is required")
	case cfg.Role == "":
		return nil, errors.New("vault_pki.role is required (the PKI role that signs, e.g. libvirt-client)")
	}
	client, err := vault.NewClient(ctx, cfg, onSecret)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", v.Describe(), vault.Describe(err))
	}
	v.vc, v.client = client, apiClient{client.Client}
	defer func() {
		if err != nil {
			client.Close() // the error says what failed; a login token must not outlive it
		}
	}()
	var chainPEM string
	for _, p := range []string{"cert/ca_chain", "cert/ca"} {
		data, err := v.client.read(ctx, v.mount()+"/"+p)
		if err != nil {
			return nil, fmt.Errorf("%s: reading the CA: %s", v.Describe(), vault.Describe(err))
		}
		if s, _ := data["certificate"].(string); strings.TrimSpace(s) != "" {
			chainPEM = s
			break
		}
	}
	if chainPEM == "" {
		return nil, fmt.Errorf("%s: the mount has no CA certificate (is it a PKI engine with a CA?)", v.Describe())
	}
	if v.chain, err = ParseCerts([]byte(chainPEM)); err != nil {
		return nil, fmt.Errorf("%s: the CA certificate: %v", v.Describe(), err)
	}
	return v, nil
}

// Issue sends a CSR to the role. The CN goes in common_name too (roles without
// use_csr_common_name need it) and is kept out of the SANs, which must be exactly ours.
func (v *VaultPKI) Issue(ctx context.Context, key crypto.Signer, want *Desired, _ time.Time) (*x509.Certificate, error) {
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: want.Name, DNSNames: want.DNSNames, IPAddresses: want.IPs,
	}, key)
	if err != nil {
		return nil, fmt.Errorf("building the CSR: %v", err)
	}
	ips := make([]string, len(want.IPs))
	for i, ip := range want.IPs {
		ips[i] = ip.String()
	}
	req := map[string]any{
		"csr":                  string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})),
		"common_name":          want.Name.CommonName,
		"alt_names":            strings.Join(want.DNSNames, ","),
		"ip_sans":              strings.Join(ips, ","),
		"exclude_cn_from_sans": true,
		"ttl":                  fmt.Sprintf("%dh", int(want.Validity.Hours())),
		"format":               "pem",
	}
	data, err := v.client.write(ctx, v.mount()+"/sign/"+v.cfg.Role, req)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", v.Describe(), vault.Describe(err))
	}
	c, err := SignedCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", v.Describe(), err)
	}
	return c, nil
}

// SignedCertificate decodes the data of a Vault PKI sign/<role> response: the first
// certificate of its "certificate" field.
func SignedCertificate(data map[string]any) (*x509.Certificate, error) {
	certPEM, _ := data["certificate"].(string)
	certs, err := ParseCerts([]byte(certPEM))
	if err != nil {
		return nil, fmt.Errorf("the response holds no certificate: %v", err)
	}
	return certs[0], nil
}

// CheckIssued verifies a freshly issued certificate before anything is written: it
// belongs to key, the CA signed it, and subject, SANs and extensions are what libvirt
// needs. A Vault role decides C/ST/L/O/OU itself (it ignores the CSR's), so a role
// whose fields differ from subject is reported here instead of renewing on every run.
func CheckIssued(c *x509.Certificate, key crypto.Signer, want *Desired, ca IssuingCA) error {
	var p []string
	if !KeyMatches(key, c.PublicKey) {
		p = append(p, "it is not for the generated key")
	}
	if !signedBy(c, ca.Chain()[0]) {
		p = append(p, "the CA's certificate does not verify it")
	}
	if dn := certDN(c); dn != want.PrintedDN {
		hint := ""
		if _, isVault := ca.(*VaultPKI); isVault {
			hint = " (a PKI role takes country, province, locality, organization and ou from its own settings, not from the CSR:" +
				" set them on the role to match subject, or leave them out of subject)"
		}
		p = append(p, fmt.Sprintf("its subject is %q, not the requested %q%s", dn, want.PrintedDN, hint))
	}
	if have, w := SANList(c.DNSNames, c.IPAddresses), SANList(want.DNSNames, want.IPs); !slices.Equal(have, w) {
		p = append(p, fmt.Sprintf("its SANs are [%s], not [%s]", strings.Join(have, ", "), strings.Join(w, ", ")))
	}
	if lp := LibvirtProblems(c, want.Type); len(lp) > 0 {
		p = append(p, "libvirt would refuse it: "+strings.Join(lp, ", "))
	}
	if len(p) > 0 {
		return fmt.Errorf("%s issued an unusable certificate, nothing was written: %s", ca.Describe(), strings.Join(p, "; "))
	}
	return nil
}
