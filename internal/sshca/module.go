package sshca

import (
	"context"
	"errors"
	"fmt"
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

// Run is the ssh_ca_trust module, in the phases of phases.go: resolve the options and
// collect the CA keys, then under the lock read the files, decide, apply (not in check
// mode); reload sshd without the lock, and report.
func Run(m *ansible.Context, p *Params) error {
	ctx := context.Background()
	m.Set("keys_file", p.KeysFile)
	m.Set("reloaded", false)
	m.Set("reload_required", false)
	d, err := resolve(p)
	if err != nil {
		return err
	}
	if p.State == "reloaded" {
		return reloadOnly(ctx, m, p)
	}
	if !d.Absent {
		if d.Keys, err = collectKeys(ctx, m, p); err != nil {
			return err
		}
	}
	// Read, decide and write under one lock, so two runs at once end in one run's state.
	lock, err := fileutil.LockFiles(!m.CheckMode, lockedFiles(d)...)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	found, err := read(d)
	if err != nil {
		return err
	}
	plan, err := decide(ctx, d, found, p.SSHDBinary, m.TmpDir)
	if plan == nil {
		return err
	}
	if err != nil {
		return emit(m, report(p, found, plan, Outcome{Refused: true}), err)
	}
	if m.CheckMode || !changed(found, plan) {
		return emit(m, report(p, found, plan, Outcome{Check: m.CheckMode}), nil)
	}
	o := apply(found, plan, p.Backup)
	lock.Unlock() // the reload needs no lock
	if o.Err == nil && plan.Changed() && p.Reload {
		o.ReloadMethod, o.ReloadErr = Reloader{PIDFile: p.PIDFile}.Reload(ctx)
	}
	return emit(m, report(p, found, plan, o), o.Err)
}

// emit hands a report to Ansible; err fails the task after the facts.
func emit(m *ansible.Context, r Report, err error) error {
	for k, v := range r.Facts {
		m.Set(k, v)
	}
	for _, w := range r.Warnings {
		m.Warn("%s", w)
	}
	m.Changed = r.Changed
	m.Msg = r.Msg
	if m.DiffMode {
		for _, d := range r.Diffs {
			m.AddDiff(d.Path, d.Before, d.After)
		}
	}
	return err
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
