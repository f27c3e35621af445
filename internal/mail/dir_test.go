package mail

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func readEML(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read delivered mail: %v", err)
	}
	return raw
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestDirWritesOneParseableFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail") // created on first send
	if err := NewDir(dir, testFrom).Send(context.Background(), testMessage()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	path := filepath.Join(dir, testID+".eml")
	raw := readEML(t, path)
	assertCRLF(t, raw)
	msg := mustParse(t, raw)
	if got := msg.Header.Get("To"); got != `=?utf-8?q?Zo=C3=AB_Martin?= <zoe@example.com>` {
		t.Errorf("To = %q", got)
	}
	if got := msg.Header.Get("Message-Id"); got != "<"+testID+"@clouddb.example>" {
		t.Errorf("Message-ID = %q", got)
	}
	if got := decodeBody(t, msg.Header.Get("Content-Transfer-Encoding"), msg.Body); got != crlf(testText) {
		t.Errorf("body decodes to %q, want %q", got, crlf(testText))
	}
	if names := dirEntries(t, dir); len(names) != 1 {
		t.Errorf("dir holds %v, want only %s.eml", names, testID)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode %v, want 0600 (mails carry tokens)", perm)
	}
}

func TestDirSameIDTwiceLeavesOneFile(t *testing.T) {
	dir := t.TempDir()
	s := NewDir(dir, testFrom)
	first := testMessage()
	if err := s.Send(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	want := readEML(t, filepath.Join(dir, testID+".eml"))

	again := first
	again.Subject = "A retry with another subject"
	if err := s.Send(context.Background(), again); err != nil {
		t.Fatalf("second Send of the same ID: %v", err)
	}
	if names := dirEntries(t, dir); len(names) != 1 || names[0] != testID+".eml" {
		t.Fatalf("dir holds %v, want one file", names)
	}
	if got := readEML(t, filepath.Join(dir, testID+".eml")); string(got) != string(want) {
		t.Error("a second send of the same ID replaced the first delivery")
	}

	// Concurrent deliveries of one ID (two reactor instances) also end with one file, no leftovers.
	dir = t.TempDir()
	s = NewDir(dir, testFrom)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Send(context.Background(), first)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Send: %v", err)
		}
	}
	if names := dirEntries(t, dir); len(names) != 1 || names[0] != testID+".eml" {
		t.Errorf("after concurrent sends dir holds %v, want one file", names)
	}
	mustParse(t, readEML(t, filepath.Join(dir, testID+".eml")))
}

func TestDirUnwritable(t *testing.T) {
	// A path under a regular file can be neither created nor written, even by root.
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{
		"dir is a file":      file,
		"parent is a file":   filepath.Join(file, "mail"),
		"dir cannot be made": filepath.Join(file, "a", "b"),
	} {
		t.Run(name, func(t *testing.T) {
			err := NewDir(dir, testFrom).Send(context.Background(), testMessage())
			if err == nil {
				t.Fatal("Send into an unwritable dir succeeded")
			}
			if errors.Is(err, ErrPermanent) {
				t.Errorf("a file system error is temporary, got %v", err)
			}
		})
	}
}

func TestDirRejectsBeforeWriting(t *testing.T) {
	dir := t.TempDir()
	m := testMessage()
	m.Subject = "x\r\nBcc: everyone@example.com"
	if err := NewDir(dir, testFrom).Send(context.Background(), m); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("Send = %v, want ErrInvalidMessage", err)
	}
	m = testMessage()
	m.ID = "../escape"
	if err := NewDir(dir, testFrom).Send(context.Background(), m); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("Send with a path as ID = %v, want ErrInvalidMessage", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := NewDir(dir, testFrom).Send(ctx, testMessage()); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with a cancelled ctx = %v, want context.Canceled", err)
	}
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Errorf("dir holds %v after rejected sends", names)
	}
}
