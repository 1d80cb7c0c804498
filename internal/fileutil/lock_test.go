package fileutil

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/incus-access/incus-access/internal/testlab"
)

// entries is what dir holds, names only.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func shortLockWait(t *testing.T, d time.Duration) {
	old := LockWait
	LockWait = d
	t.Cleanup(func() { LockWait = old })
}

func TestLockFilesExcludesASecondHolderUntilUnlock(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "keys.pem")
	first, err := LockFiles(true, target)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(first.Dirs, []string{dir}) {
		t.Fatalf("locked %v, want the directory %s", first.Dirs, dir)
	}
	if got := entries(t, dir); len(got) != 0 {
		t.Fatalf("the lock left files: %v", got)
	}
	shortLockWait(t, 200*time.Millisecond)
	// another file of the same directory: the same lock
	if _, err := LockFiles(false, filepath.Join(dir, "other.pem")); err == nil || !strings.Contains(err.Error(), "another run has held the lock on "+dir) {
		t.Fatalf("second lock while held: %v", err)
	}
	got := make(chan error, 1)
	LockWait = 5 * time.Second
	go func() {
		l, err := LockFiles(false, target)
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

// Two files in one directory, or one directory under two names (a symlink), are one lock
// taken once: a run never waits for itself.
func TestLockFilesLocksEachDirectoryOnce(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "pki")
	os.Mkdir(sub, 0o755)
	os.Symlink(sub, filepath.Join(dir, "alias"))
	shortLockWait(t, time.Second)
	l, err := LockFiles(true, filepath.Join(sub, "cert.pem"), filepath.Join(sub, "ca.pem"), filepath.Join(dir, "alias", "x.pem"), filepath.Join(dir, "top.pem"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if len(l.Dirs) != 2 {
		t.Fatalf("locked %v, want %s and %s once each", l.Dirs, sub, dir)
	}
}

// Runs that name the same directories in opposite orders lock them in one order: a
// hundred pairs at once, none waits for the other in a circle.
func TestLockFilesOppositeOrdersDoNotDeadlock(t *testing.T) {
	a, b := filepath.Join(t.TempDir(), "a.pem"), filepath.Join(t.TempDir(), "b.pem")
	shortLockWait(t, 10*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 100; i++ {
		for _, files := range [][]string{{a, b}, {b, a}} {
			wg.Add(1)
			go func(files []string) {
				defer wg.Done()
				l, err := LockFiles(false, files...)
				if err != nil {
					errs <- err
					return
				}
				time.Sleep(time.Millisecond)
				l.Unlock()
			}(files)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestLockFilesMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki", "libvirt")
	l, err := LockFiles(false, filepath.Join(dir, "clientcert.pem"))
	if err != nil || len(l.Dirs) != 0 {
		t.Fatalf("without create: %+v %v", l, err)
	}
	l.Unlock()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatal("check mode created the directory")
	}
	l, err = LockFiles(true, filepath.Join(dir, "clientcert.pem"))
	if err != nil || !slices.Equal(l.Dirs, []string{dir}) {
		t.Fatalf("with create: %+v %v", l, err)
	}
	l.Unlock()
	if got := entries(t, dir); len(got) != 0 {
		t.Fatalf("the lock left files: %v", got)
	}
}

// A lock file an earlier version left is locked too (so a run of that version waits),
// and neither removed nor created anew.
func TestLockFilesHoldsAnEarlierVersionsLockFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "clientcert.pem")
	legacy := LegacyLockPath(target)
	if legacy != filepath.Join(dir, ".clientcert.pem.lock") {
		t.Fatalf("legacy lock path %s", legacy)
	}
	if err := os.WriteFile(legacy, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := LockFiles(true, target, filepath.Join(dir, "cacert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	// what an earlier version does: open the lock file and flock it
	f, err := os.OpenFile(legacy, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("an earlier version's run got its lock while this one held it: %v", err)
	}
	l.Unlock()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("after Unlock: %v", err)
	}
	if got := entries(t, dir); !slices.Equal(got, []string{".clientcert.pem.lock"}) {
		t.Fatalf("the directory holds %v, want the earlier version's lock file alone", got)
	}
}

// The kernel drops the lock of a run killed with SIGKILL: the next run takes it at once.
func TestLockFilesKilledHolderReleases(t *testing.T) {
	if dir := os.Getenv("FILEUTIL_HOLD_LOCK"); dir != "" {
		if _, err := LockFiles(false, filepath.Join(dir, "x")); err != nil {
			os.Exit(3)
		}
		os.WriteFile(filepath.Join(dir, "held"), nil, 0o600) // the parent waits for this
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockFilesKilledHolderReleases$")
	cmd.Env = append(os.Environ(), "FILEUTIL_HOLD_LOCK="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, err := os.Stat(filepath.Join(dir, "held")); err == nil {
			break
		}
		if i == 500 {
			cmd.Process.Kill()
			t.Fatal("the holder never took the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	shortLockWait(t, 100*time.Millisecond)
	if _, err := LockFiles(false, filepath.Join(dir, "x")); err == nil {
		t.Fatal("took the lock while the holder lives")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	l, err := LockFiles(false, filepath.Join(dir, "x"))
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	l.Unlock()
}

// On a read-only filesystem the lock is taken (it needs no write) and a missing
// directory is named with the reason. Needs root (mount).
func TestLockFilesOnAReadOnlyFilesystem(t *testing.T) {
	dir := testlab.Tmpfs(t, "64k")
	testlab.RemountReadOnly(t, dir, true)
	l, err := LockFiles(true, filepath.Join(dir, "keys.pem"))
	if err != nil {
		t.Fatalf("lock on a read-only filesystem: %v", err)
	}
	l.Unlock()
	_, err = LockFiles(true, filepath.Join(dir, "missing", "keys.pem"))
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "missing")) || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("a missing directory on a read-only filesystem: %v", err)
	}
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
