package fileutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLockFilesExcludesASecondHolderUntilUnlock(t *testing.T) {
	target := filepath.Join(t.TempDir(), "keys.pem")
	first, err := LockFiles(target, true)
	if err != nil {
		t.Fatal(err)
	}
	if first.Path != filepath.Join(filepath.Dir(target), ".keys.pem.lock") {
		t.Fatalf("lock file %s", first.Path)
	}
	old := LockWait
	LockWait = 200 * time.Millisecond
	defer func() { LockWait = old }()
	if _, err := LockFiles(target, false); err == nil || !strings.Contains(err.Error(), "another run has held the lock") {
		t.Fatalf("second lock while held: %v", err)
	}
	got := make(chan error, 1)
	LockWait = 5 * time.Second
	go func() {
		l, err := LockFiles(target, false)
		if err == nil {
			l.Unlock()
		}
		got <- err
	}()
	time.Sleep(100 * time.Millisecond)
	first.Unlock()
	first.Unlock() // a second Unlock does nothing
	if err := <-got; err != nil {
		t.Fatalf("lock after the first holder let go: %v", err)
	}
}

func TestLockFilesMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki", "libvirt")
	l, err := LockFiles(filepath.Join(dir, "clientcert.pem"), false)
	if err != nil || l.Path != "" {
		t.Fatalf("without create: %+v %v", l, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatal("check mode created the directory")
	}
	os.MkdirAll(dir, 0o755)
	if l, err := LockFiles(filepath.Join(dir, "clientcert.pem"), false); err != nil || l.Path != "" {
		t.Fatalf("check mode, no lock file yet: %+v %v", l, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("check mode created %v", entries)
	}
	l, err = LockFiles(filepath.Join(dir, "clientcert.pem"), true)
	if err != nil || l.Path == "" {
		t.Fatalf("with create: %+v %v", l, err)
	}
	l.Unlock()
	// once a run has written there, check mode takes the lock too (it reads a consistent set)
	if l, err = LockFiles(filepath.Join(dir, "clientcert.pem"), false); err != nil || l.Path == "" {
		t.Fatalf("check mode with a lock file: %+v %v", l, err)
	}
	l.Unlock()
}

func TestStaleTempsMatchesOnlyOurPattern(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "principals")
	os.Mkdir(sub, 0o755)
	for _, n := range []string{
		".keys.pem.tmp-123", // ours, for keys.pem
		".keys.pem.tmp-",    // no digits
		".keys.pem.tmp-12a", // not digits
		".other.tmp-99",     // another file's, not a target here
		"keys.pem.tmp-1",    // no leading dot
		".keys.pem.lock",    // the lock, never
		"keys.pem",
		"principals/.root.tmp-5", // any name in a directory given whole
		"principals/root",
	} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o600)
	}
	got, err := StaleTemps([]string{filepath.Join(dir, "keys.pem"), filepath.Join(dir, "nowhere", "x")}, []string{sub})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, ".keys.pem.tmp-123"), filepath.Join(sub, ".root.tmp-5")}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("stale = %v, want %v", got, want)
	}
	if err := RemoveFiles(append(got, filepath.Join(dir, "gone"))); err != nil {
		t.Fatal(err)
	}
	if left, _ := StaleTemps([]string{filepath.Join(dir, "keys.pem")}, []string{sub}); len(left) != 0 {
		t.Fatalf("left: %v", left)
	}
}

// WriteAtomic's temp files are what StaleTemps looks for: a temp left by a crash (made
// here with the same pattern) is found.
func TestWriteAtomicTempNameIsThePattern(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "cacert.pem")
	f, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, _ := StaleTemps([]string{target}, nil); len(got) != 1 || got[0] != f.Name() {
		t.Fatalf("stale = %v, want %s", got, f.Name())
	}
}
