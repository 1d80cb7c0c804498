package sshca

import (
	"bytes"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/incus-access/incus-access/internal/pemkeys"
)

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

// Found by FuzzSSHDConfigPlan: state absent restored a disabled line that was empty,
// leaving a file of one blank line, which the next run rewrote to an empty file.
func TestAbsentTwiceOnARestoredBlankLineChangesNothing(t *testing.T) {
	lines := parseConfig([]byte("\n"))
	if got := renderConfig(lines); string(got) != "\n" {
		t.Fatalf("a file of one blank line renders as %q", got)
	}
}

// Found by FuzzSSHDConfigPlan: a lone CR before the inserted block became a CRLF, which
// the reader then dropped, so every run rewrote the file.
func TestCRStaysInTheLineAndTheEditIsStable(t *testing.T) {
	for _, in := range []string{"\r", "Port 22\r\nPermitRootLogin no\r\n"} {
		if got := string(renderConfig(parseConfig([]byte(in)))); strings.TrimSuffix(got, "\n") != strings.TrimSuffix(in, "\n") {
			t.Fatalf("%q renders as %q", in, got)
		}
	}
	if l := parseConfig([]byte("Port 22\r\n")); l[0].Keyword != "port" || len(l[0].Args) != 1 || l[0].Args[0] != "22" {
		t.Fatalf("CRLF line read as %+v", l[0])
	}
}

// FuzzVaultCAResponse: any body Vault could answer config/ca with decodes to CA keys or
// an error, never a panic, and an error never shows a private key given as public_key.
func FuzzVaultCAResponse(f *testing.F) {
	f.Add([]byte(`{"data":{"public_key":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"}}`))
	f.Add([]byte(`{"data":{"public_key":["x"]}}`))
	f.Add([]byte(`{"data":{"public_key":"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		secret, err := api.ParseSecret(bytes.NewReader(body))
		if err != nil || secret == nil {
			return
		}
		key, err := PublicKeyOf(secret.Data)
		if err != nil {
			return
		}
		keys, err := ParseCAKeys("vault ssh-client-signer", key)
		if err != nil {
			for _, line := range strings.Split(key, "\n") {
				if line = strings.TrimSpace(line); len(line) >= 24 && pemkeys.Contains(key) && !strings.ContainsAny(line, " -") && strings.Contains(err.Error(), line) {
					t.Fatalf("the error shows private key material: %v", err)
				}
			}
			return
		}
		if len(keys) == 0 {
			t.Fatal("no error and no key")
		}
	})
}
