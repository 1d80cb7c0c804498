// Package libvirtcert issues and installs libvirt TLS certificates (the libvirt_cert
// module): a key made on the target, signed by a CA given inline or by a Vault/OpenBao
// PKI role, written atomically with owner, mode and SELinux label.
package libvirtcert

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/incus-access/incus-access/internal/ansible"
	"github.com/incus-access/incus-access/internal/fileutil"
	"github.com/incus-access/incus-access/internal/vault"
)

// Subject is the seed's certtool template fields plus the SANs.
type Subject struct {
	Country            string   `ansible:"country"`
	State              string   `ansible:"state"`
	Locality           string   `ansible:"locality"`
	Organization       string   `ansible:"organization"`
	OrganizationalUnit string   `ansible:"organizational_unit"`
	CommonName         string   `ansible:"common_name"`
	SAN                []string `ansible:"san"`
}

// Params are the module's options (modules/libvirt_cert/libvirt_cert.yml).
type Params struct {
	State           string        `ansible:"state"`
	Type            string        `ansible:"type"`
	Subject         Subject       `ansible:"subject"`
	KeyType         string        `ansible:"key_type"`
	KeySize         int           `ansible:"key_size"`
	CACert          string        `ansible:"ca_cert"`
	CAKey           string        `ansible:"ca_key"`
	VaultPKI        *vault.Config `ansible:"vault_pki"`
	ValidityDays    int           `ansible:"validity_days"`
	RenewBeforeDays int           `ansible:"renew_before_days"`
	CertPath        string        `ansible:"cert_path"`
	KeyPath         string        `ansible:"key_path"`
	CACertPath      string        `ansible:"ca_cert_path"`
	InstallCACert   bool          `ansible:"install_ca_cert"`
	Owner           string        `ansible:"owner"`
	Group           string        `ansible:"group"`
	Mode            string        `ansible:"mode"`
	CACertMode      string        `ansible:"ca_cert_mode"`
	SELinuxLabel    string        `ansible:"selinux_label"`
	Backup          bool          `ansible:"backup"`
}

// The seed's file locations.
const (
	DefaultCACertPath = "/etc/pki/CA/cacert.pem"
	SeedSELinuxLabel  = "system_u:object_r:cert_t:s0"
)

// DefaultPaths are the seed's certificate and key paths for a type.
func DefaultPaths(typ string) Paths {
	if typ == "server" {
		return Paths{Cert: "/etc/pki/libvirt/servercert.pem", Key: "/etc/pki/libvirt/private/serverkey.pem", CA: DefaultCACertPath}
	}
	return Paths{Cert: "/etc/pki/libvirt/clientcert.pem", Key: "/etc/pki/libvirt/private/clientkey.pem", CA: DefaultCACertPath}
}

// settings is Params checked and resolved: paths, attributes, key kind.
type settings struct {
	paths                    Paths
	certAttrs, keyAttrs, caA fileutil.Attrs
	selinux                  string // what the result says about SELinux
}

func resolve(p *Params) (*settings, error) {
	s := &settings{paths: DefaultPaths(p.Type)}
	if p.CertPath != "" {
		s.paths.Cert = p.CertPath
	}
	if p.KeyPath != "" {
		s.paths.Key = p.KeyPath
	}
	if p.CACertPath != "" {
		s.paths.CA = p.CACertPath
	}
	seen := map[string]string{}
	for name, path := range map[string]string{"cert_path": s.paths.Cert, "key_path": s.paths.Key, "ca_cert_path": s.paths.CA} {
		if !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("%s %q is not an absolute path", name, path)
		}
		if other, dup := seen[path]; dup && (p.InstallCACert || (name != "ca_cert_path" && other != "ca_cert_path")) {
			return nil, fmt.Errorf("%s and %s are the same file %s", other, name, path)
		}
		seen[path] = name
	}
	mode, err := parseMode("mode", p.Mode)
	if err != nil {
		return nil, err
	}
	caMode, err := parseMode("ca_cert_mode", p.CACertMode)
	if err != nil {
		return nil, err
	}
	label := ""
	if fileutil.SELinuxEnabled() {
		label = p.SELinuxLabel
		s.selinux = "SELinux is enabled: files labelled " + label
		if label == "" {
			s.selinux = "SELinux is enabled; selinux_label is empty, so the policy's default label applies"
		}
	} else {
		s.selinux = "SELinux is not enabled on this host: no label set"
	}
	s.certAttrs = fileutil.Attrs{Owner: p.Owner, Group: p.Group, Mode: mode, SELinuxLabel: label}
	s.keyAttrs = s.certAttrs
	s.caA = fileutil.Attrs{Owner: p.Owner, Group: p.Group, Mode: caMode, SELinuxLabel: label}
	if _, err := fileutil.AttrsDiffer("/", s.certAttrs); err != nil {
		return nil, err // owner or group does not exist
	}
	return s, nil
}

func parseMode(name, v string) (os.FileMode, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("%s %q is not an octal file mode such as 0400", name, v)
	}
	return os.FileMode(n), nil
}

// keySpec applies the key_size default of each key_type.
func keySpec(p *Params) KeySpec {
	k := KeySpec{Type: p.KeyType, Size: p.KeySize}
	if k.Size == 0 {
		k.Size = 2048
		if k.Type == "ecdsa" {
			k.Size = 256
		}
	}
	return k
}

// Run is the libvirt_cert module.
func Run(m *ansible.Context, p *Params) error {
	m.AddSecret(p.CAKey)
	s, err := resolve(p)
	if err != nil {
		return err
	}
	m.Set("cert_path", s.paths.Cert)
	m.Set("key_path", s.paths.Key)
	m.Set("selinux", s.selinux)
	if p.State == "absent" {
		return runAbsent(m, p, s)
	}
	m.Set("ca_cert_path", s.paths.CA)
	hasInline, hasVault := p.CACert != "" || p.CAKey != "", p.VaultPKI != nil
	switch {
	case hasInline && hasVault:
		return errors.New("give one signing source: ca_cert + ca_key, or vault_pki, not both")
	case !hasInline && !hasVault:
		return errors.New("no signing source: give ca_cert + ca_key, or vault_pki")
	case hasInline && (p.CACert == "" || p.CAKey == ""):
		return errors.New("ca_cert and ca_key go together")
	}
	if p.Subject.CommonName == "" {
		if p.Subject.CommonName, err = os.Hostname(); err != nil {
			return fmt.Errorf("subject.common_name is not set and the hostname is unknown: %v", err)
		}
	}
	want, err := NewDesired(p.Type, p.Subject, keySpec(p), p.ValidityDays, p.RenewBeforeDays)
	if err != nil {
		return err
	}
	now := time.Now()
	ctx := context.Background()
	var ca IssuingCA
	if hasVault {
		cfg := *p.VaultPKI
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.TimeoutDuration())
		defer cancel()
		if cfg.TLSSkipVerify {
			m.Warn("%s", vault.SkipVerifyWarning("vault_pki"))
		}
		vp, err := NewVaultPKI(ctx, cfg, func(tok string) { m.AddSecret(tok) })
		if err != nil {
			return err
		}
		defer func() {
			if err := vp.Close(); err != nil {
				m.Warn("%v", err)
			}
		}()
		ca = vp
	} else if ca, err = NewInlineCA(p.CACert, p.CAKey, now); err != nil {
		return err
	}
	want.CA = ca.Chain()
	want.CAPEM = EncodeCerts(want.CA)
	m.Set("issuer", certDN(want.CA[0]))

	// Read, decide and write under one lock: two runs at once never leave one run's key
	// beside the other's certificate.
	lock, err := fileutil.LockFiles(s.paths.Cert, !m.CheckMode)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	// The CA file is shared by the server and client certificates (each has its own lock
	// above): its own lock, always taken second, so no run removes another's live temp file.
	caLock, err := fileutil.LockFiles(s.paths.CA, !m.CheckMode)
	if err != nil {
		return err
	}
	defer caLock.Unlock()
	stale, err := fileutil.StaleTemps([]string{s.paths.Cert, s.paths.Key, s.paths.CA}, nil)
	if err != nil {
		return err
	}
	m.Set("removed_temp_files", append([]string{}, stale...))
	if len(stale) > 0 && !m.CheckMode {
		// A killed run's temp file may be a copy of a private key: it goes first.
		if err := fileutil.RemoveFiles(stale); err != nil {
			return err
		}
	}
	cur, err := ReadCurrent(s.paths, p.InstallCACert, s.certAttrs, s.keyAttrs, s.caA)
	if err != nil {
		return err
	}
	if cur.KeyPEM != nil {
		m.AddSecret(string(cur.KeyPEM))
	}
	d := Decide(cur, want, s.paths, p.InstallCACert, now)
	m.Set("reason", d.Reason)
	m.Changed = d.Reason != "" || len(stale) > 0

	final := cur.Cert
	if d.Issue {
		final = nil
	}
	before := summary(cur.Cert)
	if ca0 := want.CA[0]; ca0.NotAfter.Sub(now) <= want.RenewBefore {
		m.Warn("the CA %s expires on %s, within renew_before_days: certificates cannot outlive it, renew the CA", certDN(ca0), utc(ca0.NotAfter))
	}
	var dn string
	if !m.Changed || m.CheckMode {
		if final != nil {
			dn = report(m, final)
		} else {
			dn = predict(m, want, now)
		}
		if m.DiffMode && m.Changed {
			m.AddDiff(s.paths.Cert, before, predictedSummary(want, d, cur.Cert, now))
		}
		m.Msg = message(d, p.Type, m.CheckMode, dn)
		return nil
	}

	var written *x509.Certificate
	var backups []string
	if d.Reason != "" {
		written, backups, err = apply(ctx, m, d, want, ca, s, p.Backup, now)
	}
	caLock.Unlock()
	lock.Unlock()
	if len(backups) > 0 {
		m.Set("backup_files", backups)
	}
	if written != nil {
		final = written
	}
	if final != nil {
		dn = report(m, final)
	}
	if err != nil {
		return err
	}
	if m.DiffMode {
		m.AddDiff(s.paths.Cert, before, summary(final))
	}
	m.Msg = message(d, p.Type, false, dn)
	return nil
}

// report sets the returned facts of the certificate now in place.
func report(m *ansible.Context, c *x509.Certificate) string {
	dn := certDN(c)
	m.Set("subject_dn", AllowedDNEntry(dn))
	m.Set("subject_dn_printed", dn)
	m.Set("not_after", utc(c.NotAfter))
	m.Set("serial", Serial(c))
	m.Set("fingerprint", Fingerprint(c))
	if k, ok := SpecOf(c.PublicKey); ok {
		m.Set("key", k.String())
	}
	if HasWildcards(dn) {
		m.Warn("the subject %q holds * or ?, which tls_allowed_dn_list treats as wildcards and cannot escape: subject_dn %q also matches other DNs", dn, AllowedDNEntry(dn))
	}
	return AllowedDNEntry(dn)
}

// predict sets the returned facts of the certificate a real run would issue (check mode).
func predict(m *ansible.Context, want *Desired, now time.Time) string {
	m.Set("subject_dn", AllowedDNEntry(want.PrintedDN))
	m.Set("subject_dn_printed", want.PrintedDN)
	m.Set("not_after", utc(now.Add(want.Validity)))
	m.Set("serial", "")
	m.Set("fingerprint", "")
	m.Set("key", want.Key.String())
	return AllowedDNEntry(want.PrintedDN)
}

func message(d Decision, typ string, check bool, dn string) string {
	switch {
	case d.Reason == "":
		return fmt.Sprintf("%s certificate %q is up to date", typ, dn)
	case check && d.Issue:
		return fmt.Sprintf("would issue the %s certificate %q: %s", typ, dn, d.Reason)
	case check:
		return fmt.Sprintf("would fix the files of the %s certificate %q: %s", typ, dn, d.Reason)
	case d.Issue:
		return fmt.Sprintf("issued the %s certificate %q: %s", typ, dn, d.Reason)
	}
	return fmt.Sprintf("fixed the files of the %s certificate %q: %s", typ, dn, d.Reason)
}
