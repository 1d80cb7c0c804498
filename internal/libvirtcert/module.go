// Package libvirtcert issues and installs libvirt TLS certificates (the libvirt_cert
// module): a key made on the target, signed by a CA given inline or by a Vault/OpenBao
// PKI role, written atomically with owner, mode and SELinux label.
package libvirtcert

import (
	"context"
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

// Run is the libvirt_cert module, in the phases of phases.go: resolve the options, open
// the CA, then under the lock read the files, decide, apply (not in check mode), and
// report. The sidecar enforces the signing source rules (one of ca_cert + ca_key or
// vault_pki).
func Run(m *ansible.Context, p *Params) error {
	j, err := resolve(p, os.Hostname)
	if err != nil {
		return err
	}
	// the paths are in the result whatever happens next
	m.Set("cert_path", j.Paths.Cert)
	m.Set("key_path", j.Paths.Key)
	m.Set("selinux", j.SELinuxNote)
	if j.Absent {
		return runAbsent(m, j)
	}
	m.Set("ca_cert_path", j.Paths.CA)
	now := time.Now()
	ctx, ca, closeCA, err := openCA(m, p, now)
	if err != nil {
		return err
	}
	defer closeCA()
	j.UseCA(ca.Chain())

	// Read, decide and write under one lock: two runs at once never leave one run's key
	// beside the other's certificate.
	lock, err := fileutil.LockFiles(!m.CheckMode, j.Locked()...)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	found, err := read(j)
	if err != nil {
		return err
	}
	if found.KeyPEM != nil {
		m.AddSecret(string(found.KeyPEM))
	}
	d := Decide(found.Current, j.Want, j.Paths, j.InstallCACert, now)
	if m.CheckMode || !changed(found, d) {
		return emit(m, j, report(j, found, d, nil, m.CheckMode, false, now), nil)
	}
	applied, err := apply(ctx, j, found, d, ca, now, func(key string) { m.AddSecret(key) })
	lock.Unlock()
	return emit(m, j, report(j, found, d, applied, false, err != nil, now), err)
}

// openCA opens the signing source: the inline CA, or a Vault/OpenBao PKI role (logged in
// now; closeCA revokes a login's token). ctx is the one the CA's requests use.
func openCA(m *ansible.Context, p *Params, now time.Time) (ctx context.Context, ca IssuingCA, closeCA func(), err error) {
	ctx, closeCA = context.Background(), func() {}
	if p.VaultPKI == nil {
		ca, err = NewInlineCA(p.CACert, p.CAKey, now)
		return ctx, ca, closeCA, err
	}
	cfg := *p.VaultPKI
	ctx, cancel := context.WithTimeout(ctx, cfg.TimeoutDuration())
	if cfg.TLSSkipVerify {
		m.Warn("%s", vault.SkipVerifyWarning("vault_pki"))
	}
	vp, err := NewVaultPKI(ctx, cfg, func(tok string) { m.AddSecret(tok) })
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return ctx, vp, func() {
		if err := vp.Close(); err != nil {
			m.Warn("%v", err)
		}
		cancel()
	}, nil
}

// emit hands a report to Ansible; err (from apply) fails the task after the facts.
func emit(m *ansible.Context, j *Job, r Report, err error) error {
	for k, v := range r.Facts {
		m.Set(k, v)
	}
	for _, w := range r.Warnings {
		m.Warn("%s", w)
	}
	m.Changed = r.Changed
	m.Msg = r.Msg
	if m.DiffMode && r.DiffAfter != "" {
		m.AddDiff(j.Paths.Cert, r.DiffBefore, r.DiffAfter)
	}
	return err
}

// runAbsent removes the certificate and key (PlanRemoval), under the lock.
func runAbsent(m *ansible.Context, j *Job) error {
	// Without create: a missing directory holds nothing to remove.
	lock, err := fileutil.LockFiles(false, j.Paths.Cert)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	r, err := PlanRemoval(j.Paths)
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
		m.AddDiff(j.Paths.Cert, r.Before, "(absent)\n")
	}
	if m.CheckMode {
		m.Msg = "would remove " + strings.Join(r.Present, ", ")
		return nil
	}
	backups, err := r.Apply(j.Backup)
	if len(backups) > 0 {
		m.Set("backup_files", backups)
	}
	if err != nil {
		return err
	}
	m.Msg = "removed " + strings.Join(r.Present, ", ")
	return nil
}
