package libvirtdconf

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/incus-access/incus-access/internal/ansible"
	"github.com/incus-access/incus-access/internal/fileutil"
)

// Params are the libvirtd_allowed_dns module's options (modules/libvirtd_allowed_dns/libvirtd_allowed_dns.yml).
type Params struct {
	Path   string   `ansible:"path"`
	DNs    []string `ansible:"dns"`
	Backup bool     `ansible:"backup"`
}

// Run is the libvirtd_allowed_dns module: tls_allowed_dn_list in libvirtd.conf := dns.
func Run(m *ansible.Context, p *Params) error {
	if !strings.HasPrefix(p.Path, "/") {
		return fmt.Errorf("path %q is not an absolute path", p.Path)
	}
	data, ok, err := fileutil.Read(p.Path)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s does not exist: is libvirtd installed here?", p.Path)
	}
	var pl *Plan
	if p.DNs == nil {
		pl, err = current(data)
	} else {
		pl, err = PlanAllowedDNs(data, p.DNs)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", p.Path, err)
	}
	c, err := Parse(pl.Data)
	if err != nil {
		return fmt.Errorf("%s: %w", p.Path, err)
	}
	files, defaults := TLSFiles(c)
	m.Set("path", p.Path)
	m.Set("dns", pl.After)
	m.Set("added", nonNil(pl.Added))
	m.Set("removed", nonNil(pl.Removed))
	m.Set("tls_files", files)
	m.Set("default_tls_files", defaults)
	m.Set("admin_uri", AdminURI(c))
	m.Changed = pl.Changed
	m.Set("restart_required", pl.Changed)
	for _, dn := range pl.Inexact {
		m.Warn("the DN %q holds both quote characters in a way libvirtd.conf cannot quote: it is listed with ? in place of each \", which also matches other characters there", dn)
	}
	if m.DiffMode && pl.Changed {
		m.AddDiff(p.Path, string(data), string(pl.Data))
	}
	summary := fmt.Sprintf("%d DN(s)", len(pl.After))
	if pl.Changed {
		summary += fmt.Sprintf(", %d added, %d removed", len(pl.Added), len(pl.Removed))
	}
	switch {
	case !pl.Changed:
		m.Msg = fmt.Sprintf("%s in %s is up to date: %s", Key, p.Path, summary)
		return nil
	case m.CheckMode:
		m.Msg = fmt.Sprintf("would set %s in %s: %s", Key, p.Path, summary)
		return nil
	}
	attrs, err := currentAttrs(p.Path)
	if err != nil {
		return err
	}
	if p.Backup {
		b, err := fileutil.Backup(p.Path)
		if err != nil {
			return err
		}
		m.Set("backup_file", b)
	}
	if err := fileutil.WriteAtomic(p.Path, pl.Data, attrs); err != nil {
		return err
	}
	m.Msg = fmt.Sprintf("set %s in %s: %s", Key, p.Path, summary)
	return nil
}

// current is the plan of a task without dns: the file as it is, the list it holds.
func current(data []byte) (*Plan, error) {
	c, err := Parse(data)
	if err != nil {
		return nil, err
	}
	pl := &Plan{Data: data, After: []string{}}
	if es := c.Lookup(Key); len(es) > 0 {
		pl.After, _ = es[0].Value.Strings()
	}
	return pl, nil
}

// currentAttrs are the file's owner, group, mode and SELinux label, which the new content keeps.
func currentAttrs(path string) (fileutil.Attrs, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileutil.Attrs{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileutil.Attrs{}, errors.New("cannot read the owner of " + path)
	}
	a := fileutil.Attrs{Owner: strconv.Itoa(int(st.Uid)), Group: strconv.Itoa(int(st.Gid)), Mode: fi.Mode().Perm()}
	if fileutil.SELinuxEnabled() {
		a.SELinuxLabel, _ = fileutil.Label(path)
	}
	return a, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
