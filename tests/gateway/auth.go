package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// HostAccounts reads the Incus host's own account files: the real gateway looks host users up
// in /etc/passwd only (no NSS), so the stand-in parses the files too.
type HostAccounts struct {
	Passwd, Group string // /etc/passwd, /etc/group
	KeysDir       string // /etc/ssh/authorized_keys.d, the fallback for ~user/.ssh/authorized_keys
	AllowedGroups []string
}

// HostUser is one /etc/passwd entry.
type HostUser struct {
	Name string
	UID  int
	GID  int
	Home string
}

// Lookup finds name in the passwd file.
func (h HostAccounts) Lookup(name string) (HostUser, error) {
	var found *HostUser
	err := eachLine(h.Passwd, func(f []string) bool {
		if len(f) < 7 || f[0] != name {
			return true
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return true
		}
		found = &HostUser{Name: f[0], UID: uid, GID: gid, Home: f[5]}
		return false
	})
	if err != nil {
		return HostUser{}, err
	}
	if found == nil {
		return HostUser{}, fmt.Errorf("host user %q is not in %s", name, h.Passwd)
	}
	return *found, nil
}

// Allowed says whether u may log in: uid 0, or a member (primary or supplementary) of an allowed group.
func (h HostAccounts) Allowed(u HostUser) error {
	if u.UID == 0 {
		return nil
	}
	member := false
	err := eachLine(h.Group, func(f []string) bool {
		if len(f) < 4 || !slices.Contains(h.AllowedGroups, f[0]) {
			return true
		}
		if gid, err := strconv.Atoi(f[2]); err == nil && gid == u.GID || slices.Contains(strings.Split(f[3], ","), u.Name) {
			member = true
			return false
		}
		return true
	})
	if err != nil {
		return err
	}
	if !member {
		return fmt.Errorf("host user %q is neither uid 0 nor in one of the groups %v", u.Name, h.AllowedGroups)
	}
	return nil
}

// KeyAuthorized says whether key is listed for u, in ~u/.ssh/authorized_keys or else in
// KeysDir/<user>. Lines are compared as plain keys: options (cert-authority, from=...) are
// ignored, so an OpenSSH certificate never matches.
func (h HostAccounts) KeyAuthorized(u HostUser, key ssh.PublicKey) (bool, error) {
	data, err := os.ReadFile(filepath.Join(u.Home, ".ssh", "authorized_keys"))
	if errors.Is(err, os.ErrNotExist) {
		data, err = os.ReadFile(filepath.Join(h.KeysDir, u.Name))
	}
	if err != nil {
		return false, err
	}
	want := key.Marshal()
	for len(data) > 0 {
		k, _, _, rest, err := ssh.ParseAuthorizedKey(data)
		if err != nil {
			break // ParseAuthorizedKey skips bad lines; an error means no key left
		}
		if bytes.Equal(k.Marshal(), want) {
			return true, nil
		}
		data = rest
	}
	return false, nil
}

// eachLine calls fn with the ':'-separated fields of each line of path until fn returns false.
func eachLine(path string, fn func([]string) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if line := s.Text(); line != "" && !strings.HasPrefix(line, "#") && !fn(strings.Split(line, ":")) {
			break
		}
	}
	return s.Err()
}

// InstanceUser is what `getent passwd <user>` printed inside the instance.
type InstanceUser struct {
	Name  string
	UID   uint32
	GID   uint32
	Home  string
	Shell string
}

// ParseGetent parses one passwd line.
func ParseGetent(out string) (InstanceUser, error) {
	f := strings.Split(strings.TrimSpace(strings.SplitN(out, "\n", 2)[0]), ":")
	if len(f) < 7 {
		return InstanceUser{}, fmt.Errorf("unexpected getent output %q", out)
	}
	uid, err1 := strconv.ParseUint(f[2], 10, 32)
	gid, err2 := strconv.ParseUint(f[3], 10, 32)
	if err1 != nil || err2 != nil {
		return InstanceUser{}, fmt.Errorf("unexpected getent output %q", out)
	}
	u := InstanceUser{Name: f[0], UID: uint32(uid), GID: uint32(gid), Home: f[5], Shell: f[6]}
	if u.Home == "" {
		u.Home = "/"
	}
	if u.Shell == "" {
		u.Shell = "/bin/sh"
	}
	return u, nil
}
