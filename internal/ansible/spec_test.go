package ansible

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSidecarMistakes(t *testing.T) {
	bad := map[string]string{
		"unknown type":           "DOCUMENTATION:\n  module: m\n  options:\n    a: {type: strng}\n",
		"required+default":       "DOCUMENTATION:\n  module: m\n  options:\n    a: {type: str, required: true, default: x}\n",
		"rules in DOCUMENTATION": "DOCUMENTATION:\n  module: m\n  mutually_exclusive: [[a, b]]\n  options:\n    a: {type: str}\n",
		"no module":              "DOCUMENTATION:\n  options: {}\n",
	}
	for name, doc := range bad {
		if _, err := ParseSpec([]byte(doc)); err == nil {
			t.Errorf("%s: ParseSpec accepted it", name)
		}
	}
}

// The real sidecars must parse: a broken one would fail every run of its module.
func TestModuleSidecarsParse(t *testing.T) {
	matches, _ := globSidecars()
	for _, m := range matches {
		data, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseSpec(data); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
}

func globSidecars() ([]string, error) {
	return filepath.Glob(filepath.Join("..", "..", "modules", "*", "*.yml"))
}
