package ansible

import (
	"sort"
	"strings"
)

// Masked replaces a secret wherever it appears in output.
const Masked = "********"

// minLineSecret is the shortest line of a multi-line secret that is masked on its own:
// a PEM body line quoted alone by a library error is still a piece of the key, while
// short lines ("-----END-----" aside) would mask ordinary words.
const minLineSecret = 16

// Masker replaces every registered secret in strings. Each multi-line secret also
// registers its long lines, so a fragment of a private key cannot leak either.
type Masker struct {
	secrets []string
}

// Add registers secrets. Empty strings are ignored.
func (m *Masker) Add(secrets ...string) {
	for _, s := range secrets {
		if strings.TrimSpace(s) == "" {
			continue
		}
		m.secrets = append(m.secrets, s)
		if strings.Contains(s, "\n") {
			for _, line := range strings.Split(s, "\n") {
				line = strings.TrimSpace(line)
				if len(line) >= minLineSecret && !strings.HasPrefix(line, "-----") {
					m.secrets = append(m.secrets, line)
				}
			}
		}
	}
	// Longest first, so a secret containing another is replaced whole.
	sort.SliceStable(m.secrets, func(i, j int) bool { return len(m.secrets[i]) > len(m.secrets[j]) })
}

// String masks one string.
func (m *Masker) String(s string) string {
	for _, sec := range m.secrets {
		if strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, Masked)
		}
	}
	return s
}

// Value masks every string inside a JSON-shaped value (maps, slices, strings). Map keys
// are left alone: they are names the module chose, and masking them would break the
// result itself (a one-letter secret would turn "changed" into "ch********nged").
// It returns a new value; the input is not modified.
func (m *Masker) Value(v any) any {
	switch x := v.(type) {
	case string:
		return m.String(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = m.Value(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = m.Value(e)
		}
		return out
	}
	return v
}
