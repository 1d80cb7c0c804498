package ansible

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/go-viper/mapstructure/v2"
)

// Context is what a module's run function works with: the flags Ansible passed and the
// result being built.
type Context struct {
	CheckMode bool
	DiffMode  bool
	Verbosity int
	// TmpDir is Ansible's remote tmp dir for this task, when it passed one.
	TmpDir string

	// Changed and Msg go into the result as `changed` and `msg`.
	Changed bool
	Msg     string

	fields   map[string]any
	warnings []string
	diffs    []map[string]any
	masker   *Masker
}

// Set adds a module-specific return value. It is returned on failure too.
func (c *Context) Set(key string, value any) { c.fields[key] = value }

// Warn adds a warning that Ansible shows after the task.
func (c *Context) Warn(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

// AddDiff adds one before/after pair for diff mode; header names what is compared.
// Strings are shown as text diffs, other values as YAML-ish dumps by Ansible.
func (c *Context) AddDiff(header string, before, after any) {
	c.diffs = append(c.diffs, map[string]any{
		"before_header": header, "after_header": header,
		"before": before, "after": after,
	})
}

// AddSecret registers a value obtained at run time (a token from a login, a generated
// key) so that it is masked in every output.
func (c *Context) AddSecret(s ...string) { c.masker.Add(s...) }

// Mask masks a string with the secrets known so far; for messages built by hand.
func (c *Context) Mask(s string) string { return c.masker.String(s) }

// RunFunc is a module's logic: it reads its typed parameters and fills the context.
type RunFunc[P any] func(*Context, *P) error

// Main is the whole life of a binary module process: args file in argv[1], one JSON
// object on stdout, exit status 1 when the module failed.
func Main[P any](doc []byte, run RunFunc[P]) {
	path := ""
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	res, failed := Execute(doc, path, run)
	out, err := json.Marshal(res)
	if err != nil {
		out = []byte(`{"failed": true, "msg": "module result could not be encoded as JSON"}`)
		failed = true
	}
	os.Stdout.Write(append(out, '\n'))
	if failed {
		os.Exit(1)
	}
}

// Execute runs a module against an args file and returns the result object (already
// masked) and whether it failed. Main prints it; tests call Execute directly.
func Execute[P any](doc []byte, argsPath string, run RunFunc[P]) (result map[string]any, failed bool) {
	ctx := &Context{fields: map[string]any{}, masker: &Masker{}}
	var invocation map[string]any
	var runErr error

	func() {
		defer func() {
			if r := recover(); r != nil {
				runErr = fmt.Errorf("module %s crashed: %v", moduleName(doc), r)
			}
		}()
		spec, err := ParseSpec(doc)
		if err != nil {
			runErr = err
			return
		}
		args, err := readArgs(argsPath)
		if err != nil {
			runErr = err
			return
		}
		internal := splitInternal(args)
		ctx.CheckMode, _ = internal["_ansible_check_mode"].(bool)
		ctx.DiffMode, _ = internal["_ansible_diff"].(bool)
		if v, ok := internal["_ansible_verbosity"].(int64); ok {
			ctx.Verbosity = int(v)
		}
		ctx.TmpDir, _ = internal["_ansible_tmpdir"].(string)

		val, err := Validate(spec, args)
		ctx.masker.Add(val.Secrets...)
		if err != nil {
			runErr = err
			return
		}
		invocation = val.Invocation
		var params P
		if err := decode(val.Params, &params); err != nil {
			runErr = err
			return
		}
		runErr = run(ctx, &params)
	}()

	res := map[string]any{}
	for k, v := range ctx.fields {
		res[k] = v
	}
	res["changed"] = ctx.Changed
	if ctx.Msg != "" {
		res["msg"] = ctx.Msg
	}
	if len(ctx.warnings) > 0 {
		res["warnings"] = ctx.warnings
	}
	if ctx.DiffMode && len(ctx.diffs) > 0 {
		if len(ctx.diffs) == 1 {
			res["diff"] = ctx.diffs[0]
		} else {
			res["diff"] = ctx.diffs
		}
	}
	if invocation != nil {
		res["invocation"] = map[string]any{"module_args": invocation}
	}
	if runErr != nil {
		res["failed"] = true
		res["msg"] = runErr.Error()
	}
	return maskResult(ctx.masker, res), runErr != nil
}

// maskResult turns the result into plain JSON values and masks every string in it.
func maskResult(m *Masker, res map[string]any) map[string]any {
	raw, err := json.Marshal(res)
	if err != nil {
		return map[string]any{"failed": true, "msg": m.String("module result could not be encoded: " + err.Error())}
	}
	var plain map[string]any
	_ = json.Unmarshal(raw, &plain)
	return m.Value(plain).(map[string]any)
}

func readArgs(path string) (map[string]any, error) {
	if path == "" {
		return nil, fmt.Errorf("no arguments file: a binary module is run by Ansible with the path of its args file")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read arguments file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("cannot read arguments file: %w", err)
	}
	if strings.TrimSpace(string(data)) == "" {
		return map[string]any{}, nil
	}
	args, err := decodeJSONObject(data)
	if err != nil {
		// Not the parse error itself: it may quote part of the file, and the file holds secrets.
		return nil, fmt.Errorf("arguments file %s is not a JSON object", path)
	}
	return args, nil
}

// splitInternal removes Ansible's own _ansible_* keys from args and returns them.
func splitInternal(args map[string]any) map[string]any {
	internal := map[string]any{}
	for k, v := range args {
		if strings.HasPrefix(k, "_ansible_") {
			internal[k] = v
			delete(args, k)
		}
	}
	return internal
}

// decode fills the module's parameter struct from validated values (struct tag `ansible`).
func decode(params map[string]any, out any) error {
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		TagName:          "ansible",
		Result:           out,
		WeaklyTypedInput: false,
	})
	if err != nil {
		return err
	}
	if err := dec.Decode(params); err != nil {
		return fmt.Errorf("internal error decoding validated arguments: %w", err)
	}
	return nil
}

func moduleName(doc []byte) string {
	if s, err := ParseSpec(doc); err == nil {
		return s.Module
	}
	return "module"
}
