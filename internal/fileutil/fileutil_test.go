package fileutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"syscall"
)

func TestWriteAtomicSetsModeAndOwnerAndReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.pem")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteAtomic(p, []byte("new"), Attrs{Mode: 0o400, Owner: "0", Group: "0"}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	st := fi.Sys().(*syscall.Stat_t)
	if string(data) != "new" || fi.Mode().Perm() != 0o400 || st.Uid != 0 || st.Gid != 0 {
		t.Fatalf("content %q mode %v uid %d gid %d", data, fi.Mode().Perm(), st.Uid, st.Gid)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp files left behind: %v", entries)
	}
}

func TestWriteAtomicFailureLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("old"), 0o644)
	err := WriteAtomic(p, []byte("new"), Attrs{Mode: 0o600, Owner: "no-such-user-xyz"})
	if err == nil || !strings.Contains(err.Error(), "no-such-user-xyz") {
		t.Fatalf("err = %v", err)
	}
	if data, _ := os.ReadFile(p); string(data) != "old" {
		t.Fatalf("old file changed: %q", data)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("temp files left behind: %v", entries)
	}
}

func TestAttrsDiffer(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	WriteAtomic(p, []byte("x"), Attrs{Mode: 0o644})
	if d, err := AttrsDiffer(p, Attrs{Mode: 0o644}); err != nil || d {
		t.Fatalf("same attrs reported different: %v %v", d, err)
	}
	if d, _ := AttrsDiffer(p, Attrs{Mode: 0o600}); !d {
		t.Fatal("mode change not seen")
	}
}

func TestBackupCopiesAndMissingNeedsNone(t *testing.T) {
	dir := t.TempDir()
	if b, err := Backup(filepath.Join(dir, "none")); b != "" || err != nil {
		t.Fatalf("backup of missing file: %q %v", b, err)
	}
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("keep me"), 0o640)
	b, err := Backup(p)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(b)
	fi, _ := os.Stat(b)
	if string(data) != "keep me" || fi.Mode().Perm() != 0o640 || !strings.HasSuffix(b, "~") {
		t.Fatalf("backup %s: %q %v", b, data, fi.Mode())
	}
}

func TestRead(t *testing.T) {
	if _, ok, err := Read(filepath.Join(t.TempDir(), "missing")); ok || err != nil {
		t.Fatal("missing file must be (nil, false, nil)")
	}
}
