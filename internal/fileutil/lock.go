package fileutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// LockWait is how long Lock waits for another run that holds the same lock.
var LockWait = 2 * time.Minute

// Lock is an exclusive flock on the lock file of a managed file set. The kernel drops it
// when the process dies, so a killed run never leaves it held.
type Lock struct {
	f    *os.File
	Path string
}

// LockPath is the lock file of the file set that path belongs to: .<name>.lock beside it.
// It is never removed (removing a lock file others may have open breaks the lock).
func LockPath(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".lock")
}

// LockFiles takes the lock of the file set named by path, waiting up to LockWait for
// another run. With create, a missing directory (0755) and lock file are created; without
// it (check mode, which writes nothing) a missing lock file means no run ever wrote
// there, and the lock is a no-op.
func LockFiles(path string, create bool) (*Lock, error) {
	lp := LockPath(path)
	dir := filepath.Dir(lp)
	flags := os.O_RDONLY | unix.O_CLOEXEC
	if create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cannot create %s: %w", dir, err)
		}
		flags = os.O_RDWR | os.O_CREATE | unix.O_CLOEXEC
	}
	f, err := os.OpenFile(lp, flags, 0o600)
	if !create && errors.Is(err, os.ErrNotExist) {
		return &Lock{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open the lock file %s: %w", lp, err)
	}
	deadline := time.Now().Add(LockWait)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return &Lock{f: f, Path: lp}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("cannot lock %s: %w", lp, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("another run has held the lock %s for more than %s; nothing was changed", lp, LockWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Unlock releases the lock; a second call does nothing.
func (l *Lock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Close() // closing the only descriptor drops the flock
	l.f = nil
}

// tempSuffix is what os.CreateTemp puts in place of the "*" of WriteAtomic's pattern.
var tempSuffix = regexp.MustCompile(`^[0-9]+$`)

// isTempOf reports whether name is a temp file WriteAtomic makes for a file called base
// (base "" matches any base).
func isTempOf(name, base string) bool {
	if !strings.HasPrefix(name, ".") {
		return false
	}
	i := strings.LastIndex(name, ".tmp-")
	if i < 2 || !tempSuffix.MatchString(name[i+len(".tmp-"):]) {
		return false
	}
	return base == "" || name[1:i] == base
}

// StaleTemps lists the temp files WriteAtomic left beside targets (.<name>.tmp-<digits>),
// and in each of dirs every such file whatever its name: what a run killed between
// writing a temp file and renaming it leaves. Call it while holding the lock of the file
// set, so no live run of this kind is writing them.
func StaleTemps(targets []string, dirs []string) ([]string, error) {
	want := map[string][]string{} // directory → bases ("" for any)
	for _, t := range targets {
		want[filepath.Dir(t)] = append(want[filepath.Dir(t)], filepath.Base(t))
	}
	for _, d := range dirs {
		want[d] = append(want[d], "")
	}
	var out []string
	for dir, bases := range want {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", dir, err)
		}
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			for _, b := range bases {
				if isTempOf(e.Name(), b) {
					out = append(out, filepath.Join(dir, e.Name()))
					break
				}
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// RemoveFiles removes each path (already gone counts as removed).
func RemoveFiles(paths []string) error {
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cannot remove the stale temp file %s: %w", p, err)
		}
	}
	return nil
}
