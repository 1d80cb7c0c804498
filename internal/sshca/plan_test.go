package sshca

import (
	"bytes"
	"sort"
	"strings"
	"testing"

	"github.com/incus-access/incus-access/internal/testlab"
)

const debianMain = `# This is the sshd server system-wide configuration file.
Include /etc/ssh/sshd_config.d/*.conf
KbdInteractiveAuthentication no
UsePAM yes
`

func desired(t *testing.T, keyLines ...string) Desired {
	t.Helper()
	var keys []CAKey
	for i, l := range keyLines {
		k, err := ParseCAKeys("ca_keys["+string(rune('0'+i))+"]", l)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k...)
	}
	return Desired{Keys: MergeKeys(keys), Exclusive: true, KeysFile: "/etc/ssh/trusted-user-ca-keys.pem",
		SSHDConfig: "/etc/ssh/sshd_config", PrincipalsDir: "/etc/ssh/auth_principals",
		Principals: map[string][]string{"root": {"root"}, "rocky": {"rocky"}}}
}

func file(path, data string) FileState {
	return FileState{Path: path, Data: []byte(data), Exists: true, Mode: 0o644}
}

// after applies a plan to a state in memory, as Apply does on disk.
func after(st State, p *TrustPlan) State {
	byPath := map[string]*FileChange{}
	for _, f := range p.Files {
		byPath[f.Path] = f
	}
	upd := func(f FileState) (FileState, bool) {
		c, ok := byPath[f.Path]
		if !ok {
			return f, f.Exists
		}
		delete(byPath, f.Path)
		if c.Remove {
			return FileState{Path: f.Path}, false
		}
		return FileState{Path: f.Path, Data: c.After, Exists: true, Mode: c.Mode, UID: c.UID, GID: c.GID}, true
	}
	var out State
	out.Main, _ = upd(st.Main)
	out.KeysFile, _ = upd(st.KeysFile)
	for _, f := range st.DropIns {
		if g, ok := upd(f); ok {
			out.DropIns = append(out.DropIns, g)
		}
	}
	for _, f := range st.Principals {
		if g, ok := upd(f); ok {
			out.Principals = append(out.Principals, g)
		}
	}
	for path, c := range byPath { // new files
		if c.Remove {
			continue
		}
		g := FileState{Path: path, Data: c.After, Exists: true, Mode: c.Mode}
		switch c.Kind {
		case "drop_in":
			out.DropIns = append(out.DropIns, g)
		case "principals":
			out.Principals = append(out.Principals, g)
		case "keys_file":
			out.KeysFile = g
		}
	}
	return out
}

func plan(t *testing.T, d Desired, st State) *TrustPlan {
	t.Helper()
	p, err := NewTrustPlan(d, st)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlanDropInDisablesEarlierConflictsAndConverges(t *testing.T) {
	a, _, _ := testlab.NewSSHKey(t, "vault-ca")
	d := desired(t, a)
	main := "TrustedUserCAKeys /etc/ssh/old-ca.pub\n" + debianMain + "TrustedUserCAKeys /etc/ssh/after-include.pub\n"
	st := State{
		Main:     file(d.SSHDConfig, main),
		DropIns:  []FileState{file("/etc/ssh/sshd_config.d/05-early.conf", "AuthorizedPrincipalsFile /etc/ssh/p/%u\nPasswordAuthentication no\n")},
		KeysFile: FileState{Path: d.KeysFile},
	}
	p := plan(t, d, st)
	if p.ConfigMode != "drop-in" || p.DropInPath != "/etc/ssh/sshd_config.d/10-ssh-ca-trust.conf" {
		t.Fatalf("mode %s %s", p.ConfigMode, p.DropInPath)
	}
	got := map[string]*FileChange{}
	for _, f := range p.Files {
		got[f.Path] = f
	}
	m := got[d.SSHDConfig]
	if m == nil || !strings.HasPrefix(string(m.After), disabledPrefix+"TrustedUserCAKeys /etc/ssh/old-ca.pub\n") ||
		!strings.Contains(string(m.After), "\nTrustedUserCAKeys /etc/ssh/after-include.pub\n") {
		t.Fatalf("main after: %v", m)
	}
	early := got["/etc/ssh/sshd_config.d/05-early.conf"]
	if early == nil || !strings.HasPrefix(string(early.After), disabledPrefix+"AuthorizedPrincipalsFile /etc/ssh/p/%u\nPasswordAuthentication no\n") {
		t.Fatalf("early drop-in: %v", early)
	}
	drop := got[p.DropInPath]
	if drop == nil || !strings.Contains(string(drop.After), "\nTrustedUserCAKeys /etc/ssh/trusted-user-ca-keys.pem\nAuthorizedPrincipalsFile /etc/ssh/auth_principals/%u\n") {
		t.Fatalf("drop-in: %v", drop)
	}
	if root := got["/etc/ssh/auth_principals/root"]; root == nil || !strings.HasSuffix(string(root.After), "\nroot\n") {
		t.Fatalf("principals: %v", root)
	}
	if !strings.Contains(strings.Join(p.Changes, "\n"), `/etc/ssh/sshd_config line 1: comment out "TrustedUserCAKeys /etc/ssh/old-ca.pub" (before its Include`) {
		t.Fatalf("changes: %v", p.Changes)
	}
	// Files the configuration refers to are written before the configuration.
	if p.Files[0].Kind != "keys_file" || p.Files[len(p.Files)-1].Kind != "sshd_config" {
		t.Fatalf("order: %s first, %s last", p.Files[0].Kind, p.Files[len(p.Files)-1].Kind)
	}
	again := plan(t, d, after(st, p))
	if again.Changed() {
		t.Fatalf("second plan changes: %v", again.Changes)
	}

	// state=absent removes the module's files and restores the lines it commented out.
	gone := plan(t, Desired{Absent: true, KeysFile: d.KeysFile, SSHDConfig: d.SSHDConfig, PrincipalsDir: d.PrincipalsDir}, after(st, p))
	final := after(after(st, p), gone)
	if string(final.Main.Data) != main || final.KeysFile.Exists || len(final.Principals) != 0 ||
		len(final.DropIns) != 1 || string(final.DropIns[0].Data) != string(st.DropIns[0].Data) {
		t.Fatalf("after absent: %+v", final)
	}
}

func TestPlanMainFileBlockWithoutDropInDir(t *testing.T) {
	a, _, _ := testlab.NewSSHKey(t, "")
	d := desired(t, a)
	d.Principals = nil
	main := "# header\n\nPort 22\nTrustedUserCAKeys /etc/ssh/old.pub\nMatch User app\n  TrustedUserCAKeys /x\n"
	st := State{Main: file(d.SSHDConfig, main), KeysFile: FileState{Path: d.KeysFile}}
	p := plan(t, d, st)
	if p.ConfigMode != "main" {
		t.Fatalf("mode %s", p.ConfigMode)
	}
	m := p.Files[len(p.Files)-1]
	want := "# header\n\n" + blockBegin + "\nTrustedUserCAKeys /etc/ssh/trusted-user-ca-keys.pem\n" + blockEnd +
		"\nPort 22\n" + disabledPrefix + "TrustedUserCAKeys /etc/ssh/old.pub\nMatch User app\n  TrustedUserCAKeys /x\n"
	if string(m.After) != want {
		t.Fatalf("main after:\n%s\nwant:\n%s", m.After, want)
	}
	if again := plan(t, d, after(st, p)); again.Changed() {
		t.Fatalf("second plan changes: %v", again.Changes)
	}
}

func TestPlanExclusiveFalseKeepsExistingKeys(t *testing.T) {
	old, _, _ := testlab.NewSSHKey(t, "old-ca")
	nw, _, _ := testlab.NewSSHKey(t, "new-ca")
	d := desired(t, nw)
	d.Exclusive = false
	st := State{Main: file(d.SSHDConfig, debianMain), KeysFile: file(d.KeysFile, old+"\n")}
	p := plan(t, d, st)
	if len(p.Keys) != 2 || p.Keys[0].Line != old || p.Keys[1].Line != nw {
		t.Fatalf("keys: %v", p.KeyLines())
	}
	d.Exclusive = true
	p = plan(t, d, st)
	if len(p.Keys) != 1 || !strings.Contains(strings.Join(p.Changes, "\n"), "stop trusting ssh-ed25519") {
		t.Fatalf("exclusive: %v %v", p.KeyLines(), p.Changes)
	}
}

func TestPlanFixesModeAndPrunesOwnPrincipalsFiles(t *testing.T) {
	a, _, _ := testlab.NewSSHKey(t, "")
	d := desired(t, a)
	d.Principals = map[string][]string{"rocky": {"rocky"}}
	keys := FileState{Path: d.KeysFile, Data: []byte(managedHeader + "\n" + a + "\n"), Exists: true, Mode: 0o600}
	st := State{Main: file(d.SSHDConfig, debianMain), KeysFile: keys,
		DropIns: []FileState{file("/etc/ssh/sshd_config.d/10-ssh-ca-trust.conf", managedHeader+"\n# sshd trusts SSH user certificates signed by the CA keys in the keys file.\nTrustedUserCAKeys /etc/ssh/trusted-user-ca-keys.pem\nAuthorizedPrincipalsFile /etc/ssh/auth_principals/%u\n")},
		Principals: []FileState{
			file("/etc/ssh/auth_principals/rocky", string(principalsContent("rocky", []string{"rocky"}))),
			file("/etc/ssh/auth_principals/root", string(principalsContent("root", []string{"root"}))),
			file("/etc/ssh/auth_principals/admin", "admin\n"), // not the module's
		}}
	p := plan(t, d, st)
	changes := strings.Join(p.Changes, "\n")
	if len(p.Files) != 2 || !strings.Contains(changes, d.KeysFile+": mode 0600 -> 0644") ||
		!strings.Contains(changes, "/etc/ssh/auth_principals/root: remove (root is no longer in principals)") {
		t.Fatalf("changes: %s", changes)
	}
}

func TestPlanRefusesNoKeysAndMissingMain(t *testing.T) {
	d := desired(t)
	if _, err := NewTrustPlan(d, State{Main: file(d.SSHDConfig, debianMain)}); err == nil || !strings.Contains(err.Error(), "no CA key to trust") {
		t.Fatalf("no keys: %v", err)
	}
	if _, err := NewTrustPlan(d, State{}); err == nil || !strings.Contains(err.Error(), "sshd_config /etc/ssh/sshd_config does not exist") {
		t.Fatalf("no main: %v", err)
	}
}

// applyInMemory is the state after a plan's files are written (what ReadState would
// read back), for planning again without touching a disk.
func applyInMemory(st State, p *TrustPlan) State {
	next := State{Main: st.Main, KeysFile: st.KeysFile}
	dropIns := map[string]FileState{}
	for _, f := range st.DropIns {
		dropIns[f.Path] = f
	}
	principals := map[string]FileState{}
	for _, f := range st.Principals {
		principals[f.Path] = f
	}
	for _, f := range p.Files {
		fs := FileState{Path: f.Path, Data: f.After, Exists: !f.Remove, Mode: f.Mode, UID: f.UID, GID: f.GID}
		switch f.Kind {
		case "sshd_config":
			next.Main = fs
		case "keys_file":
			next.KeysFile = fs
		case "drop_in":
			dropIns[f.Path] = fs
		case "principals":
			principals[f.Path] = fs
		}
	}
	for _, f := range dropIns {
		if f.Exists {
			next.DropIns = append(next.DropIns, f)
		}
	}
	sort.Slice(next.DropIns, func(a, b int) bool { return next.DropIns[a].Path < next.DropIns[b].Path })
	for _, f := range principals {
		if f.Exists {
			next.Principals = append(next.Principals, f)
		}
	}
	return next
}

// FuzzSSHDConfigPlan runs arbitrary sshd_config text through the reader and the editor:
// never a panic, reading and rendering keep every byte of a newline-terminated LF file,
// and the run after a plan is applied changes nothing (the editor is idempotent), for
// state present and absent.
func FuzzSSHDConfigPlan(f *testing.F) {
	seeds := []string{
		"Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin no\n",
		"Port 22\nTrustedUserCAKeys /other/keys\nMatch User x\n  TrustedUserCAKeys /x\n",
		"# BEGIN ssh_ca_trust: managed by the ssh_ca_trust module, do not edit\nTrustedUserCAKeys /k\n# END ssh_ca_trust\n",
		"# [disabled by ssh_ca_trust] TrustedUserCAKeys /old\nInclude sshd_config.d/*\n",
		"TrustedUserCAKeys=\"/etc/ssh/trusted user ca\" # comment\r\nAuthorizedPrincipalsFile none\n",
		"",
	}
	for _, s := range seeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	keys, err := ParseCAKeys("seed", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl fuzz-ca")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, absent bool) {
		lines := parseConfig(data)
		if bytes.HasSuffix(data, []byte("\n")) && !bytes.Contains(data, []byte("\r")) && len(bytes.TrimRight(data, "\n")) > 0 &&
			!bytes.Equal(renderConfig(lines), data) && !bytes.HasSuffix(data, []byte("\n\n")) {
			t.Fatalf("read and render changed the file:\n%q\n%q", data, renderConfig(lines))
		}
		d := Desired{Absent: absent, Keys: keys, Exclusive: true, KeysFile: "/etc/ssh/trusted-user-ca-keys.pem",
			SSHDConfig: "/etc/ssh/sshd_config", PrincipalsDir: "/etc/ssh/auth_principals",
			Principals: map[string][]string{"root": {"root"}}}
		st := State{Main: FileState{Path: d.SSHDConfig, Data: data, Exists: true, Mode: 0o644}}
		if absent {
			// what an earlier run left, so there is something to remove
			first, err := NewTrustPlan(Desired{Keys: keys, Exclusive: true, KeysFile: d.KeysFile, SSHDConfig: d.SSHDConfig,
				PrincipalsDir: d.PrincipalsDir, Principals: d.Principals}, st)
			if err != nil {
				return
			}
			st = applyInMemory(st, first)
		}
		plan, err := NewTrustPlan(d, st)
		if err != nil {
			return
		}
		again, err := NewTrustPlan(d, applyInMemory(st, plan))
		if err != nil {
			t.Fatalf("planning after the plan fails: %v", err)
		}
		if again.Changed() {
			t.Fatalf("not idempotent: after applying, the next run would change %v\nconfig: %q", again.Changes, data)
		}
	})
}
