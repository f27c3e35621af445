package config

import (
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CLOUDDB_AUDIT_SIGNING_KEY takes the key's seed or the whole private key; anything else fails
// naming the variable, without echoing the value.
func TestAuditSigningKeyFromEnv(t *testing.T) {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]string{
		"seed":        base64.StdEncoding.EncodeToString(key.Seed()),
		"private key": base64.StdEncoding.EncodeToString(key),
	} {
		c, err := FromEnv(env(map[string]string{"CLOUDDB_AUDIT_SIGNING_KEY": value}))
		if err != nil || !c.AuditSigningKey.Equal(key) {
			t.Errorf("%s: key %x, %v; want the one given", name, c.AuditSigningKey, err)
		}
	}
	mismatched := append(append([]byte{}, key.Seed()...), make([]byte, 32)...) // a seed and another's public half
	for _, bad := range []string{"c2hvcnQ=", "not base64!", base64.StdEncoding.EncodeToString(mismatched)} {
		_, err := FromEnv(env(map[string]string{"CLOUDDB_AUDIT_SIGNING_KEY": bad}))
		if err == nil || !strings.Contains(err.Error(), "CLOUDDB_AUDIT_SIGNING_KEY") || strings.Contains(err.Error(), bad) {
			t.Errorf("%q: %v; want an error naming the variable, not the value", bad, err)
		}
	}
}

// Without CLOUDDB_AUDIT_SIGNING_KEY the key is generated once into the data dir and kept; a key
// from the environment is used as given and writes nothing.
func TestAuditSigningKeyFile(t *testing.T) {
	dir := t.TempDir()
	first := Config{DataDir: dir}
	if err := first.LoadKeys(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, "audit-signing.key"))
	if err != nil || info.Mode().Perm() != 0o600 || len(first.AuditSigningKey) != ed25519.PrivateKeySize {
		t.Fatalf("audit-signing.key: %v (mode %v), key of %d bytes", err, info.Mode(), len(first.AuditSigningKey))
	}
	again := Config{DataDir: dir}
	if err := again.LoadKeys(); err != nil || !again.AuditSigningKey.Equal(first.AuditSigningKey) {
		t.Fatalf("a second start got another key (%v)", err)
	}
	_, given, _ := ed25519.GenerateKey(nil)
	other := t.TempDir()
	c := Config{DataDir: other, AuditSigningKey: given}
	if err := c.LoadKeys(); err != nil || !c.AuditSigningKey.Equal(given) {
		t.Fatalf("the given key was replaced (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(other, "audit-signing.key")); !os.IsNotExist(err) {
		t.Errorf("a key file was written though the key was given: %v", err)
	}
}
