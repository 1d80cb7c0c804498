package libvirtdconf

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// Quote writes s as a libvirtd.conf string that reads back as exactly s, and says false
// when no quoting can (libvirtd.conf has no escapes): "..." when s holds no ", '...' when
// it holds no ', """...""" when it holds both but no """ and does not end with ".
func Quote(s string) (string, bool) {
	if strings.ContainsAny(s, "\r\n") {
		return "", false
	}
	switch {
	case !strings.Contains(s, `"`):
		return `"` + s + `"`, true
	case !strings.Contains(s, `'`):
		return `'` + s + `'`, true
	case !strings.Contains(s, `"""`) && !strings.HasSuffix(s, `"`):
		return `"""` + s + `"""`, true
	}
	return "", false
}

// AllowedEntry is the tls_allowed_dn_list entry written for dn: dn itself when it can be
// quoted exactly, otherwise dn with each " turned into the wildcard ?, which matches the
// " and (unavoidably) any other single character there; the bool says which.
func AllowedEntry(dn string) (entry string, exact bool) {
	if _, ok := Quote(dn); ok {
		return dn, true
	}
	return strings.ReplaceAll(dn, `"`, "?"), false
}

// FormatList is a list value, one element per line, in the layout of libvirtd.conf's
// commented examples.
func FormatList(items []string) (string, error) {
	if len(items) == 0 {
		return "[]", nil
	}
	var b strings.Builder
	b.WriteString("[\n")
	for i, it := range items {
		q, ok := Quote(it)
		if !ok {
			return "", fmt.Errorf("%q cannot be written as a libvirtd.conf string", it)
		}
		b.WriteString("    " + q)
		if i < len(items)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("]")
	return b.String(), nil
}

// commentedExample matches the stock file's commented-out setting ("#tls_allowed_dn_list = ...").
func commentedExample(name string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^[ \t]*#[ \t]*` + regexp.QuoteMeta(name) + `[ \t]*=.*$`)
}

// Set returns the file with name = value: the statement's value replaced in place when
// it is there (its name, the bytes around it, a trailing comment stay), otherwise a new
// line after the file's commented-out example of the setting, or at the end. A setting
// given more than once is refused: libvirtd reads the first and the intent is unclear.
func (c *Conf) Set(name, value string) ([]byte, error) {
	es := c.Lookup(name)
	if len(es) > 1 {
		lines := make([]string, len(es))
		for i, e := range es {
			lines[i] = fmt.Sprint(e.Line)
		}
		return nil, fmt.Errorf("%s is set %d times (lines %s): libvirtd reads only the first; remove the others", name, len(es), strings.Join(lines, ", "))
	}
	var out bytes.Buffer
	if len(es) == 1 {
		e := es[0]
		// From the byte after "=" and its blanks: the user's spacing around "=" stays.
		vstart := e.Start + len(e.Name)
		for vstart < e.End && (isBlank(c.Data[vstart]) || c.Data[vstart] == '=') {
			vstart++
		}
		out.Write(c.Data[:vstart])
		out.WriteString(value)
		out.Write(c.Data[e.End:])
		return out.Bytes(), nil
	}
	stmt := name + " = " + value + "\n"
	locs := commentedExample(name).FindAllIndex(c.Data, -1)
	if len(locs) > 0 {
		at := locs[len(locs)-1][1]
		if at < len(c.Data) && c.Data[at] == '\r' {
			at++
		}
		if at < len(c.Data) && c.Data[at] == '\n' {
			at++
		}
		out.Write(c.Data[:at])
		if at == len(c.Data) && (at == 0 || c.Data[at-1] != '\n') {
			out.WriteByte('\n')
		}
		out.WriteString(stmt)
		out.Write(c.Data[at:])
		return out.Bytes(), nil
	}
	out.Write(c.Data)
	if len(c.Data) > 0 && c.Data[len(c.Data)-1] != '\n' {
		out.WriteByte('\n')
	}
	out.WriteString(stmt)
	return out.Bytes(), nil
}
