package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incus-access/incus-access/internal/testlab"
)

func TestMain(m *testing.M) { testlab.ModuleMain(m) }

const dn1 = "C=AU,ST=Queensland,L=Brisbane,O=libvirt.org,CN=host1"

// The binary as Ansible runs it: check mode predicts and writes nothing, the real run
// writes what check mode showed, keeps the file's mode, and a second run is unchanged.
func TestBinaryChecksWritesAndConverges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "libvirtd.conf")
	orig := "# mine\nlisten_tls = 1\nkey_file = \"/srv/pki/serverkey.pem\"\n"
	if err := os.WriteFile(path, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}
	args := map[string]any{"path": path, "dns": []any{dn1}, "_ansible_check_mode": true, "_ansible_diff": true}
	res, out := testlab.RunModule(t, "libvirtd_allowed_dns", args)
	diff := res["diff"].(map[string]any)
	if res["changed"] != true || diff["before"] != orig || !strings.Contains(diff["after"].(string), "\""+dn1+"\"") {
		t.Fatalf("check mode: %s", out)
	}
	if b, _ := os.ReadFile(path); string(b) != orig {
		t.Fatalf("check mode wrote %q", b)
	}
	delete(args, "_ansible_check_mode")
	res, out = testlab.RunModule(t, "libvirtd_allowed_dns", args)
	if res["changed"] != true || res["default_tls_files"] != false || res["admin_uri"] != "libvirtd:///system" {
		t.Fatalf("real run: %s", out)
	}
	b, _ := os.ReadFile(path)
	if string(b) != diff["after"] {
		t.Fatalf("wrote %q, check mode showed %q", b, diff["after"])
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", fi.Mode())
	}
	res, out = testlab.RunModule(t, "libvirtd_allowed_dns", args)
	if res["changed"] != false || res["restart_required"] != false {
		t.Fatalf("second run: %s", out)
	}
}

// Omitted dns only reports; an empty list fails and writes nothing.
func TestBinaryReportOnlyAndEmptyList(t *testing.T) {
	path := filepath.Join(t.TempDir(), "libvirtd.conf")
	orig := "tls_allowed_dn_list = [\"" + dn1 + "\"]\nunix_sock_dir = \"/srv/sock\"\n"
	os.WriteFile(path, []byte(orig), 0o644)
	res, out := testlab.RunModule(t, "libvirtd_allowed_dns", map[string]any{"path": path})
	if res["changed"] != false || res["dns"].([]any)[0] != dn1 || res["admin_uri"] != "libvirtd:///system?socket=/srv/sock/libvirt-admin-sock" {
		t.Fatalf("report only: %s", out)
	}
	res, out = testlab.RunModule(t, "libvirtd_allowed_dns", map[string]any{"path": path, "dns": []any{}})
	if res["failed"] != true || !strings.Contains(res["msg"].(string), "never written") {
		t.Fatalf("empty list: %s", out)
	}
	if b, _ := os.ReadFile(path); string(b) != orig {
		t.Fatalf("the failed task wrote %q", b)
	}
}
