package libvirtdconf

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Key is the setting this package manages.
const Key = "tls_allowed_dn_list"

// Default locations libvirtd (as root) reads its TLS files from when libvirtd.conf does not
// name them; `virt-admin server-update-tls` re-reads these, whatever the file says.
var DefaultTLSFiles = map[string]string{
	"ca_file":   "/etc/pki/CA/cacert.pem",
	"cert_file": "/etc/pki/libvirt/servercert.pem",
	"key_file":  "/etc/pki/libvirt/private/serverkey.pem",
}

// Plan is what setting the allowed DNs does to a file.
type Plan struct {
	Before, After []string // the list's entries before (nil: not set) and after
	Added         []string
	Removed       []string
	Inexact       []string // DNs written with ? in place of a " they hold
	Data          []byte   // the new file content; equal to the old when unchanged
	Changed       bool
}

// CheckDNs validates the wanted DNs and returns them as entries: sorted, unique. An empty
// list is refused (libvirtd reads it as "no check at all"), as is an empty DN or one with
// a control character.
func CheckDNs(dns []string) (entries, inexact []string, err error) {
	if len(dns) == 0 {
		return nil, nil, fmt.Errorf("no DN to allow: libvirtd reads an empty %s as \"no DN check at all\", so it is never written", Key)
	}
	seen := map[string]bool{}
	for i, dn := range dns {
		if strings.TrimSpace(dn) == "" {
			return nil, nil, fmt.Errorf("dns[%d] is empty", i)
		}
		for _, r := range dn {
			if r < 0x20 || r == 0x7f {
				return nil, nil, fmt.Errorf("dns[%d] %q holds a control character, which a libvirtd.conf list entry cannot hold", i, dn)
			}
		}
		e, exact := AllowedEntry(dn)
		if !exact {
			inexact = append(inexact, dn)
		}
		if !seen[e] {
			seen[e] = true
			entries = append(entries, e)
		}
	}
	slices.Sort(entries)
	return entries, inexact, nil
}

// PlanAllowedDNs computes the file with tls_allowed_dn_list set to dns. The list is left
// as written (order, layout) when it already holds exactly these entries.
func PlanAllowedDNs(data []byte, dns []string) (*Plan, error) {
	entries, inexact, err := CheckDNs(dns)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, err
	}
	pl := &Plan{After: entries, Inexact: inexact, Data: data}
	if es := c.Lookup(Key); len(es) > 1 {
		_, err := c.Set(Key, "")
		return nil, err
	} else if len(es) == 1 {
		cur, ok := es[0].Value.Strings()
		if !ok {
			return nil, fmt.Errorf("%s on line %d is not a list of strings", Key, es[0].Line)
		}
		pl.Before = cur
	}
	have := map[string]bool{}
	for _, d := range pl.Before {
		have[d] = true
	}
	want := map[string]bool{}
	for _, d := range entries {
		want[d] = true
		if !have[d] {
			pl.Added = append(pl.Added, d)
		}
	}
	for d := range have {
		if !want[d] {
			pl.Removed = append(pl.Removed, d)
		}
	}
	slices.Sort(pl.Removed)
	if pl.Before != nil && len(pl.Added) == 0 && len(pl.Removed) == 0 {
		return pl, nil
	}
	value, err := FormatList(entries)
	if err != nil {
		return nil, err
	}
	if pl.Data, err = c.Set(Key, value); err != nil {
		return nil, err
	}
	if err := verify(c, pl.Data, entries); err != nil {
		return nil, err
	}
	pl.Changed = true
	return pl, nil
}

// verify re-reads the new content: the managed list must read back as entries and every
// other statement must be what it was (guards against writing into a multi-line string).
func verify(old *Conf, data []byte, entries []string) error {
	c, err := Parse(data)
	if err != nil {
		return fmt.Errorf("internal error: the edited file does not parse (%v); nothing written", err)
	}
	others := func(c *Conf) (out []Entry) {
		for _, e := range c.Entries {
			if e.Name != Key {
				out = append(out, Entry{Name: e.Name, Value: e.Value})
			}
		}
		return out
	}
	es := c.Lookup(Key)
	got, ok := []string(nil), false
	if len(es) == 1 {
		got, ok = es[0].Value.Strings()
	}
	if !ok || !slices.Equal(got, entries) || !reflect.DeepEqual(others(old), others(c)) {
		return fmt.Errorf("internal error: the edited file would not read back as intended; nothing written")
	}
	return nil
}

// TLSFiles are the TLS file settings of a parsed file ("" when unset) and whether libvirtd
// uses the default locations for all of them.
func TLSFiles(c *Conf) (map[string]string, bool) {
	files := map[string]string{}
	defaults := true
	for k, def := range DefaultTLSFiles {
		v := c.String(k)
		files[k] = v
		if v != "" && v != def {
			defaults = false
		}
	}
	return files, defaults
}

// AdminURI is the virt-admin URI of the daemon: the default socket, or the one under the
// file's unix_sock_dir.
func AdminURI(c *Conf) string {
	if d := c.String("unix_sock_dir"); d != "" && d != "/var/run/libvirt" && d != "/run/libvirt" {
		return "libvirtd:///system?socket=" + strings.TrimRight(d, "/") + "/libvirt-admin-sock"
	}
	return "libvirtd:///system"
}
