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

// LockWait is how long LockFiles waits for another run that holds the same lock.
var LockWait = 2 * time.Minute

// Lock is what LockFiles holds: exclusive flocks on directories (and on the lock files an
// earlier version left). The kernel drops them when the process dies, so a killed run
// never leaves them held.
type Lock struct {
	held []*os.File
	// Dirs are the directories locked, in the order they were locked.
	Dirs []string
}

// LegacyLockPath is the lock file earlier versions kept beside a managed file
// (.<name>.lock). LockFiles never creates or removes one; it locks one that is there, so
// a run of an earlier version on the same host still waits for this one and the reverse.
func LegacyLockPath(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".lock")
}

// LockFiles takes the lock of a file set, waiting up to LockWait for another run: an
// exclusive flock on the directory of each of files, opened read-only. It needs no write
// access (a converged run on a read-only disk takes it) and leaves nothing behind.
//
// The rule: every run that may write a file of the set locks the directories of the same
// files (the set's anchor files, such as ssh_ca_trust's keys_file, plus any file several
// sets share, such as libvirt_cert's CA file). Two writers of one set so exclude each
// other; sets whose files share a directory exclude each other too (coarser, never
// wrong). Each directory is locked once however it is named (device and inode: a symlink,
// or two files in one directory) and directories are locked in (device, inode) order, so
// a run never waits for itself and no two runs wait for each other in a circle.
//
// With create, a missing directory is made (0755) first; without it (check mode, which
// writes nothing) a missing directory holds nothing to read, and is not locked.
func LockFiles(create bool, files ...string) (*Lock, error) {
	var dirs, legacy held
	for _, file := range files {
		name := filepath.Dir(file)
		if create {
			if err := os.MkdirAll(name, 0o755); err != nil {
				dirs.close()
				return nil, fmt.Errorf("cannot create %s: %w", name, err)
			}
		}
		f, err := os.OpenFile(name, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if !create && errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			err = dirs.add(f)
		}
		if err != nil {
			dirs.close()
			return nil, fmt.Errorf("cannot open the directory %s to lock it: %w", name, err)
		}
	}
	dirs.sort()
	// The lock files of earlier versions, after the directories and in the order given
	// (theirs): opened read-only, never created (not through a symlink, never blocking on
	// a FIFO).
	for _, file := range files {
		if f, err := os.OpenFile(LegacyLockPath(file), os.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0); err == nil {
			legacy.add(f)
		}
	}
	l := &Lock{}
	for _, h := range append(dirs, legacy...) {
		l.held = append(l.held, h.f)
	}
	for _, h := range dirs {
		l.Dirs = append(l.Dirs, h.f.Name())
	}
	deadline := time.Now().Add(LockWait)
	for _, f := range l.held {
		if err := flock(f, deadline); err != nil {
			l.Unlock()
			return nil, err
		}
	}
	return l, nil
}

// held are open files to lock, each inode once.
type held []heldFile

type heldFile struct {
	f        *os.File
	dev, ino uint64
}

// add keeps f unless a file of the same inode is kept already (then f is closed): a
// second flock on another descriptor of one inode would wait for the first.
func (h *held) add(f *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return err
	}
	for _, o := range *h {
		if o.dev == uint64(st.Dev) && o.ino == st.Ino {
			f.Close()
			return nil
		}
	}
	*h = append(*h, heldFile{f, uint64(st.Dev), st.Ino})
	return nil
}

// sort puts the files in (device, inode) order, the one order every run locks in.
func (h held) sort() {
	sort.Slice(h, func(i, j int) bool {
		if h[i].dev != h[j].dev {
			return h[i].dev < h[j].dev
		}
		return h[i].ino < h[j].ino
	})
}

func (h held) close() {
	for _, o := range h {
		o.f.Close()
	}
}

// flock takes an exclusive flock on f, retrying until deadline.
func flock(f *os.File, deadline time.Time) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("cannot lock %s: %w", f.Name(), err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("another run has held the lock on %s for more than %s; nothing was changed", f.Name(), LockWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Unlock releases the lock; a second call does nothing.
func (l *Lock) Unlock() {
	if l == nil {
		return
	}
	for _, f := range l.held {
		f.Close() // closing the only descriptor drops the flock
	}
	l.held = nil
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
