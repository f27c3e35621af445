package mail

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
)

func TestForgetRemovesTheMessagesFiles(t *testing.T) {
	dir := t.TempDir()
	keep, gone := uuid.NewString(), uuid.NewString()
	for _, id := range []string{keep, gone} {
		if err := os.WriteFile(filepath.Join(dir, id+".eml"), []byte("To: a@example.com\r\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n, err := Forget(dir, []string{gone, uuid.NewString(), "../" + keep})
	if err != nil || n != 1 {
		t.Fatalf("Forget: %d, %v; want 1 file removed", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, gone+".eml")); !os.IsNotExist(err) {
		t.Errorf("the forgotten message's file is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, keep+".eml")); err != nil {
		t.Errorf("another message's file is gone: %v", err)
	}
}
