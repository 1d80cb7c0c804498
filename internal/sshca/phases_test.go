package sshca

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/incus-access/incus-access/internal/testlab"
)

// sshdTree is an sshd configuration under dir: sshd_config with a drop-in Include, one
// earlier drop-in, and the desired state for it (one CA key, principals for root).
func sshdTree(t *testing.T, dir string) Desired {
	t.Helper()
	a, _, _ := testlab.NewSSHKey(t, "ca")
	d := desired(t, a)
	d.KeysFile, d.SSHDConfig, d.PrincipalsDir = filepath.Join(dir, "ca.pub"), filepath.Join(dir, "sshd_config"), filepath.Join(dir, "principals")
	d.Principals = map[string][]string{"root": {"root"}}
	os.MkdirAll(filepath.Join(dir, "sshd_config.d"), 0o755)
	os.WriteFile(d.SSHDConfig, []byte("Include "+dir+"/sshd_config.d/*.conf\nUsePAM yes\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "sshd_config.d", "50-local.conf"), []byte("PasswordAuthentication no\n"), 0o644)
	return d
}

func TestResolvePhase(t *testing.T) {
	p := &Params{State: "absent", KeysFile: "/etc/ssh/ca.pub", SSHDConfig: "/etc/ssh/sshd_config", PrincipalsDir: "/etc/ssh/p",
		Principals: map[string][]string{"root": {"root"}}, Exclusive: true}
	d, err := resolve(p)
	if err != nil || !d.Absent || d.KeysFile != p.KeysFile || !d.Exclusive || d.Keys != nil {
		t.Fatalf("%+v %v", d, err)
	}
	if got := lockedFiles(d); !slices.Equal(got, []string{"/etc/ssh/ca.pub", "/etc/ssh/sshd_config"}) {
		t.Errorf("locked %v", got)
	}
	for name, tc := range map[string]struct {
		change func(*Params)
		want   string
	}{
		"relative":  {func(p *Params) { p.KeysFile = "ca.pub" }, `keys_file must be an absolute path, got "ca.pub"`},
		"percent":   {func(p *Params) { p.PrincipalsDir = "/etc/%u" }, "principals_dir"},
		"user":      {func(p *Params) { p.Principals = map[string][]string{"a b": {"x"}} }, `principals: "a b" is not a user name`},
		"principal": {func(p *Params) { p.Principals = map[string][]string{"root": {"a,b"}} }, `principals[root][0]: "a,b"`},
	} {
		q := *p
		tc.change(&q)
		if _, err := resolve(&q); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

// read finds the temp files a killed run left beside every file a run may write, and
// no other temp file.
func TestReadPhaseFindsStaleTemps(t *testing.T) {
	dir := t.TempDir()
	d := sshdTree(t, dir)
	os.MkdirAll(d.PrincipalsDir, 0o755)
	want := []string{
		filepath.Join(dir, ".ca.pub.tmp-1"),
		filepath.Join(dir, ".sshd_config.tmp-2"),
		filepath.Join(dir, "principals", ".root.tmp-4"),
		filepath.Join(dir, "sshd_config.d", ".10-ssh-ca-trust.conf.tmp-3"),
		filepath.Join(dir, "sshd_config.d", ".50-local.conf.tmp-5"),
	}
	for _, p := range append(want, filepath.Join(dir, ".other.tmp-6"), filepath.Join(dir, "sshd_config.d", ".60-x.conf.tmp")) {
		os.WriteFile(p, nil, 0o600)
	}
	f, err := read(d)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Stale, want) {
		t.Errorf("stale %v\nwant %v", f.Stale, want)
	}
	if !f.Main.Exists || len(f.DropIns) != 1 || f.KeysFile.Exists {
		t.Errorf("state: main %v, drop-ins %d, keys file %v", f.Main.Exists, len(f.DropIns), f.KeysFile.Exists)
	}
}

// decide asks sshd only when the plan changes a file, and a plan sshd refuses comes
// back with the error.
func TestDecidePhase(t *testing.T) {
	dir := t.TempDir()
	d := sshdTree(t, dir)
	f, err := read(d)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := decide(context.Background(), d, f, filepath.Join(dir, "no-sshd"), t.TempDir())
	if plan == nil || err == nil || !strings.Contains(err.Error(), "no-sshd") {
		t.Fatalf("a changing plan without an sshd to check it: %v %v", plan, err)
	}
	o := apply(f, plan, false)
	if o.Err != nil {
		t.Fatal(o.Err)
	}
	if f, err = read(d); err != nil {
		t.Fatal(err)
	}
	if plan, err = decide(context.Background(), d, f, filepath.Join(dir, "no-sshd"), t.TempDir()); err != nil || plan.Changed() {
		t.Fatalf("converged: sshd was asked or the plan changes: %v %v", err, plan.Changes)
	}
	d.SSHDConfig = filepath.Join(dir, "missing")
	if _, err := decide(context.Background(), d, &Found{}, "", ""); err == nil || !strings.HasSuffix(err.Error(), "; nothing was changed") {
		t.Fatalf("missing sshd_config: %v", err)
	}
}

// apply removes the stale temp files first, then writes the plan; a second read finds
// nothing left to do.
func TestApplyPhase(t *testing.T) {
	dir := t.TempDir()
	d := sshdTree(t, dir)
	stale := filepath.Join(dir, ".ca.pub.tmp-9")
	os.WriteFile(stale, []byte("left by a killed run"), 0o600)
	f, err := read(d)
	if err != nil {
		t.Fatal(err)
	}
	plan := plan(t, d, f.State)
	if o := apply(f, plan, true); o.Err != nil || !o.Applied || len(o.Backups) != 0 {
		t.Fatalf("%+v", o) // nothing the plan edits existed before but sshd_config, which it does not edit here
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stale temp file is still there: %v", err)
	}
	f, _ = read(d)
	if again, err := NewTrustPlan(d, f.State); err != nil || again.Changed() || len(f.Stale) != 0 {
		t.Fatalf("after apply: %v %v %v", err, again.Changes, f.Stale)
	}
}

// report, for each way a run ends.
func TestReportPhase(t *testing.T) {
	dir := t.TempDir()
	d := sshdTree(t, dir)
	f, err := read(d)
	if err != nil {
		t.Fatal(err)
	}
	pl := plan(t, d, f.State)
	p := &Params{SSHDConfig: d.SSHDConfig, Reload: true}
	cases := []struct {
		name     string
		o        Outcome
		f        *Found
		msg      string
		required bool
	}{
		{"check", Outcome{Check: true}, f, "would change 3 file(s)", true},
		{"check, stale", Outcome{Check: true}, &Found{State: f.State, Stale: []string{"/x/.a.tmp-1"}}, "would change 3 file(s); would remove 1 temp file(s) a killed run left", true},
		{"refused", Outcome{Refused: true}, f, "", false},
		{"failed", Outcome{Applied: true, Err: errors.New("disk full")}, f, "", true},
		{"reloaded", Outcome{Applied: true, ReloadMethod: "SIGHUP to 42"}, f, "changed 3 file(s); sshd reloaded (SIGHUP to 42)", false},
		{"not reloaded", Outcome{Applied: true, ReloadErr: errors.New("no sshd runs")}, f, "changed 3 file(s); sshd NOT reloaded", true},
	}
	for _, tc := range cases {
		r := report(p, tc.f, pl, tc.o)
		if !r.Changed || r.Msg != tc.msg || r.Facts["reload_required"] != tc.required || len(r.Diffs) != 3 {
			t.Errorf("%s: changed %v msg %q reload_required %v diffs %d", tc.name, r.Changed, r.Msg, r.Facts["reload_required"], len(r.Diffs))
		}
		if r.Facts["config_file"] != filepath.Join(dir, "sshd_config.d", dropInName) || r.Facts["config_mode"] != "drop-in" {
			t.Errorf("%s: config %v %v", tc.name, r.Facts["config_mode"], r.Facts["config_file"])
		}
	}
	if r := report(p, f, pl, Outcome{Applied: true, ReloadErr: errors.New("no sshd runs")}); len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "no sshd runs") {
		t.Errorf("not reloaded: warnings %v", r.Warnings)
	}
	p.Reload = false
	if r := report(p, f, pl, Outcome{Applied: true}); r.Msg != "changed 3 file(s); sshd not reloaded (reload=false)" || r.Facts["reloaded"] != false {
		t.Errorf("reload=false: %q", r.Msg)
	}
	o := apply(f, pl, false)
	f, _ = read(d)
	converged := plan(t, d, f.State)
	if r := report(p, f, converged, Outcome{}); r.Changed || !strings.HasSuffix(r.Msg, "; nothing to change") || len(r.Diffs) != 0 || o.Err != nil {
		t.Errorf("converged: %v %q %d", r.Changed, r.Msg, len(r.Diffs))
	}
}
