package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/incus-access/incus-access/internal/testlab"
)

func TestMain(m *testing.M) { testlab.ModuleMain(m) }

func result(t *testing.T, out []byte) map[string]any {
	t.Helper()
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("not one JSON object (%v): %s", err, out)
	}
	return res
}

// The three ways the multi-call binary is run: the executor's (module argument, args on
// stdin), Ansible's stock path (a copy named AnsiballZ_<module>, an args file) and by
// mistake (no module named: usage, failed, exit 1).
func TestMultiCallDispatch(t *testing.T) {
	bin := testlab.MultiCallBinary(t, runtime.GOARCH)
	args := `{"clients": [], "socket": "/nonexistent/unix.socket", "_ansible_check_mode": true}`

	cmd := exec.Command(bin, "incus_trust", "-")
	cmd.Stdin = strings.NewReader(args)
	out, _ := cmd.Output()
	if msg := result(t, out)["msg"].(string); !strings.Contains(msg, "cannot reach Incus: unix socket /nonexistent/unix.socket") {
		t.Fatalf("stdin: %s", out)
	}

	dir := t.TempDir()
	stock := filepath.Join(dir, "AnsiballZ_ssh_ca_trust")
	if err := os.Link(bin, stock); err != nil {
		t.Fatal(err)
	}
	argsFile := filepath.Join(dir, "args")
	os.WriteFile(argsFile, []byte(`{"ca_keys": ["not a key"]}`), 0o600)
	out, err := exec.Command(stock, argsFile).Output()
	res := result(t, out)
	if err == nil || !strings.Contains(res["msg"].(string), "ca_keys[0] line 1") {
		t.Fatalf("args file via AnsiballZ_ name: err=%v %s", err, out)
	}

	out, err = exec.Command(bin, "no_such_module", "-").Output()
	res = result(t, out)
	if err == nil || res["failed"] != true || !strings.Contains(res["msg"].(string), "modules: incus_trust, libvirt_cert, libvirt_cert_info, libvirtd_allowed_dns, ssh_ca_trust, ssh_trust_info") {
		t.Fatalf("unknown module: err=%v %s", err, out)
	}
}

// The linux/arm64 build does the same real work as the host's: an audit of lab host 1's
// trust store over its unix socket, run under qemu-aarch64-static (no arm64 machine here)
// with an args file, as Ansible's stock path runs it.
func TestLabArm64BinaryUnderQemu(t *testing.T) {
	lab := testlab.Get(t)
	qemu, err := exec.LookPath("qemu-aarch64-static")
	if err != nil {
		if os.Getenv("LAB_REQUIRED") == "1" {
			t.Fatal("qemu-aarch64-static is missing (lab/deps.sh installs qemu-user-static)")
		}
		t.Skip("qemu-aarch64-static is missing")
	}
	argsFile := filepath.Join(t.TempDir(), "args")
	os.WriteFile(argsFile, []byte(`{"clients": [], "socket": "`+lab.Host1Socket+`"}`), 0o600)
	arm, native := testlab.MultiCallBinary(t, "arm64"), testlab.MultiCallBinary(t, runtime.GOARCH)
	armOut, err := exec.Command(qemu, arm, "incus_trust", argsFile).Output()
	if err != nil {
		t.Fatalf("arm64 under qemu: %v %s", err, armOut)
	}
	nativeOut, err := exec.Command(native, "incus_trust", argsFile).Output()
	if err != nil {
		t.Fatalf("native: %v %s", err, nativeOut)
	}
	a, n := result(t, armOut), result(t, nativeOut)
	if a["failed"] == true || !reflect.DeepEqual(a["certificates"], n["certificates"]) || a["certificates"] == nil {
		t.Fatalf("arm64 and native disagree:\narm64:  %s\nnative: %s", armOut, nativeOut)
	}
}
