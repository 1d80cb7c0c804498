package ansible

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// NoLogPlaceholder replaces no_log values in invocation.module_args, as AnsibleModule does.
const NoLogPlaceholder = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"

// Validated is the outcome of checking module arguments against a Spec.
type Validated struct {
	// Params holds every option with its converted value (nil where absent).
	Params map[string]any
	// Invocation is Params with each no_log value replaced by NoLogPlaceholder.
	Invocation map[string]any
	// Secrets are the no_log values as given, for the output masker.
	Secrets []string
}

// Validate checks args against spec: unknown options, aliases, types, defaults, choices,
// required options and the cross-option rules. It returns the first problem found, in a
// stable order, naming the option by its path (clients[2].type). Secrets are collected
// even when validation fails, so the caller can mask the error message.
func Validate(spec *Spec, args map[string]any) (*Validated, error) {
	v := &validator{module: spec.Module}
	// Secrets first: an error about any option must not be able to echo them.
	v.collectSecrets(spec.Options, args)
	params, inv, err := v.options("", spec.Options, spec.Rules, args)
	return &Validated{Params: params, Invocation: inv, Secrets: v.secrets}, err
}

type validator struct {
	module  string
	secrets []string
}

func (v *validator) collectSecrets(opts map[string]*Option, in map[string]any) {
	for key, val := range in {
		o := lookup(opts, key)
		if o == nil {
			continue
		}
		if o.NoLog {
			addSecretValues(&v.secrets, val)
			continue
		}
		if o.Options == nil {
			continue
		}
		switch x := val.(type) {
		case map[string]any:
			v.collectSecrets(o.Options, x)
		case []any:
			for _, e := range x {
				if m, ok := e.(map[string]any); ok {
					v.collectSecrets(o.Options, m)
				}
			}
		}
	}
}

func addSecretValues(dst *[]string, val any) {
	switch x := val.(type) {
	case nil:
	case string:
		if x != "" {
			*dst = append(*dst, x)
		}
	case map[string]any:
		for _, e := range x {
			addSecretValues(dst, e)
		}
	case []any:
		for _, e := range x {
			addSecretValues(dst, e)
		}
	default:
		*dst = append(*dst, fmt.Sprint(x))
	}
}

// lookup finds an option by name or alias.
func lookup(opts map[string]*Option, key string) *Option {
	if o, ok := opts[key]; ok {
		return o
	}
	for _, o := range opts {
		for _, a := range o.Aliases {
			if a == key {
				return o
			}
		}
	}
	return nil
}

func canonicalName(opts map[string]*Option, key string) string {
	if _, ok := opts[key]; ok {
		return key
	}
	for n, o := range opts {
		for _, a := range o.Aliases {
			if a == key {
				return n
			}
		}
	}
	return ""
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func foundIn(path string) string {
	if path == "" {
		return ""
	}
	return " found in " + path
}

func (v *validator) options(path string, opts map[string]*Option, rules Rules, in map[string]any) (map[string]any, map[string]any, error) {
	// Resolve aliases and reject unknown options.
	given := map[string]any{}
	var unknown []string
	keys := sortedKeys(in)
	for _, key := range keys {
		name := canonicalName(opts, key)
		if name == "" {
			unknown = append(unknown, join(path, key))
			continue
		}
		if _, dup := given[name]; dup {
			return nil, nil, fmt.Errorf("option %s is given more than once (under its name and an alias)", join(path, name))
		}
		given[name] = in[key]
	}
	if len(unknown) > 0 {
		return nil, nil, fmt.Errorf("Unsupported parameters for (%s) module: %s. Supported parameters include: %s.",
			v.module, strings.Join(unknown, ", "), strings.Join(names(opts), ", "))
	}
	for _, group := range rules.MutuallyExclusive {
		if present(given, group) > 1 {
			return nil, nil, fmt.Errorf("parameters are mutually exclusive: %s%s", strings.Join(group, "|"), foundIn(path))
		}
	}

	out := map[string]any{}
	inv := map[string]any{}
	var missing []string
	for _, name := range sortedKeys(opts) {
		o := opts[name]
		val, ok := given[name]
		if !ok || val == nil {
			if o.Required {
				missing = append(missing, name)
				continue
			}
			val = o.Default
		}
		if val == nil {
			out[name] = nil
			inv[name] = nil
			continue
		}
		conv, err := v.value(join(path, name), o, val)
		if err != nil {
			return nil, nil, err
		}
		out[name] = conv
		if o.NoLog {
			inv[name] = NoLogPlaceholder
		} else {
			inv[name] = invocationValue(o, conv)
		}
	}
	if len(missing) > 0 {
		return nil, nil, fmt.Errorf("missing required arguments: %s%s", strings.Join(missing, ", "), foundIn(path))
	}
	if err := checkRules(path, rules, out); err != nil {
		return nil, nil, err
	}
	return out, inv, nil
}

// value converts one option's value, checks choices and descends into suboptions.
func (v *validator) value(name string, o *Option, val any) (any, error) {
	conv, err := convert(o.Type, val)
	if err != nil {
		return nil, fmt.Errorf("argument '%s' is of type %s and we were unable to convert to %s", name, typeName(val), o.Type)
	}
	if o.Type == "list" {
		list := conv.([]any)
		outList := make([]any, len(list))
		for i, e := range list {
			ename := fmt.Sprintf("%s[%d]", name, i)
			if o.Elements != "" {
				if e, err = convert(o.Elements, e); err != nil {
					return nil, fmt.Errorf("elements value for option '%s' is of type %s and we were unable to convert to %s", ename, typeName(list[i]), o.Elements)
				}
			}
			if err := checkChoices(ename, o.Choices, e); err != nil {
				return nil, err
			}
			if o.Options != nil && o.Elements == "dict" {
				sub, _, err := v.options(ename, o.Options, o.Rules, e.(map[string]any))
				if err != nil {
					return nil, err
				}
				e = sub
			}
			outList[i] = e
		}
		return outList, nil
	}
	if err := checkChoices(name, o.Choices, conv); err != nil {
		return nil, err
	}
	if o.Options != nil && o.Type == "dict" {
		sub, _, err := v.options(name, o.Options, o.Rules, conv.(map[string]any))
		if err != nil {
			return nil, err
		}
		return sub, nil
	}
	return conv, nil
}

// invocationValue rebuilds a converted value for invocation.module_args with no_log
// suboptions replaced.
func invocationValue(o *Option, val any) any {
	if o.Options == nil {
		return val
	}
	mask := func(m map[string]any) map[string]any {
		out := map[string]any{}
		for k, e := range m {
			if so := o.Options[k]; so != nil && so.NoLog && e != nil {
				out[k] = NoLogPlaceholder
			} else if so != nil {
				out[k] = invocationValue(so, e)
			} else {
				out[k] = e
			}
		}
		return out
	}
	switch x := val.(type) {
	case map[string]any:
		return mask(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			if m, ok := e.(map[string]any); ok {
				out[i] = mask(m)
			} else {
				out[i] = e
			}
		}
		return out
	}
	return val
}

func checkChoices(name string, choices []any, val any) error {
	if len(choices) == 0 {
		return nil
	}
	for _, c := range choices {
		if equalChoice(c, val) {
			return nil
		}
	}
	list := make([]string, len(choices))
	for i, c := range choices {
		list[i] = fmt.Sprint(c)
	}
	return fmt.Errorf("value of %s must be one of: %s, got: %v", name, strings.Join(list, ", "), val)
}

func equalChoice(choice, val any) bool {
	if c, ok := choice.(int); ok {
		choice = int64(c)
	}
	return reflect.DeepEqual(choice, val) || fmt.Sprint(choice) == fmt.Sprint(val)
}

func present(params map[string]any, group []string) int {
	n := 0
	for _, k := range group {
		if params[k] != nil {
			n++
		}
	}
	return n
}

func checkRules(path string, r Rules, params map[string]any) error {
	for _, group := range r.RequiredTogether {
		if n := present(params, group); n > 0 && n < len(group) {
			return fmt.Errorf("parameters are required together: %s%s", strings.Join(group, ", "), foundIn(path))
		}
	}
	for _, group := range r.RequiredOneOf {
		if present(params, group) == 0 {
			return fmt.Errorf("one of the following is required: %s%s", strings.Join(group, ", "), foundIn(path))
		}
	}
	for _, rule := range r.RequiredIf {
		if len(rule) < 3 {
			return fmt.Errorf("sidecar: required_if rule %v needs [key, value, [requirements]]", rule)
		}
		key, _ := rule[0].(string)
		if params[key] == nil || !equalChoice(rule[1], params[key]) {
			continue
		}
		var reqs []string
		for _, r := range rule[2].([]any) {
			reqs = append(reqs, fmt.Sprint(r))
		}
		anyOf := len(rule) > 3 && rule[3] == true
		n := present(params, reqs)
		if (anyOf && n == 0) || (!anyOf && n < len(reqs)) {
			var miss []string
			for _, r := range reqs {
				if params[r] == nil {
					miss = append(miss, r)
				}
			}
			kind := "all"
			if anyOf {
				kind = "any"
			}
			return fmt.Errorf("%s is %v but %s of the following are missing: %s%s", key, rule[1], kind, strings.Join(miss, ", "), foundIn(path))
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
