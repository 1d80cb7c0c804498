package clientcerts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/incus-access/incus-access/internal/fileutil"
)

// CertDirInInventory is where the seed keeps public certificates, relative to the inventory.
const CertDirInInventory = "incus/trusted-client-certs"

// InventoryClient is one entry of the seed's incus_trusted_clients.
type InventoryClient struct {
	Name        string
	Description string
	Restricted  bool
	Projects    []string
}

// InventoryResult is what add-to-inventory did.
type InventoryResult struct {
	CertFile     string // absolute path of the .crt written beside the inventory
	CertRel      string // certificate_file as the inventory names it
	Entry        string // the YAML text added
	AlreadyThere bool   // the same client with the same certificate was listed: nothing written
}

// AddToInventory adds client to all.vars.incus_trusted_clients of the inventory file,
// as text inserted after the list's last entry in the list's own indentation and quoting,
// so that every comment, blank line and key order of the file stays as it was. The
// result is parsed again and must decode to the old inventory plus exactly this entry;
// otherwise nothing is written. The public certificate goes to
// incus/trusted-client-certs/<name>.crt beside the inventory.
func AddToInventory(path string, cert *PublicCertificate, c InventoryClient) (*InventoryResult, error) {
	if err := ValidateClientName(c.Name); err != nil {
		return nil, err
	}
	for i, p := range c.Projects {
		if strings.TrimSpace(p) == "" || strings.ContainsAny(p, "\n\t") {
			return nil, fmt.Errorf("project %d %q: give a project name", i+1, p)
		}
	}
	if c.Restricted && len(c.Projects) == 0 {
		return nil, errors.New("--restricted without --project: a restricted client with no project can use nothing")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", path, readReason(err))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s is not YAML: %s", path, oneLine(err))
	}
	var before any
	if err := yaml.Unmarshal(data, &before); err != nil {
		return nil, fmt.Errorf("%s is not YAML: %s", path, oneLine(err))
	}
	res := &InventoryResult{CertRel: CertDirInInventory + "/" + c.Name + ".crt"}
	res.CertFile = filepath.Join(filepath.Dir(path), filepath.FromSlash(res.CertRel))

	loc, err := findClientList(&doc)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if loc.list != nil {
		for i, item := range loc.list.Content {
			if name := mapValue(item, "name"); name != nil && name.Value == c.Name {
				file := mapValue(item, "certificate_file")
				if file != nil && sameCertificate(filepath.Join(filepath.Dir(path), filepath.FromSlash(file.Value)), cert) {
					res.AlreadyThere = true
					return res, nil
				}
				return nil, fmt.Errorf("%s: client %q is already incus_trusted_clients[%d] with another certificate: rotate it by replacing its certificate_file, or choose another --name", path, c.Name, i)
			}
			if file := mapValue(item, "certificate_file"); file != nil && sameCertificate(filepath.Join(filepath.Dir(path), filepath.FromSlash(file.Value)), cert) {
				other := "?"
				if name := mapValue(item, "name"); name != nil {
					other = name.Value
				}
				return nil, fmt.Errorf("%s: this certificate is already incus_trusted_clients[%d] %q (Incus trusts a certificate once): one name per certificate", path, i, other)
			}
		}
	}
	if existing, err := os.ReadFile(res.CertFile); err == nil {
		if old, err := ParsePublicCertificate(existing); err != nil || old.Fingerprint() != cert.Fingerprint() {
			return nil, fmt.Errorf("%s already exists with another certificate: remove it or choose another --name", res.CertFile)
		}
	}

	style := loc.style()
	text, insertAt, err := loc.render(data, style, c, res.CertRel)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	updated := splice(data, insertAt, text)
	if err := checkOnlyAdded(before, updated, c, res.CertRel); err != nil {
		return nil, fmt.Errorf("%s: cannot add the client safely (%v): add it by hand", path, err)
	}
	res.Entry = text.body

	if err := os.MkdirAll(filepath.Dir(res.CertFile), 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s: %v", filepath.Dir(res.CertFile), err)
	}
	if err := fileutil.WriteAtomic(res.CertFile, cert.PEM(), fileutil.Attrs{Mode: 0o644}); err != nil {
		return nil, err
	}
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	if err := fileutil.WriteAtomic(path, updated, fileutil.Attrs{Mode: mode}); err != nil {
		return nil, err
	}
	return res, nil
}

// clientListLocation is where incus_trusted_clients is, or where it goes.
type clientListLocation struct {
	vars *yaml.Node // all.vars (block mapping)
	key  *yaml.Node // the incus_trusted_clients key, when present
	list *yaml.Node // its sequence, when present
}

func findClientList(doc *yaml.Node) (*clientListLocation, error) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("is not an inventory (no top-level mapping)")
	}
	all := mapValue(doc.Content[0], "all")
	if all == nil || all.Kind != yaml.MappingNode {
		return nil, errors.New("has no `all:` mapping (the seed's host-incus-cluster.yaml shape)")
	}
	vars := mapValue(all, "vars")
	if vars == nil || vars.Kind != yaml.MappingNode || vars.Style&yaml.FlowStyle != 0 || len(vars.Content) == 0 {
		return nil, errors.New("has no block `all: vars:` mapping to hold incus_trusted_clients")
	}
	loc := &clientListLocation{vars: vars}
	for i := 0; i+1 < len(vars.Content); i += 2 {
		if vars.Content[i].Value == "incus_trusted_clients" {
			loc.key, loc.list = vars.Content[i], vars.Content[i+1]
		}
	}
	if loc.list != nil {
		if loc.list.Kind == yaml.ScalarNode && loc.list.Tag == "!!null" {
			return nil, errors.New("all.vars.incus_trusted_clients is empty (null): write `incus_trusted_clients: []`")
		}
		if loc.list.Kind != yaml.SequenceNode {
			return nil, errors.New("all.vars.incus_trusted_clients is not a list")
		}
		if loc.list.Style&yaml.FlowStyle != 0 && len(loc.list.Content) > 0 {
			return nil, errors.New("all.vars.incus_trusted_clients is a one-line [..] list: write it as a block list (one `- name:` entry per client)")
		}
		for i, item := range loc.list.Content {
			if item.Kind != yaml.MappingNode || item.Style&yaml.FlowStyle != 0 {
				return nil, fmt.Errorf("incus_trusted_clients[%d] is not a block mapping", i)
			}
		}
	}
	return loc, nil
}

// entryStyle is how the existing entries are written, so the new one looks the same.
type entryStyle struct {
	quoted       bool // strings in double quotes, as in the seed
	flowProjects bool // projects: [a, b]
}

func (l *clientListLocation) style() entryStyle {
	s := entryStyle{quoted: true} // the seed's own style when there is nothing to copy
	if l.list == nil || len(l.list.Content) == 0 {
		return s
	}
	first := l.list.Content[0]
	if n := mapValue(first, "name"); n != nil {
		s.quoted = n.Style&yaml.DoubleQuotedStyle != 0
	}
	for _, item := range l.list.Content {
		if p := mapValue(item, "projects"); p != nil && p.Kind == yaml.SequenceNode && len(p.Content) > 0 {
			s.flowProjects = p.Style&yaml.FlowStyle != 0
			break
		}
	}
	return s
}

// insertion is text to put at a byte offset of the file, replacing `replace` bytes.
type insertion struct {
	body    string
	replace int
}

// render returns the entry's text and where it goes.
func (l *clientListLocation) render(data []byte, s entryStyle, c InventoryClient, certRel string) (insertion, int, error) {
	lines := splitLines(data)
	var dash int // column (0-based) of the entry's "-"
	var at int   // byte offset where the text goes
	var prefix string
	var replace int
	switch {
	case l.list != nil && len(l.list.Content) > 0:
		first := l.list.Content[0]
		line := lines[first.Line-1]
		dash = strings.LastIndex(line[:first.Column-1], "-")
		if dash < 0 {
			return insertion{}, 0, errors.New("cannot find the `-` of incus_trusted_clients[0]")
		}
		last := lastLine(l.list)
		// A block scalar or comments of the last entry run on while lines are indented deeper.
		for last < len(lines) && (indentOf(lines[last]) > dash || strings.TrimSpace(lines[last]) == "" && moreBelow(lines, last, dash)) {
			last++
		}
		at = offsetOfLine(lines, last)
	case l.list != nil: // incus_trusted_clients: []
		line := lines[l.list.Line-1]
		start := l.list.Column - 1
		if !strings.HasPrefix(line[start:], "[]") {
			return insertion{}, 0, errors.New("cannot find the `[]` of incus_trusted_clients")
		}
		dash = indentOf(lines[l.key.Line-1]) + 2
		lineStart := offsetOfLine(lines, l.list.Line-1)
		lineEnd := lineStart + len(strings.TrimRight(line, "\r\n"))
		at = lineStart + start
		// Drop "[]" and the space before it; a comment after it stays on the key's line.
		for at > lineStart && data[at-1] == ' ' {
			at--
		}
		replace = lineEnd - at
		prefix = strings.TrimRight(line[start+2:], "\r\n") + "\n"
	default: // no incus_trusted_clients yet: it goes at the end of all.vars
		indent := l.vars.Content[0].Column - 1
		last := lastLine(l.vars)
		for last < len(lines) && (indentOf(lines[last]) > indent || strings.TrimSpace(lines[last]) == "" && moreBelow(lines, last, indent)) {
			last++
		}
		at = offsetOfLine(lines, last)
		dash = indent + 2
		prefix = strings.Repeat(" ", indent) + "incus_trusted_clients:\n"
	}
	var b strings.Builder
	b.WriteString(prefix)
	pad := strings.Repeat(" ", dash)
	q := func(v string) string { return scalar(v, s.quoted) }
	fmt.Fprintf(&b, "%s- name: %s\n", pad, q(c.Name))
	fmt.Fprintf(&b, "%s  description: %s\n", pad, q(c.Description))
	fmt.Fprintf(&b, "%s  certificate_file: %s\n", pad, q(certRel))
	fmt.Fprintf(&b, "%s  restricted: %t\n", pad, c.Restricted)
	switch {
	case len(c.Projects) == 0:
		fmt.Fprintf(&b, "%s  projects: []\n", pad)
	case s.flowProjects:
		var ps []string
		for _, p := range c.Projects {
			ps = append(ps, q(p))
		}
		fmt.Fprintf(&b, "%s  projects: [%s]\n", pad, strings.Join(ps, ", "))
	default:
		fmt.Fprintf(&b, "%s  projects:\n", pad)
		for _, p := range c.Projects {
			fmt.Fprintf(&b, "%s    - %s\n", pad, q(p))
		}
	}
	body := b.String()
	if replace > 0 { // replacing "[]" at the end of a line: the line's own newline stays
		body = strings.TrimSuffix(body, "\n")
	} else if at > 0 && at == len(data) && data[len(data)-1] != '\n' {
		body = "\n" + body
	}
	return insertion{body: body, replace: replace}, at, nil
}

// scalar writes a string value as the file does: double quoted (JSON escapes are valid
// YAML) or plain when YAML reads it back as the same string.
func scalar(v string, quoted bool) string {
	if !quoted {
		out, err := yaml.Marshal(v)
		if err == nil {
			return strings.TrimSuffix(string(out), "\n")
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSuffix(b.String(), "\n")
}

func splice(data []byte, at int, ins insertion) []byte {
	out := make([]byte, 0, len(data)+len(ins.body))
	out = append(out, data[:at]...)
	out = append(out, ins.body...)
	return append(out, data[at+ins.replace:]...)
}

// checkOnlyAdded parses the new text and requires it to be the old inventory plus the
// one entry, decoded exactly as intended.
func checkOnlyAdded(before any, updated []byte, c InventoryClient, certRel string) error {
	var after any
	if err := yaml.Unmarshal(updated, &after); err != nil {
		return fmt.Errorf("the result would not parse: %s", oneLine(err))
	}
	vars, _ := dig(after, "all", "vars").(map[string]any)
	list, _ := vars["incus_trusted_clients"].([]any)
	if len(list) == 0 {
		return errors.New("the entry did not land in all.vars.incus_trusted_clients")
	}
	projects := []any{}
	for _, p := range c.Projects {
		projects = append(projects, p)
	}
	want := map[string]any{"name": c.Name, "description": c.Description, "certificate_file": certRel,
		"restricted": c.Restricted, "projects": projects}
	if !reflect.DeepEqual(list[len(list)-1], want) {
		return errors.New("the new entry would not read back as written")
	}
	if len(list) == 1 && dig(before, "all", "vars", "incus_trusted_clients") == nil {
		delete(vars, "incus_trusted_clients")
	} else {
		vars["incus_trusted_clients"] = list[:len(list)-1]
	}
	if !reflect.DeepEqual(before, after) {
		return errors.New("the rest of the file would read differently")
	}
	return nil
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// lastLine is the highest (1-based) line any node under n starts on.
func lastLine(n *yaml.Node) int {
	max := n.Line
	for _, c := range n.Content {
		if l := lastLine(c); l > max {
			max = l
		}
	}
	return max
}

func sameCertificate(path string, cert *PublicCertificate) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	c, err := ParsePublicCertificate(data)
	return err == nil && c.Fingerprint() == cert.Fingerprint()
}

// splitLines splits after each newline, keeping it, so offsets add up.
func splitLines(data []byte) []string {
	var out []string
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			out = append(out, string(data))
			break
		}
		out = append(out, string(data[:i+1]))
		data = data[i+1:]
	}
	return out
}

func offsetOfLine(lines []string, idx int) int {
	n := 0
	for i := 0; i < idx && i < len(lines); i++ {
		n += len(lines[i])
	}
	return n
}

func indentOf(line string) int {
	if strings.TrimSpace(line) == "" {
		return 0
	}
	return len(line) - len(strings.TrimLeft(line, " "))
}

// moreBelow: after the blank line i, does the entry continue (a deeper-indented line)?
func moreBelow(lines []string, i, dash int) bool {
	for j := i + 1; j < len(lines); j++ {
		if strings.TrimSpace(lines[j]) != "" {
			return indentOf(lines[j]) > dash
		}
	}
	return false
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
