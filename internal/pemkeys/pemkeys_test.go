package pemkeys

import (
	"reflect"
	"strings"
	"testing"
)

const (
	certBlock = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ\n-----END CERTIFICATE-----\n"
	ecKey     = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIAAAAAAAAAAAAAAAAAAA\n-----END EC PRIVATE KEY-----"
	pkcs8Key  = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEF\n-----END PRIVATE KEY-----"
	sshKey    = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----"
	putty     = "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nPrivate-Lines: 1\nAAAAIE\nPrivate-MAC: 0a1b"
	sshPublic = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ca@example"
)

func TestFind(t *testing.T) {
	type want struct {
		Type string
		Line int
		Text string
	}
	for name, tc := range map[string]struct {
		text string
		want []want
	}{
		"certificate only":           {certBlock, nil},
		"ssh public key":             {sshPublic + "\n", nil},
		"empty":                      {"", nil},
		"words, no armour":           {"this mentions a private key in prose\n", nil},
		"certificate then EC key":    {certBlock + ecKey + "\n", []want{{"EC PRIVATE KEY", 4, ecKey}}},
		"PKCS#8 key first":           {pkcs8Key + "\n" + certBlock, []want{{"PRIVATE KEY", 1, pkcs8Key}}},
		"OpenSSH private key":        {sshKey, []want{{"OPENSSH PRIVATE KEY", 1, sshKey}}},
		"encrypted PKCS#8":           {strings.ReplaceAll(pkcs8Key, "PRIVATE KEY", "ENCRYPTED PRIVATE KEY"), []want{{"ENCRYPTED PRIVATE KEY", 1, strings.ReplaceAll(pkcs8Key, "PRIVATE KEY", "ENCRYPTED PRIVATE KEY")}}},
		"damaged: no END line":       {certBlock + "-----BEGIN RSA PRIVATE KEY-----\nMIIE", []want{{"RSA PRIVATE KEY", 4, "-----BEGIN RSA PRIVATE KEY-----\nMIIE"}}},
		"damaged: no closing dashes": {"-----BEGIN PRIVATE KEY\nMIIE\n", []want{{"PRIVATE KEY", 1, "-----BEGIN PRIVATE KEY\nMIIE\n"}}},
		"two keys, in order":         {ecKey + "\n" + sshKey, []want{{"EC PRIVATE KEY", 1, ecKey}, {"OPENSSH PRIVATE KEY", 4, sshKey}}},
		"PuTTY key after a comment":  {"# mine\n" + putty, []want{{"PuTTY-User-Key-File", 2, putty}}},
		"CRLF line endings":          {"x\r\n" + strings.ReplaceAll(ecKey, "\n", "\r\n"), []want{{"EC PRIVATE KEY", 2, strings.ReplaceAll(ecKey, "\n", "\r\n")}}},
	} {
		t.Run(name, func(t *testing.T) {
			var got []want
			for _, b := range Find(tc.text) {
				got = append(got, want{b.Type, b.Line, b.Text})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Find = %+v\nwant   %+v", got, tc.want)
			}
			if Contains(tc.text) != (len(tc.want) > 0) {
				t.Fatalf("Contains = %v, want %v", Contains(tc.text), len(tc.want) > 0)
			}
		})
	}
}

func TestIsKeyType(t *testing.T) {
	for typ, want := range map[string]bool{
		"PRIVATE KEY": true, "RSA PRIVATE KEY": true, "EC PRIVATE KEY": true, "ENCRYPTED PRIVATE KEY": true,
		"OPENSSH PRIVATE KEY": true, "CERTIFICATE": false, "PUBLIC KEY": false, "CERTIFICATE REQUEST": false,
	} {
		if IsKeyType(typ) != want {
			t.Errorf("IsKeyType(%q) = %v, want %v", typ, !want, want)
		}
	}
}

// Many BEGIN lines must not make Find quadratic in the text's length.
func TestFindManyBeginLines(t *testing.T) {
	text := strings.Repeat("-----BEGIN X-----\n", 200000)
	if Contains(text) {
		t.Fatal("found a key in BEGIN lines of a non-key type")
	}
}
