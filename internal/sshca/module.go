package sshca

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/incus-access/incus-access/internal/ansible"
	"github.com/incus-access/incus-access/internal/fileutil"
	"github.com/incus-access/incus-access/internal/pemkeys"
	"github.com/incus-access/incus-access/internal/vault"
)

// Params are the module's options (modules/ssh_ca_trust/ssh_ca_trust.yml).
type Params struct {
	CAKeys        []string            `ansible:"ca_keys"`
	Vault         *vault.Config       `ansible:"vault"`
	KeysFile      string              `ansible:"keys_file"`
	Exclusive     bool                `ansible:"exclusive"`
	SSHDConfig    string              `ansible:"sshd_config"`
	Principals    map[string][]string `ansible:"principals"`
	PrincipalsDir string              `ansible:"principals_dir"`
	State         string              `ansible:"state"`
	Reload        bool                `ansible:"reload"`
	SSHDBinary    string              `ansible:"sshd_binary"`
	PIDFile       string              `ansible:"pid_file"`
	Backup        bool                `ansible:"backup"`
}

// Run is the ssh_ca_trust module: collect and parse the keys, read the files, plan,
// check the candidate with sshd, apply unless in check mode, reload, report.
func Run(m *ansible.Context, p *Params) error {
	ctx := context.Background()
	m.Set("keys_file", p.KeysFile)
	m.Set("reloaded", false)
	m.Set("reload_required", false)
	if err := checkPaths(p); err != nil {
		return err
	}
	if p.State == "reloaded" {
		return reloadOnly(ctx, m, p)
	}

	d := Desired{Absent: p.State == "absent", Exclusive: p.Exclusive, KeysFile: p.KeysFile,
		SSHDConfig: p.SSHDConfig, Principals: p.Principals, PrincipalsDir: p.PrincipalsDir}
	if !d.Absent {
		keys, err := collectKeys(ctx, m, p)
		if err != nil {
			return err
		}
		d.Keys = keys
	}
	// Read, decide and write under one lock, so two runs at once end in one run's state.
	lock, err := fileutil.LockFiles(p.KeysFile, !m.CheckMode)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	st, err := ReadState(d)
	if err != nil {
		return err
	}
	plan, err := NewTrustPlan(d, st)
	if err != nil {
		return fmt.Errorf("%v; nothing was changed", err)
	}
	stale, err := fileutil.StaleTemps(nonEmpty(p.KeysFile, p.SSHDConfig, plan.DropInPath), []string{p.PrincipalsDir})
	if err != nil {
		return err
	}
	m.Set("removed_temp_files", nonNil(stale))
	if len(stale) > 0 {
		m.Changed = true
		if !m.CheckMode {
			if err := fileutil.RemoveFiles(stale); err != nil {
				return err
			}
		}
	}
	for _, w := range plan.Warnings {
		m.Warn("%s", w)
	}
	m.Set("fingerprints", plan.Fingerprints())
	m.Set("keys", plan.KeyLines())
	m.Set("changes", nonNil(plan.Changes))
	m.Set("config_mode", plan.ConfigMode)
	m.Set("config_file", configFile(plan, p))
	if m.DiffMode {
		for _, f := range plan.Files {
			m.AddDiff(f.Path, string(f.Before), string(f.After))
		}
	}
	if !plan.Changed() {
		m.Msg = upToDate(plan, p) + staleNote(stale, m.CheckMode)
		return nil
	}
	m.Changed = true

	if err := validate(ctx, plan, p, m.TmpDir); err != nil {
		return err
	}
	if m.CheckMode {
		m.Set("reload_required", true)
		m.Msg = fmt.Sprintf("would change %d file(s)", len(plan.Files)) + staleNote(stale, true)
		return nil
	}
	backups, err := plan.Apply(p.Backup)
	lock.Unlock() // the reload needs no lock
	if len(backups) > 0 {
		m.Set("backup_files", backups)
	}
	if err != nil {
		m.Set("reload_required", true)
		return err
	}
	m.Msg = fmt.Sprintf("changed %d file(s)", len(plan.Files)) + staleNote(stale, false)
	if !p.Reload {
		m.Set("reload_required", true)
		m.Msg += "; sshd not reloaded (reload=false)"
		return nil
	}
	how, err := Reloader{PIDFile: p.PIDFile}.Reload(ctx)
	if err != nil {
		m.Set("reload_required", true)
		m.Warn("the files changed but sshd was not reloaded: %v; reload it to apply the change", err)
		m.Msg += "; sshd NOT reloaded"
		return nil
	}
	m.Set("reloaded", true)
	m.Set("reload_method", how)
	m.Msg += "; sshd reloaded (" + how + ")"
	return nil
}

// collectKeys parses ca_keys and the Vault CA, merged in that order and deduplicated.
func collectKeys(ctx context.Context, m *ansible.Context, p *Params) ([]CAKey, error) {
	var lists [][]CAKey
	for i, text := range p.CAKeys {
		src := fmt.Sprintf("ca_keys[%d]", i)
		if pemkeys.Contains(text) {
			m.AddSecret(text)
		}
		keys, err := ParseCAKeys(src, text)
		if err != nil {
			return nil, fmt.Errorf("%v; nothing was changed", err)
		}
		lists = append(lists, keys)
	}
	if p.Vault != nil {
		if p.Vault.TLSSkipVerify {
			m.Warn("%s", vault.SkipVerifyWarning("vault"))
		}
		src := VaultCASource{Config: *p.Vault, OnSecret: func(s string) { m.AddSecret(s) }, OnWarn: func(w string) { m.Warn("%s", w) }}
		text, err := src.Fetch(ctx)
		if err != nil {
			return nil, fmt.Errorf("%v; nothing was changed", err)
		}
		if pemkeys.Contains(text) {
			m.AddSecret(text)
		}
		keys, err := ParseCAKeys(src.Name(), text)
		if err != nil {
			return nil, fmt.Errorf("%v; nothing was changed", err)
		}
		for i := range keys {
			if keys[i].Comment == "" {
				keys[i].Comment = src.Name()
				keys[i].Line += " " + strings.ReplaceAll(src.Name(), " ", ":")
			}
		}
		lists = append(lists, keys)
	}
	return MergeKeys(lists...), nil
}

// validate checks the candidate configuration with sshd and that the values sshd would
// use are the module's (an earlier line the module did not recognize would win).
func validate(ctx context.Context, plan *TrustPlan, p *Params, tmp string) error {
	cand, err := plan.WriteCandidate(tmp)
	defer cand.Remove()
	if err != nil {
		return fmt.Errorf("cannot write the candidate configuration: %v; nothing was changed", err)
	}
	eff, err := cand.Check(ctx, p.SSHDBinary)
	if err != nil {
		return err
	}
	if eff == nil || plan.desired.Absent {
		return nil
	}
	for kw, want := range plan.wanted() {
		if got, ok := eff[kw]; ok && got != want {
			return fmt.Errorf("after the change sshd would still use %s %s instead of %s (a line the module does not recognize, such as one in a nested Include, is read first); nothing was changed",
				kw, got, want)
		}
	}
	return nil
}

func reloadOnly(ctx context.Context, m *ansible.Context, p *Params) error {
	if err := CheckLive(ctx, p.SSHDBinary, p.SSHDConfig); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			return fmt.Errorf("not reloading sshd: `%s -t -f %s` fails: %s", p.SSHDBinary, p.SSHDConfig, ve.Output)
		}
		return err
	}
	m.Changed = true
	if m.CheckMode {
		m.Msg = "would reload sshd"
		return nil
	}
	how, err := Reloader{PIDFile: p.PIDFile}.Reload(ctx)
	if err != nil {
		m.Set("reload_required", true)
		return fmt.Errorf("%v", err)
	}
	m.Set("reloaded", true)
	m.Set("reload_method", how)
	m.Msg = "sshd reloaded (" + how + ")"
	return nil
}

// checkPaths rejects paths sshd could not read back as one argument.
func checkPaths(p *Params) error {
	for name, v := range map[string]string{"keys_file": p.KeysFile, "principals_dir": p.PrincipalsDir, "sshd_config": p.SSHDConfig} {
		if !filepath.IsAbs(v) {
			return fmt.Errorf("%s must be an absolute path, got %q", name, v)
		}
		if strings.ContainsAny(v, "\"\n%") {
			return fmt.Errorf("%s %q holds a quote, newline or %%, which sshd would not read back", name, v)
		}
	}
	for user, principals := range p.Principals {
		if user == "" || user == "." || user == ".." || strings.ContainsAny(user, "/ \t\n") {
			return fmt.Errorf("principals: %q is not a user name", user)
		}
		if len(principals) == 0 {
			return fmt.Errorf("principals[%s]: give at least one principal (a user with none is left out of the map)", user)
		}
		for i, pr := range principals {
			if pr == "" || strings.ContainsAny(pr, " \t\n,#") {
				return fmt.Errorf("principals[%s][%d]: %q is not a principal (no blanks, commas or #)", user, i, pr)
			}
		}
	}
	return nil
}

func configFile(plan *TrustPlan, p *Params) string {
	if plan.ConfigMode == "drop-in" {
		return plan.DropInPath
	}
	return p.SSHDConfig
}

func upToDate(plan *TrustPlan, p *Params) string {
	if plan.desired.Absent {
		return "nothing to remove: sshd does not trust a CA through this module"
	}
	return fmt.Sprintf("sshd trusts %d CA key(s) through %s; nothing to change", len(plan.Keys), configFile(plan, p))
}

// staleNote tells about the temp files a killed run left, which this run removes.
func staleNote(stale []string, check bool) string {
	switch {
	case len(stale) == 0:
		return ""
	case check:
		return fmt.Sprintf("; would remove %d temp file(s) a killed run left", len(stale))
	}
	return fmt.Sprintf("; removed %d temp file(s) a killed run left", len(stale))
}

func nonEmpty(paths ...string) []string {
	var out []string
	for _, p := range paths {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
