package ansible

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
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

// Main is the whole life of a binary module process: args file in argv[1] ("-": the
// arguments on stdin), one JSON object on stdout, exit status 1 when the module failed.
func Main[P any](doc []byte, run RunFunc[P]) {
	path := ""
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	res, failed := Execute(doc, path, run)
	os.Exit(emit(os.Stdout, res, failed))
}

// Module is one module bound to its sidecar doc, for a multi-call binary.
type Module func(argsPath string) (result map[string]any, failed bool)

// Bind pairs a module's sidecar doc with its run function.
func Bind[P any](doc []byte, run RunFunc[P]) Module {
	return func(argsPath string) (map[string]any, bool) { return Execute(doc, argsPath, run) }
}

// MainMulti is a multi-call binary of several modules. The module is the program's own
// name (Ansible's stock path runs a copy as AnsiballZ_<module> <args file>) or, failing
// that, the first argument: `incus-access-modules <module> <args file|->`.
func MainMulti(modules map[string]Module) {
	name, rest := Dispatch(os.Args, modules)
	mod, ok := modules[name]
	if !ok {
		res := map[string]any{"failed": true, "changed": false, "msg": Usage(os.Args, modules)}
		os.Exit(emit(os.Stdout, res, true))
	}
	path := ""
	if len(rest) > 0 {
		path = rest[0]
	}
	res, failed := mod(path)
	os.Exit(emit(os.Stdout, res, failed))
}

// Dispatch picks the module a multi-call binary was asked for and the remaining
// arguments; name is "" when neither the program name nor argv[1] names one.
func Dispatch(argv []string, modules map[string]Module) (name string, rest []string) {
	if len(argv) == 0 {
		return "", nil
	}
	base := strings.TrimPrefix(filepath.Base(argv[0]), "AnsiballZ_")
	if _, ok := modules[base]; ok {
		return base, argv[1:]
	}
	if len(argv) > 1 {
		if _, ok := modules[argv[1]]; ok {
			return argv[1], argv[2:]
		}
	}
	return "", nil
}

// Usage is the message of a multi-call binary that was not told which module to run.
func Usage(argv []string, modules map[string]Module) string {
	names := make([]string, 0, len(modules))
	for n := range modules {
		names = append(names, n)
	}
	sort.Strings(names)
	prog := "incus-access-modules"
	if len(argv) > 0 {
		prog = filepath.Base(argv[0])
	}
	return fmt.Sprintf("usage: %s MODULE ARGS_FILE (ARGS_FILE - reads the arguments from stdin); modules: %s",
		prog, strings.Join(names, ", "))
}

// emit prints the one JSON result and returns the exit status.
func emit(w io.Writer, res map[string]any, failed bool) int {
	out, err := json.Marshal(res)
	if err != nil {
		out = []byte(`{"failed": true, "msg": "module result could not be encoded as JSON"}`)
		failed = true
	}
	w.Write(append(out, '\n'))
	if failed {
		return 1
	}
	return 0
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

// stdin is where "-" reads the arguments from; tests replace it.
var stdin io.Reader = os.Stdin

// readArgs reads the module arguments from the args file Ansible wrote, or from stdin
// for "-" (the executor's way: the arguments never touch the target's disk).
func readArgs(path string) (map[string]any, error) {
	if path == "" {
		return nil, fmt.Errorf("no arguments file: a binary module is run by Ansible with the path of its args file (or - for stdin)")
	}
	what := "arguments file " + path
	var data []byte
	var err error
	if path == "-" {
		what = "arguments on stdin"
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", what, err)
	}
	if strings.TrimSpace(string(data)) == "" {
		return map[string]any{}, nil
	}
	args, err := decodeJSONObject(data)
	if err != nil {
		// Not the parse error itself: it may quote part of the input, which holds secrets.
		return nil, fmt.Errorf("%s is not a JSON object", what)
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
