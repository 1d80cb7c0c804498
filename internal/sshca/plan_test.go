package sshca

import (
	"strings"
	"testing"
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
	a, _, _ := newKey(t, "vault-ca")
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
	a, _, _ := newKey(t, "")
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
	old, _, _ := newKey(t, "old-ca")
	nw, _, _ := newKey(t, "new-ca")
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
	a, _, _ := newKey(t, "")
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

func TestParseConfigKeywordsArgsAndScope(t *testing.T) {
	lines := parseConfig([]byte("Include=sshd_config.d/*.conf\nTrustedUserCAKeys \"/etc/ssh/a b.pem\" # c\nMatch User x\n  Include /y/*.conf\n"))
	if lines[0].Keyword != "include" || lines[1].Args[0] != "/etc/ssh/a b.pem" || len(lines[1].Args) != 1 || !lines[3].InMatch {
		t.Fatalf("%+v", lines)
	}
	inc, ok := findDropInInclude(lines)
	if !ok || inc.Dir != "/etc/ssh/sshd_config.d" || inc.Glob != "/etc/ssh/sshd_config.d/*.conf" {
		t.Fatalf("include %+v", inc)
	}
}
