package sshca

import (
	"crypto/rand"
	"encoding/json"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/incus-access/incus-access/internal/fileutil"
	"github.com/incus-access/incus-access/internal/testlab"
)

// newCAKeyLine is a fresh CA public key line with comment.
func newCAKeyLine(t *testing.T, comment string) string {
	t.Helper()
	line, _, _ := testlab.NewSSHKey(t, comment)
	return line
}

// keyLines is the keys file without its comment lines.
func keyLines(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if !strings.HasPrefix(l, "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// staleTemps lists temp files of our pattern in every directory the module manages.
func staleTemps(t *testing.T, s *testlab.SSHD) []string {
	t.Helper()
	left, err := fileutil.StaleTemps([]string{s.KeysFile, s.Config}, []string{s.DropIns, s.PrincipalsDir})
	if err != nil {
		t.Fatal(err)
	}
	return left
}

// sshdAccepts fails the test unless `sshd -t` accepts the configuration the module left.
func sshdAccepts(t *testing.T, s *testlab.SSHD, round int) {
	t.Helper()
	if out, err := exec.Command("/usr/sbin/sshd", "-t", "-f", s.Config).CombinedOutput(); err != nil {
		t.Fatalf("round %d: sshd -t refuses the configuration: %v %s", round, err, out)
	}
}

// Two runs at once with different CA keys, fifty times: both succeed, the keys file is
// exactly one run's, and sshd -t accepts the configuration every time.
func TestLabConcurrentRunsEndInOneRunsState(t *testing.T) {
	s := testlab.StartSSHD(t)
	lines := []string{newCAKeyLine(t, "ca-a"), newCAKeyLine(t, "ca-b")}
	var wg sync.WaitGroup
	for round := 0; round < 50; round++ {
		results := make([]map[string]any, 2)
		for i := range results {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				results[i], _ = runModule(t, moduleArgs(s, map[string]any{"ca_keys": []any{lines[i]}, "reload": false}))
			}(i)
		}
		wg.Wait()
		for i, r := range results {
			if r["failed"] == true {
				t.Fatalf("round %d run %d failed: %v", round, i, r["msg"])
			}
		}
		if got := keyLines(t, s.KeysFile); got != lines[0] && got != lines[1] {
			t.Fatalf("round %d: the keys file is neither run's: %q", round, got)
		}
		sshdAccepts(t, s, round)
		if left := staleTemps(t, s); len(left) > 0 {
			t.Fatalf("round %d: temp files left: %v", round, left)
		}
	}
}

// Forty runs killed at random moments, then one normal run: no temp file is left in any
// managed directory, and sshd -t accepts the result.
func TestLabKilledRunsLeaveNothingAfterTheNextRun(t *testing.T) {
	s := testlab.StartSSHD(t)
	bin := testlab.ModuleBinary(t, "ssh_ca_trust")
	dir := t.TempDir()
	for i := 0; i < 40; i++ {
		args := moduleArgs(s, map[string]any{"ca_keys": []any{newCAKeyLine(t, "ca-kill")}, "reload": false})
		data, _ := json.Marshal(args)
		path := filepath.Join(dir, "args.json")
		os.WriteFile(path, data, 0o600)
		cmd := exec.Command(bin, path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		n, _ := rand.Int(rand.Reader, big.NewInt(30_000))
		time.Sleep(time.Duration(n.Int64()) * time.Microsecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	t.Logf("before the recovery run: %d temp file(s) left by the kills", len(staleTemps(t, s)))
	planted := filepath.Join(filepath.Dir(s.KeysFile), "."+filepath.Base(s.KeysFile)+".tmp-777")
	if err := os.WriteFile(planted, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	final := newCAKeyLine(t, "ca-final")
	res, _ := runModule(t, moduleArgs(s, map[string]any{"ca_keys": []any{final}, "reload": false}))
	if res["failed"] == true {
		t.Fatalf("recovery run failed: %v", res["msg"])
	}
	if removed, _ := res["removed_temp_files"].([]any); len(removed) == 0 {
		t.Fatalf("the recovery run removed no temp file: %v", res)
	}
	if left := staleTemps(t, s); len(left) > 0 {
		t.Fatalf("temp files left after the recovery run: %v", left)
	}
	if got := keyLines(t, s.KeysFile); got != final {
		t.Fatalf("keys file holds %q", got)
	}
	sshdAccepts(t, s, 0)
}
