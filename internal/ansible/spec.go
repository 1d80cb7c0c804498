// Package ansible is the one runtime every binary module uses: it reads the args file,
// validates it against the argument spec taken from the module's sidecar documentation,
// decodes it into the module's typed parameters and prints exactly one JSON result.
package ansible

import (
	"fmt"
	"sort"

	"gopkg.in/yaml.v3"
)

// Option is one entry of DOCUMENTATION.options (or of an option's suboptions).
type Option struct {
	Type     string             `yaml:"type"`
	Elements string             `yaml:"elements"`
	Required bool               `yaml:"required"`
	Default  any                `yaml:"default"`
	Choices  []any              `yaml:"choices"`
	Aliases  []string           `yaml:"aliases"`
	NoLog    bool               `yaml:"no_log"`
	Options  map[string]*Option `yaml:"suboptions"`
	Rules    `yaml:",inline"`
}

// Rules are the cross-option constraints AnsibleModule knows. Top-level rules stand in
// the sidecar's ARGUMENT_SPEC_RULES key (ansible-doc cannot render them inside
// DOCUMENTATION); rules for suboptions stand inside the option that has them.
type Rules struct {
	MutuallyExclusive [][]string `yaml:"mutually_exclusive"`
	RequiredOneOf     [][]string `yaml:"required_one_of"`
	RequiredTogether  [][]string `yaml:"required_together"`
	// RequiredIf entries are [key, value, [requirements...]] with an optional fourth
	// element true meaning "any one of the requirements" as in AnsibleModule.
	RequiredIf [][]any `yaml:"required_if"`
}

// Spec is the argument spec of a module: its options and top-level rules.
type Spec struct {
	Module  string
	Options map[string]*Option
	Rules
}

type sidecar struct {
	Documentation struct {
		Module  string             `yaml:"module"`
		Options map[string]*Option `yaml:"options"`
		// Misplaced rules are read only to reject them with a clear message.
		Misplaced Rules `yaml:",inline"`
	} `yaml:"DOCUMENTATION"`
	Rules Rules `yaml:"ARGUMENT_SPEC_RULES"`
}

// ParseSpec reads the argument spec from a sidecar documentation file.
func ParseSpec(doc []byte) (*Spec, error) {
	var sc sidecar
	if err := yaml.Unmarshal(doc, &sc); err != nil {
		return nil, fmt.Errorf("sidecar documentation is not valid YAML: %w", err)
	}
	if sc.Documentation.Module == "" {
		return nil, fmt.Errorf("sidecar documentation has no DOCUMENTATION.module")
	}
	if m := sc.Documentation.Misplaced; m.MutuallyExclusive != nil || m.RequiredOneOf != nil || m.RequiredTogether != nil || m.RequiredIf != nil {
		return nil, fmt.Errorf("sidecar: top-level rules belong under ARGUMENT_SPEC_RULES, not DOCUMENTATION (ansible-doc cannot render them there)")
	}
	s := &Spec{Module: sc.Documentation.Module, Options: sc.Documentation.Options, Rules: sc.Rules}
	if s.Options == nil {
		s.Options = map[string]*Option{}
	}
	if err := checkOptions("", s.Options); err != nil {
		return nil, err
	}
	return s, nil
}

var knownTypes = map[string]bool{"str": true, "bool": true, "int": true, "float": true, "path": true, "list": true, "dict": true, "raw": true}

// checkOptions catches mistakes in the sidecar itself, so a module author finds them in
// unit tests rather than a user at run time.
func checkOptions(prefix string, opts map[string]*Option) error {
	for name, o := range opts {
		if o == nil {
			return fmt.Errorf("sidecar: option %s%s is empty", prefix, name)
		}
		if o.Type == "" {
			o.Type = "str"
		}
		if !knownTypes[o.Type] {
			return fmt.Errorf("sidecar: option %s%s has unknown type %q", prefix, name, o.Type)
		}
		if o.Elements != "" && !knownTypes[o.Elements] {
			return fmt.Errorf("sidecar: option %s%s has unknown elements type %q", prefix, name, o.Elements)
		}
		o.Default = normalizeYAML(o.Default)
		for i, c := range o.Choices {
			o.Choices[i] = normalizeYAML(c)
		}
		if o.Required && o.Default != nil {
			return fmt.Errorf("sidecar: option %s%s is required and has a default", prefix, name)
		}
		if o.Options != nil {
			if err := checkOptions(prefix+name+".", o.Options); err != nil {
				return err
			}
		}
	}
	return nil
}

// names returns the option names and aliases, sorted, for error messages.
func names(opts map[string]*Option) []string {
	var out []string
	for n, o := range opts {
		out = append(out, n)
		out = append(out, o.Aliases...)
	}
	sort.Strings(out)
	return out
}

// normalizeYAML gives values read from the sidecar the same Go types as values decoded
// from the args file (int64, float64, []any, map[string]any).
func normalizeYAML(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case []any:
		for i, e := range x {
			x[i] = normalizeYAML(e)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeYAML(e)
		}
	}
	return v
}
