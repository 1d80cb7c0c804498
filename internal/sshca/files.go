package sshca

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"

	"github.com/incus-access/incus-access/internal/fileutil"
)

// ReadState reads the files the plan depends on: the main configuration, the drop-ins
// its Include matches, the keys file and the principals directory.
func ReadState(d Desired) (State, error) {
	var st State
	var err error
	if st.Main, err = readFile(d.SSHDConfig); err != nil {
		return st, err
	}
	if inc, ok := findDropInInclude(parseConfig(st.Main.Data)); ok {
		matches, err := filepath.Glob(inc.Glob)
		if err != nil {
			return st, fmt.Errorf("%s: Include %s: %w", d.SSHDConfig, inc.Pattern, err)
		}
		sort.Strings(matches)
		for _, path := range matches {
			f, err := readFile(path)
			if err != nil {
				return st, err
			}
			if f.Exists && f.Mode.IsRegular() {
				st.DropIns = append(st.DropIns, f)
			}
		}
	}
	if st.KeysFile, err = readFile(d.KeysFile); err != nil {
		return st, err
	}
	entries, err := os.ReadDir(d.PrincipalsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("cannot read principals_dir %s: %w", d.PrincipalsDir, err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		f, err := readFile(filepath.Join(d.PrincipalsDir, e.Name()))
		if err != nil {
			return st, err
		}
		st.Principals = append(st.Principals, f)
	}
	return st, nil
}

func readFile(path string) (FileState, error) {
	f := FileState{Path: path}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("cannot read %s: %w", path, err)
	}
	if fi.IsDir() {
		return f, fmt.Errorf("%s is a directory, not a file", path)
	}
	if f.Data, err = os.ReadFile(path); err != nil {
		return f, fmt.Errorf("cannot read %s: %w", path, err)
	}
	f.Exists = true
	f.Mode = fi.Mode()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		f.UID, f.GID = int(st.Uid), int(st.Gid)
	}
	if fileutil.SELinuxEnabled() {
		f.Label, _ = fileutil.Label(path)
	}
	return f, nil
}

// ApplyError says which file failed and which changes were and were not made.
type ApplyError struct {
	Path    string
	Err     error
	Applied []string
}

func (e *ApplyError) Error() string {
	msg := fmt.Sprintf("%s: %v", e.Path, e.Err)
	if len(e.Applied) > 0 {
		msg += fmt.Sprintf("; already changed before the failure: %v", e.Applied)
	} else {
		msg += "; nothing was changed"
	}
	return msg
}

// Apply writes and removes the plan's files in order (files the configuration refers to
// before the configuration that refers to them). Backups of edited configuration files
// are made first when backup is set; their paths are returned.
func (p *TrustPlan) Apply(backup bool) (backups []string, err error) {
	var applied []string
	for _, f := range p.Files {
		if backup && f.Existed && (f.Kind == "sshd_config" || f.Kind == "drop_in") && !f.Remove {
			b, err := fileutil.Backup(f.Path)
			if err != nil {
				return backups, &ApplyError{Path: f.Path, Err: err, Applied: applied}
			}
			if b != "" {
				backups = append(backups, b)
			}
		}
		if err := applyFile(f); err != nil {
			return backups, &ApplyError{Path: f.Path, Err: err, Applied: applied}
		}
		applied = append(applied, f.Path)
	}
	return backups, nil
}

func applyFile(f *FileChange) error {
	if f.Remove {
		if err := os.Remove(f.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
		return err
	}
	return fileutil.WriteAtomic(f.Path, f.After, fileutil.Attrs{
		Owner: strconv.Itoa(f.UID), Group: strconv.Itoa(f.GID), Mode: f.Mode, SELinuxLabel: f.Label,
	})
}
