package libvirtcert

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/incus-access/incus-access/internal/fileutil"
)

// The module's phases, in the order Run (module.go) calls them:
//
//	resolve  the options → a Job: paths, owners, modes, the certificate wanted
//	read     the files there now, and the temp files a killed run left (under the lock)
//	Decide   what to do, with the reason (decide.go)
//	apply    remove the stale temp files, issue, write (apply.go; not in check mode)
//	report   the result: facts, message, diff, warnings
//
// Only opening the CA (a Vault login, warnings, secrets to mask) stays in module.go.

// Job is one run's resolved options.
type Job struct {
	*Settings
	Type   string // client | server
	Absent bool   // state=absent: remove the certificate and key
	Backup bool
	// Want is the certificate wanted (nil when Absent); UseCA sets its CA.
	Want *Desired
}

// resolve checks the options and fills in the defaults: the type's paths, octal modes,
// an owner and group that exist, and the subject's common name (the host's name, from
// hostname, when not given).
func resolve(p *Params, hostname func() (string, error)) (*Job, error) {
	s, err := Resolve(FileOptions{Type: p.Type, CertPath: p.CertPath, KeyPath: p.KeyPath, CACertPath: p.CACertPath,
		InstallCACert: p.InstallCACert, Owner: p.Owner, Group: p.Group, Mode: p.Mode, CACertMode: p.CACertMode,
		SELinuxLabel: p.SELinuxLabel})
	if err != nil {
		return nil, err
	}
	j := &Job{Settings: s, Type: p.Type, Absent: p.State == "absent", Backup: p.Backup}
	if j.Absent {
		return j, nil
	}
	subject := p.Subject
	if subject.CommonName == "" {
		if subject.CommonName, err = hostname(); err != nil {
			return nil, fmt.Errorf("subject.common_name is not set and the hostname is unknown: %v", err)
		}
	}
	j.Want, err = NewDesired(p.Type, subject, NewKeySpec(p.KeyType, p.KeySize), p.ValidityDays, p.RenewBeforeDays)
	if err != nil {
		return nil, err
	}
	return j, nil
}

// UseCA records the signing CA's chain (leaf first): the certificate must be signed by
// it, and the CA file holds it.
func (j *Job) UseCA(chain []*x509.Certificate) {
	j.Want.CA = chain
	j.Want.CAPEM = EncodeCerts(chain)
}

// Locked are the files whose directories a run locks (fileutil.LockFiles): the
// certificate, for the set of certificate and key, and the CA file when it is managed,
// since the server and client certificates of a host share it.
func (j *Job) Locked() []string {
	if j.InstallCACert {
		return []string{j.Paths.Cert, j.Paths.CA}
	}
	return []string{j.Paths.Cert}
}

// Found is what a run finds on the target.
type Found struct {
	*Current
	// Stale are the temp files a killed run left beside the managed files.
	Stale []string
}

// read reads the managed files and finds the temp files a killed run left beside them.
// Call it under the lock: no live run of the same files owns those temp files.
func read(j *Job) (*Found, error) {
	stale, err := fileutil.StaleTemps(append(j.Locked(), j.Paths.Key), nil)
	if err != nil {
		return nil, err
	}
	cur, err := ReadCurrent(j.Paths, j.InstallCACert, j.CertAttrs, j.KeyAttrs, j.CAAttrs)
	if err != nil {
		return nil, err
	}
	return &Found{Current: cur, Stale: stale}, nil
}

// Changed is whether a run changes anything: the decision's reason, or temp files to remove.
func changed(f *Found, d Decision) bool { return d.Reason != "" || len(f.Stale) > 0 }

// Applied is what apply did: the certificate issued (nil when none was) and the backups
// made.
type Applied struct {
	Issued  *x509.Certificate
	Backups []string
}

// Report is a run's result as plain data; module.go hands it to Ansible.
type Report struct {
	Changed  bool
	Msg      string
	Facts    map[string]any
	Warnings []string
	// DiffBefore and DiffAfter are the certificate before and after, for diff mode ("" for
	// no diff).
	DiffBefore, DiffAfter string
}

// report builds the result of a run that found f and decided d. applied is nil in check
// mode and when nothing changed; failed says apply returned an error (then the result
// keeps the facts, such as the backups made, but has no diff).
func report(j *Job, f *Found, d Decision, applied *Applied, check, failed bool, now time.Time) Report {
	r := Report{Changed: changed(f, d), Facts: map[string]any{
		"cert_path": j.Paths.Cert, "key_path": j.Paths.Key, "selinux": j.SELinuxNote, "ca_cert_path": j.Paths.CA,
		"issuer": certDN(j.Want.CA[0]), "reason": d.Reason, "removed_temp_files": append([]string{}, f.Stale...),
	}}
	if ca0 := j.Want.CA[0]; ca0.NotAfter.Sub(now) <= j.Want.RenewBefore {
		r.Warnings = append(r.Warnings, fmt.Sprintf("the CA %s expires on %s, within renew_before_days: certificates cannot outlive it, renew the CA", certDN(ca0), utc(ca0.NotAfter)))
	}
	final := f.Cert // the certificate in place at the end
	if d.Issue {
		final = nil
	}
	if applied != nil {
		if len(applied.Backups) > 0 {
			r.Facts["backup_files"] = applied.Backups
		}
		if applied.Issued != nil {
			final = applied.Issued
		}
	}
	var dn string
	switch {
	case final != nil:
		dn = certFacts(r.Facts, final)
		if HasWildcards(certDN(final)) {
			r.Warnings = append(r.Warnings, fmt.Sprintf("the subject %q holds * or ?, which tls_allowed_dn_list treats as wildcards and cannot escape: subject_dn %q also matches other DNs", certDN(final), dn))
		}
	case check:
		dn = predictedFacts(r.Facts, j.Want, now)
	}
	r.Msg = message(d, j.Type, check, dn)
	if r.Changed && !failed {
		r.DiffBefore = summary(f.Cert)
		if check {
			r.DiffAfter = predictedSummary(j.Want, d, f.Cert, now)
		} else {
			r.DiffAfter = summary(final)
		}
	}
	return r
}

// certFacts sets the returned facts of the certificate c and returns its subject_dn.
func certFacts(facts map[string]any, c *x509.Certificate) string {
	dn := certDN(c)
	facts["subject_dn"] = AllowedDNEntry(dn)
	facts["subject_dn_printed"] = dn
	facts["not_after"] = utc(c.NotAfter)
	facts["serial"] = Serial(c)
	facts["fingerprint"] = Fingerprint(c)
	if k, ok := SpecOf(c.PublicKey); ok {
		facts["key"] = k.String()
	}
	return AllowedDNEntry(dn)
}

// predictedFacts sets the returned facts of the certificate a real run would issue
// (check mode) and returns its subject_dn.
func predictedFacts(facts map[string]any, want *Desired, now time.Time) string {
	facts["subject_dn"] = AllowedDNEntry(want.PrintedDN)
	facts["subject_dn_printed"] = want.PrintedDN
	facts["not_after"] = utc(now.Add(want.Validity))
	facts["serial"] = ""
	facts["fingerprint"] = ""
	facts["key"] = want.Key.String()
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
