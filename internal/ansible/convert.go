package ansible

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The boolean spellings AnsibleModule accepts (module_utils/parsing/convert_bool.py).
var (
	boolTrue  = map[string]bool{"y": true, "yes": true, "on": true, "1": true, "true": true, "t": true, "1.0": true}
	boolFalse = map[string]bool{"n": true, "no": true, "off": true, "0": true, "false": true, "f": true, "0.0": true}
)

// typeName names a decoded JSON value the way Ansible's messages do.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "NoneType"
	case string:
		return "str"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case []any:
		return "list"
	case map[string]any:
		return "dict"
	}
	return fmt.Sprintf("%T", v)
}

// convert turns v into the canonical Go value for an Ansible type: string, bool, int64,
// float64, []any or map[string]any. The error never contains the value itself.
func convert(typ string, v any) (any, error) {
	switch typ {
	case "raw":
		return v, nil
	case "str":
		return toStr(v)
	case "path":
		s, err := toStr(v)
		if err != nil {
			return nil, err
		}
		return expandPath(s.(string)), nil
	case "bool":
		return toBool(v)
	case "int":
		return toInt(v)
	case "float":
		return toFloat(v)
	case "list":
		return toList(v)
	case "dict":
		return toDict(v)
	}
	return nil, fmt.Errorf("unknown type %q", typ)
}

func toStr(v any) (any, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		if x {
			return "True", nil // Python's str(True)
		}
		return "False", nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	}
	return nil, errConvert
}

func toBool(v any) (any, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		s := strings.ToLower(strings.TrimSpace(x))
		if boolTrue[s] {
			return true, nil
		}
		if boolFalse[s] {
			return false, nil
		}
	case int64:
		if x == 1 {
			return true, nil
		}
		if x == 0 {
			return false, nil
		}
	case float64:
		if x == 1 {
			return true, nil
		}
		if x == 0 {
			return false, nil
		}
	}
	return nil, errConvert
}

func toInt(v any) (any, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case float64:
		if x == math.Trunc(x) && !math.IsInf(x, 0) && math.Abs(x) < 1<<62 {
			return int64(x), nil
		}
	case string:
		if n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
			return n, nil
		}
	}
	return nil, errConvert
}

func toFloat(v any) (any, error) {
	switch x := v.(type) {
	case int64:
		return float64(x), nil
	case float64:
		return x, nil
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
			return f, nil
		}
	}
	return nil, errConvert
}

// toList follows check_type_list: a string is split at commas, a number becomes a
// one-element list of its string form.
func toList(v any) (any, error) {
	switch x := v.(type) {
	case []any:
		return x, nil
	case string:
		parts := strings.Split(x, ",")
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = p
		}
		return out, nil
	case int64, float64:
		s, _ := toStr(x)
		return []any{s}, nil
	}
	return nil, errConvert
}

// toDict follows check_type_dict: a JSON object string, or "k1=v1, k2=v2".
func toDict(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		return x, nil
	case string:
		s := strings.TrimSpace(x)
		if strings.HasPrefix(s, "{") {
			m, err := decodeJSONObject([]byte(s))
			if err != nil {
				return nil, errConvert
			}
			return m, nil
		}
		out := map[string]any{}
		for _, field := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
			k, val, ok := strings.Cut(field, "=")
			if !ok || k == "" {
				return nil, errConvert
			}
			out[k] = val
		}
		return out, nil
	}
	return nil, errConvert
}

var errConvert = fmt.Errorf("cannot convert")

func expandPath(s string) string {
	s = os.ExpandEnv(s)
	if s == "~" || strings.HasPrefix(s, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			s = filepath.Join(home, strings.TrimPrefix(s, "~"))
		}
	}
	return s
}

// decodeJSONObject decodes a JSON object keeping integers as int64 and other numbers as
// float64, so that type checks can tell 1 from 1.5.
func decodeJSONObject(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	return normalizeNumbers(m).(map[string]any), nil
}

func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeNumbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalizeNumbers(e)
		}
		return x
	}
	return v
}
