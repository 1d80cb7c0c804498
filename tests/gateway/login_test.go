package main

import "testing"

func TestParseLogin(t *testing.T) {
	cases := []struct {
		raw  string
		want Login
	}{
		{"deb1", Login{"root", "deb1", "default", "gw"}},
		{"deb1.production", Login{"root", "deb1", "production", "gw"}},
		{"app@deb1", Login{"app", "deb1", "default", "gw"}},
		{"app@deb1.production~admin", Login{"app", "deb1", "production", "admin"}},
		{"app@deb1.production+admin", Login{"app", "deb1", "production", "admin"}},
		{"deb1~admin", Login{"root", "deb1", "default", "admin"}},
		// the first '~' wins over an earlier '+'
		{"a+b@deb1~admin", Login{"a+b", "deb1", "default", "admin"}},
		// without '~' the first '+' splits: everything after it is the host user
		{"app@deb1+admin+x", Login{"app", "deb1", "default", "admin+x"}},
		// the first '@' separates the instance user; the project is cut at the first '.'
		{"john.doe@deb1.prod.x", Login{"john.doe", "deb1", "prod.x", "gw"}},
		{"app%40deb1.production", Login{"app", "deb1", "production", "gw"}},
		// an empty project after '.' means default
		{"deb1.", Login{"root", "deb1", "default", "gw"}},
	}
	for _, c := range cases {
		got, err := ParseLogin(c.raw, "gw")
		if err != nil {
			t.Errorf("ParseLogin(%q): %v", c.raw, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseLogin(%q) = %+v, want %+v", c.raw, got, c.want)
		}
	}
}

func TestParseLoginRejects(t *testing.T) {
	for _, raw := range []string{"", "+deb1", "~deb1", "%deb1", "/shell", "@deb1", ".production", "deb1~", "app@~admin"} {
		if l, err := ParseLogin(raw, "gw"); err == nil {
			t.Errorf("ParseLogin(%q) = %+v, want an error", raw, l)
		}
	}
}
