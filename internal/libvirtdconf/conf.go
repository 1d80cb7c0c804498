// Package libvirtdconf reads libvirtd.conf with the grammar of libvirt's own parser
// (src/util/virconf.c) and rewrites one setting in place, leaving every other byte of the
// file as it was. The libvirtd_allowed_dns module uses it for tls_allowed_dn_list.
package libvirtdconf

import (
	"fmt"
	"strings"
)

// Kind is the type of a value: libvirtd.conf knows strings, integers and lists.
type Kind int

const (
	String Kind = iota
	Number
	List
)

// Value is one parsed value.
type Value struct {
	Kind Kind
	Str  string // String: the text between the quotes; Number: the digits as written
	List []Value
}

// Strings returns a list of strings' elements, and false for any other value.
func (v Value) Strings() ([]string, bool) {
	if v.Kind != List {
		return nil, false
	}
	out := make([]string, 0, len(v.List))
	for _, e := range v.List {
		if e.Kind != String {
			return nil, false
		}
		out = append(out, e.Str)
	}
	return out, true
}

// Entry is one `name = value` statement; Start and End delimit it from the first byte of
// the name to the byte after the value (a trailing comment is not part of it).
type Entry struct {
	Name       string
	Value      Value
	Start, End int
	Line       int
}

// Conf is a parsed file: its bytes and its statements in order.
type Conf struct {
	Data    []byte
	Entries []Entry
}

// Lookup returns every statement of name (libvirtd reads the first).
func (c *Conf) Lookup(name string) []Entry {
	var out []Entry
	for _, e := range c.Entries {
		if e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// String returns the first statement of name when it is a string, else "".
func (c *Conf) String(name string) string {
	if es := c.Lookup(name); len(es) > 0 && es[0].Value.Kind == String {
		return es[0].Value.Str
	}
	return ""
}

type parser struct {
	b    []byte
	i    int
	line int
}

// SyntaxError is where and why libvirt's parser would reject the file.
type SyntaxError struct {
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

func (p *parser) fail(msg string) error { return &SyntaxError{Line: p.line, Msg: msg} }

func (p *parser) more() bool       { return p.i < len(p.b) }
func (p *parser) cur() byte        { return p.b[p.i] }
func isBlank(c byte) bool          { return c == ' ' || c == '\t' }
func isEOL(c byte) bool            { return c == '\n' || c == '\r' }
func isAlpha(c byte) bool          { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool          { return c >= '0' && c <= '9' }
func (p *parser) next()            { p.advance(1) }
func (p *parser) at(s string) bool { return strings.HasPrefix(string(p.b[p.i:]), s) }

func (p *parser) advance(n int) {
	for ; n > 0 && p.i < len(p.b); n-- {
		if p.b[p.i] == '\n' {
			p.line++
		}
		p.i++
	}
}

func (p *parser) skipBlanks() {
	for p.more() && isBlank(p.cur()) {
		p.next()
	}
}

func (p *parser) skipBlanksAndEOL() {
	for p.more() && (isBlank(p.cur()) || isEOL(p.cur())) {
		p.next()
	}
}

func (p *parser) skipToEOL() {
	for p.more() && !isEOL(p.cur()) {
		p.next()
	}
}

// Parse reads a libvirtd.conf. It accepts what libvirt's parser accepts (statements
// separated by line ends or ";", "#" comments outside lists, lists over several lines)
// and fails where libvirtd would refuse to start, naming the line.
func Parse(data []byte) (*Conf, error) {
	p := &parser{b: data, line: 1}
	c := &Conf{Data: data}
	for p.more() {
		p.skipBlanksAndEOL()
		if !p.more() {
			break
		}
		if p.cur() == '#' {
			p.skipToEOL()
		} else {
			e, err := p.statement()
			if err != nil {
				return nil, err
			}
			c.Entries = append(c.Entries, e)
		}
		// the separator: end of line or ";"
		p.skipBlanks()
		if !p.more() {
			break
		}
		switch {
		case isEOL(p.cur()):
		case p.cur() == ';':
			p.next()
		default:
			return nil, p.fail("expecting a separator (end of line or ;)")
		}
	}
	return c, nil
}

func (p *parser) statement() (Entry, error) {
	e := Entry{Start: p.i, Line: p.line}
	if !isAlpha(p.cur()) && p.cur() != '_' {
		return e, p.fail(fmt.Sprintf("expecting a name, found %q", p.cur()))
	}
	for p.more() && (isAlpha(p.cur()) || isDigit(p.cur()) || p.cur() == '_') {
		p.next()
	}
	e.Name = string(p.b[e.Start:p.i])
	p.skipBlanks()
	if !p.more() || p.cur() != '=' {
		return e, p.fail(fmt.Sprintf("expecting = after %s", e.Name))
	}
	p.next()
	v, err := p.value()
	if err != nil {
		return e, err
	}
	e.Value, e.End = v, p.i
	p.skipBlanks()
	if p.more() && p.cur() == '#' {
		p.skipToEOL()
	}
	return e, nil
}

func (p *parser) value() (Value, error) {
	p.skipBlanks()
	if !p.more() {
		return Value{}, p.fail("expecting a value")
	}
	switch c := p.cur(); {
	case c == '\'' || c == '"':
		s, err := p.str()
		return Value{Kind: String, Str: s}, err
	case c == '[':
		return p.list()
	case isDigit(c) || c == '-' || c == '+':
		start := p.i
		p.next()
		for p.more() && isDigit(p.cur()) {
			p.next()
		}
		return Value{Kind: Number, Str: string(p.b[start:p.i])}, nil
	default:
		return Value{}, p.fail(fmt.Sprintf("expecting a value, found %q", c))
	}
}

// str reads '...', "..." (neither may span lines; there are no escapes) or """...""".
func (p *parser) str() (string, error) {
	// libvirt takes """ only when more than six bytes are left (virconf.c).
	if p.i+6 < len(p.b) && p.at(`"""`) {
		p.advance(3)
		start := p.i
		for p.i+2 < len(p.b) && !p.at(`"""`) {
			p.next()
		}
		if !p.at(`"""`) {
			return "", p.fail("unterminated string")
		}
		s := string(p.b[start:p.i])
		p.advance(3)
		return s, nil
	}
	q := p.cur()
	p.next()
	start := p.i
	for p.more() && p.cur() != q && !isEOL(p.cur()) {
		p.next()
	}
	if !p.more() || p.cur() != q {
		return "", p.fail("unterminated string")
	}
	s := string(p.b[start:p.i])
	p.next()
	return s, nil
}

func (p *parser) list() (Value, error) {
	v := Value{Kind: List}
	p.next()
	p.skipBlanksAndEOL()
	if p.more() && p.cur() != ']' {
		e, err := p.value()
		if err != nil {
			return v, err
		}
		v.List = append(v.List, e)
		p.skipBlanksAndEOL()
	}
	for p.more() && p.cur() != ']' {
		if p.cur() != ',' {
			return v, p.fail("expecting , or ] in a list")
		}
		p.next()
		p.skipBlanksAndEOL()
		if p.more() && p.cur() == ']' {
			break
		}
		e, err := p.value()
		if err != nil {
			return v, err
		}
		v.List = append(v.List, e)
		p.skipBlanksAndEOL()
	}
	if !p.more() {
		return v, p.fail("list is not closed with ]")
	}
	p.next()
	return v, nil
}
