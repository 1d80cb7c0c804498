package sshca

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/incus-access/incus-access/internal/fileutil"
)

// The module's phases, in the order Run (module.go) calls them:
//
//	resolve  the options → Desired (module.go then adds the CA keys: ca_keys, Vault)
//	read     the files there now, and the temp files a killed run left (under the lock)
//	decide   the TrustPlan (plan.go: every file's content afterwards, with the reasons),
//	         checked by sshd -t when it changes anything
//	apply    remove the stale temp files, write the plan (files.go); not in check mode
//	report   the result: facts, message, diffs, warnings
//
// A new managed file (such as a revoked-keys file named in the same drop-in) is planned in
// plan.go; name it in managedFiles so a killed run's temp file of it is found, and in
// lockedFiles when it is in a directory none of those is in.

// resolve checks the options (paths sshd can read back, user and principal names) and
// turns them into the Desired state, without the keys.
func resolve(p *Params) (Desired, error) {
	if err := checkPaths(p); err != nil {
		return Desired{}, err
	}
	return Desired{Absent: p.State == "absent", Exclusive: p.Exclusive, KeysFile: p.KeysFile,
		SSHDConfig: p.SSHDConfig, Principals: p.Principals, PrincipalsDir: p.PrincipalsDir}, nil
}

// lockedFiles are the files whose directories a run locks (fileutil.LockFiles): the keys
// file, and sshd_config, which every run for this sshd shares (its drop-in comes from
// its Include). The principals files are written under that lock too.
func lockedFiles(d Desired) []string { return []string{d.KeysFile, d.SSHDConfig} }

// managedFiles are the files a run may write, for the temp files a killed run left: the
// keys file, the main configuration, this module's drop-in and the drop-ins read before
// it; and the principals directory, whose every file is the module's.
func managedFiles(d Desired, st State) (files []string, dirs []string) {
	files = []string{d.KeysFile, d.SSHDConfig}
	if inc, ok := findDropInInclude(parseConfig(st.Main.Data)); ok {
		files = append(files, filepath.Join(inc.Dir, dropInName))
	}
	for _, f := range st.DropIns {
		files = append(files, f.Path)
	}
	return files, []string{d.PrincipalsDir}
}

// Found is what a run finds on the target.
type Found struct {
	State
	// Stale are the temp files a killed run left beside the managed files.
	Stale []string
}

// read reads the files the plan depends on and finds the temp files a killed run left.
// Call it under the lock: no live run of the same files owns those temp files.
func read(d Desired) (*Found, error) {
	st, err := ReadState(d)
	if err != nil {
		return nil, err
	}
	files, dirs := managedFiles(d, st)
	stale, err := fileutil.StaleTemps(files, dirs)
	if err != nil {
		return nil, err
	}
	return &Found{State: st, Stale: stale}, nil
}

// decide plans the files (NewTrustPlan) and, when the plan changes any, has sshd check
// the candidate configuration (sshd is the sshd binary, tmp where the candidate goes).
// A plan sshd refuses is returned with the error, so the result can still show it.
func decide(ctx context.Context, d Desired, f *Found, sshd, tmp string) (*TrustPlan, error) {
	plan, err := NewTrustPlan(d, f.State)
	if err != nil {
		return nil, fmt.Errorf("%v; nothing was changed", err)
	}
	if plan.Changed() {
		if err := validate(ctx, plan, sshd, tmp); err != nil {
			return plan, err
		}
	}
	return plan, nil
}

// changed is whether a run changes anything: the plan's files, or temp files to remove.
func changed(f *Found, plan *TrustPlan) bool { return plan.Changed() || len(f.Stale) > 0 }

// validate checks the candidate configuration with sshd and that the values sshd would
// use are the module's (an earlier line the module did not recognize would win).
func validate(ctx context.Context, plan *TrustPlan, sshd, tmp string) error {
	cand, err := plan.WriteCandidate(tmp)
	defer cand.Remove()
	if err != nil {
		return fmt.Errorf("cannot write the candidate configuration: %v; nothing was changed", err)
	}
	eff, err := cand.Check(ctx, sshd)
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

// Outcome is what became of a plan after decide.
type Outcome struct {
	Check   bool // check mode: nothing applied
	Refused bool // sshd refused the candidate: nothing applied
	Applied bool // apply ran (Err says how it ended)
	Backups []string
	Err     error
	// ReloadMethod is how sshd was reloaded after the files changed (with reload set);
	// ReloadErr is why it was not.
	ReloadMethod string
	ReloadErr    error
}

// apply removes the temp files a killed run left, then writes and removes the plan's
// files (TrustPlan.Apply).
func apply(f *Found, plan *TrustPlan, backup bool) Outcome {
	o := Outcome{Applied: true}
	if o.Err = fileutil.RemoveFiles(f.Stale); o.Err != nil {
		return o
	}
	if plan.Changed() {
		o.Backups, o.Err = plan.Apply(backup)
	}
	return o
}

// Diff is one file before and after, for diff mode.
type Diff struct{ Path, Before, After string }

// Report is a run's result as plain data; module.go hands it to Ansible.
type Report struct {
	Changed  bool
	Msg      string
	Facts    map[string]any
	Warnings []string
	Diffs    []Diff
}

// report builds the result of a run that found f, planned plan and ended in o.
func report(p *Params, f *Found, plan *TrustPlan, o Outcome) Report {
	r := Report{Changed: changed(f, plan), Warnings: plan.Warnings, Facts: map[string]any{
		"removed_temp_files": nonNil(f.Stale), "fingerprints": plan.Fingerprints(), "keys": plan.KeyLines(),
		"changes": nonNil(plan.Changes), "config_mode": plan.ConfigMode, "config_file": configFile(plan, p),
		"reloaded": false, "reload_required": false,
	}}
	for _, c := range plan.Files {
		r.Diffs = append(r.Diffs, Diff{c.Path, string(c.Before), string(c.After)})
	}
	if len(o.Backups) > 0 {
		r.Facts["backup_files"] = o.Backups
	}
	switch {
	case !plan.Changed():
		r.Msg = upToDate(plan, p) + staleNote(f.Stale, o.Check)
	case o.Check:
		r.Facts["reload_required"] = true
		r.Msg = fmt.Sprintf("would change %d file(s)", len(plan.Files)) + staleNote(f.Stale, true)
	case o.Refused:
	case o.Err != nil:
		r.Facts["reload_required"] = true
	case !p.Reload:
		r.Facts["reload_required"] = true
		r.Msg = changedMsg(plan, f) + "; sshd not reloaded (reload=false)"
	case o.ReloadErr != nil:
		r.Facts["reload_required"] = true
		r.Warnings = append(r.Warnings, fmt.Sprintf("the files changed but sshd was not reloaded: %v; reload it to apply the change", o.ReloadErr))
		r.Msg = changedMsg(plan, f) + "; sshd NOT reloaded"
	default:
		r.Facts["reloaded"] = true
		r.Facts["reload_method"] = o.ReloadMethod
		r.Msg = changedMsg(plan, f) + "; sshd reloaded (" + o.ReloadMethod + ")"
	}
	return r
}

func changedMsg(plan *TrustPlan, f *Found) string {
	return fmt.Sprintf("changed %d file(s)", len(plan.Files)) + staleNote(f.Stale, false)
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

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
