// Package fileutil writes files the way every module here must: atomically, with owner,
// mode and SELinux label in place before the new file becomes visible.
package fileutil

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Attrs are the attributes a written file gets. Empty Owner/Group keep the process's
// own; an empty SELinuxLabel leaves the label to the policy's default.
type Attrs struct {
	Owner        string
	Group        string
	Mode         os.FileMode
	SELinuxLabel string
}

// SELinuxEnabled reports whether the kernel has SELinux on (selinuxfs mounted).
func SELinuxEnabled() bool {
	_, err := os.Stat("/sys/fs/selinux/enforce")
	return err == nil
}

// Read returns a file's content; a missing file is (nil, false, nil).
func Read(path string) ([]byte, bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return data, true, nil
}

// WriteAtomic writes data to path through a temp file in the same directory: write,
// fsync, chown, chmod, label, rename, fsync the directory. On any error the old file is
// untouched and the temp file removed.
func WriteAtomic(path string, data []byte, a Attrs) (err error) {
	uid, gid, err := ids(a.Owner, a.Group)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot create a temp file beside %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("cannot sync %s: %w", path, err)
	}
	if err = tmp.Chown(uid, gid); err != nil {
		return fmt.Errorf("cannot set owner of %s: %w", path, err)
	}
	if err = tmp.Chmod(a.Mode.Perm()); err != nil {
		return fmt.Errorf("cannot set mode of %s: %w", path, err)
	}
	if a.SELinuxLabel != "" {
		if err = unix.Fsetxattr(int(tmp.Fd()), "security.selinux", append([]byte(a.SELinuxLabel), 0), 0); err != nil {
			return fmt.Errorf("cannot set SELinux label %s on %s: %w", a.SELinuxLabel, path, err)
		}
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("cannot close %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cannot replace %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// AttrsDiffer reports whether the owner, group, mode or label of an existing file differ
// from a; it is how modules decide that only attributes need fixing.
func AttrsDiffer(path string, a Attrs) (bool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	uid, gid, err := ids(a.Owner, a.Group)
	if err != nil {
		return false, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid || fi.Mode().Perm() != a.Mode.Perm() {
		return true, nil
	}
	if a.SELinuxLabel != "" {
		if label, _ := Label(path); label != a.SELinuxLabel {
			return true, nil
		}
	}
	return false, nil
}

// Label returns a file's SELinux label, or "" when it has none.
func Label(path string) (string, error) {
	buf := make([]byte, 256)
	n, err := unix.Getxattr(path, "security.selinux", buf)
	if err != nil {
		return "", err
	}
	b := buf[:n]
	if n > 0 && b[n-1] == 0 {
		b = b[:n-1]
	}
	return string(b), nil
}

// Backup copies path to path.YYYY-MM-DD@HH:MM:SS~ (Ansible's backup naming) and returns
// the backup's path; a missing file needs no backup and returns "".
func Backup(path string) (string, error) {
	src, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return "", err
	}
	dst := fmt.Sprintf("%s.%s~", path, time.Now().Format("2006-01-02@15:04:05.000000"))
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return "", fmt.Errorf("cannot create backup of %s: %w", path, err)
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		os.Remove(dst)
		return "", fmt.Errorf("cannot write backup of %s: %w", path, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		out.Chown(int(st.Uid), int(st.Gid))
	}
	return dst, out.Close()
}

// ids resolves owner and group names (or numbers); empty means the current process's.
func ids(owner, group string) (int, int, error) {
	uid, gid := os.Getuid(), os.Getgid()
	if owner != "" {
		if n, err := strconv.Atoi(owner); err == nil {
			uid = n
		} else {
			u, err := user.Lookup(owner)
			if err != nil {
				return 0, 0, fmt.Errorf("owner %q does not exist", owner)
			}
			uid, _ = strconv.Atoi(u.Uid)
		}
	}
	if group != "" {
		if n, err := strconv.Atoi(group); err == nil {
			gid = n
		} else {
			g, err := user.LookupGroup(group)
			if err != nil {
				return 0, 0, fmt.Errorf("group %q does not exist", group)
			}
			gid, _ = strconv.Atoi(g.Gid)
		}
	}
	return uid, gid, nil
}
