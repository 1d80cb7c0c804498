// Package libvirtcert issues and installs libvirt TLS certificates (the libvirt_cert
// module): a key made on the target, signed by a CA given inline or by a Vault/OpenBao
// PKI role, written atomically with owner, mode and SELinux label.
package libvirtcert

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/incus-access/incus-access/internal/ansible"
	"github.com/incus-access/incus-access/internal/fileutil"
	"github.com/incus-access/incus-access/internal/vault"
)

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

// Run is the libvirt_cert module: resolve the settings, remove (state=absent) or build
// the desired certificate, open the CA, read, decide and write under the lock, report.
// The sidecar enforces the signing source rules (one of ca_cert + ca_key or vault_pki).
func Run(m *ansible.Context, p *Params) error {
	s, err := Resolve(FileOptions{Type: p.Type, CertPath: p.CertPath, KeyPath: p.KeyPath, CACertPath: p.CACertPath,
		InstallCACert: p.InstallCACert, Owner: p.Owner, Group: p.Group, Mode: p.Mode, CACertMode: p.CACertMode,
		SELinuxLabel: p.SELinuxLabel})
	if err != nil {
		return err
	}
	m.Set("cert_path", s.Paths.Cert)
	m.Set("key_path", s.Paths.Key)
	m.Set("selinux", s.SELinux)
	if p.State == "absent" {
		return runAbsent(m, s, p.Backup)
	}
	m.Set("ca_cert_path", s.Paths.CA)
	if p.Subject.CommonName == "" {
		if p.Subject.CommonName, err = os.Hostname(); err != nil {
			return fmt.Errorf("subject.common_name is not set and the hostname is unknown: %v", err)
		}
	}
	want, err := NewDesired(p.Type, p.Subject, NewKeySpec(p.KeyType, p.KeySize), p.ValidityDays, p.RenewBeforeDays)
	if err != nil {
		return err
	}
	now := time.Now()
	ctx := context.Background()
	var ca IssuingCA
	if p.VaultPKI != nil {
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
	lock, err := fileutil.LockFiles(s.Paths.Cert, !m.CheckMode)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	// The CA file is shared by the server and client certificates (each has its own lock
	// above): its own lock, always taken second, so no run removes another's live temp file.
	caLock, err := fileutil.LockFiles(s.Paths.CA, !m.CheckMode)
	if err != nil {
		return err
	}
	defer caLock.Unlock()
	stale, err := fileutil.StaleTemps([]string{s.Paths.Cert, s.Paths.Key, s.Paths.CA}, nil)
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
	cur, err := ReadCurrent(s.Paths, s.InstallCACert, s.CertAttrs, s.KeyAttrs, s.CAAttrs)
	if err != nil {
		return err
	}
	if cur.KeyPEM != nil {
		m.AddSecret(string(cur.KeyPEM))
	}
	d := Decide(cur, want, s.Paths, s.InstallCACert, now)
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
			m.AddDiff(s.Paths.Cert, before, predictedSummary(want, d, cur.Cert, now))
		}
		m.Msg = message(d, p.Type, m.CheckMode, dn)
		return nil
	}

	var written *x509.Certificate
	var backups []string
	if d.Reason != "" {
		written, backups, err = apply(ctx, d, want, ca, s, p.Backup, now, func(key string) { m.AddSecret(key) })
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
		m.AddDiff(s.Paths.Cert, before, summary(final))
	}
	m.Msg = message(d, p.Type, false, dn)
	return nil
}

// runAbsent removes the certificate and key (PlanRemoval), reporting as the module does.
func runAbsent(m *ansible.Context, s *Settings, backup bool) error {
	r, err := PlanRemoval(s.Paths)
	if err != nil {
		return err
	}
	m.Set("reason", r.Reason())
	if r.Reason() == "" {
		m.Msg = "certificate and key are absent"
		return nil
	}
	m.Changed = true
	if m.DiffMode {
		m.AddDiff(s.Paths.Cert, r.Before, "(absent)\n")
	}
	if m.CheckMode {
		m.Msg = "would remove " + strings.Join(r.Present, ", ")
		return nil
	}
	backups, err := r.Apply(backup)
	if len(backups) > 0 {
		m.Set("backup_files", backups)
	}
	if err != nil {
		return err
	}
	m.Msg = "removed " + strings.Join(r.Present, ", ")
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
